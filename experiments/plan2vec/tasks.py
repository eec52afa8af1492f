"""plan2vec's two training stages as Tasks of the one trainer.

LocalMetric (records of experiments.plan2vec.samples:transitions): each batch of B
transitions gives B pairs: the first B/2 near, (x_t, x_t) with probability
plan2vec.self_pair_probability, else (x_t, x_t+1); the rest random, (x_t, a uniformly drawn
frame of the batch). `bce`: label 0 near, 1 random, BCE with logits, φ = σ(output), the
probability of "far". `smooth_l1`: labels 0 (same frame), 1 (next frame), 2 (random), smooth-L1
regression, φ = the output.

Distillation (records of experiments.plan2vec.samples:nodes), objective (a): each frame i of
a batch is paired with frame π(i) of a random permutation π of the batch; loss = mean over
the pairs with a path of (‖f(x_i) − f(x_π(i))‖ − D_graph)² + centre_weight·‖mean of f over the
first centre_nodes frames‖². Every step is a fresh optax step (no gradient accumulation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from experiments.plan2vec import models
from lib import losses
from lib.config import ConfigError
from lib.models import layer_spec

METRIC_LOSSES = ("bce", "smooth_l1")
NORM_FLOOR = 1e-12  # ‖·‖ = sqrt(max(‖·‖², floor)): finite gradients where f(a) = f(b)


def _needs(info, keys: tuple, task: str, source: str) -> None:
    missing = [k for k in keys if k not in info.keys]
    if missing:
        raise ConfigError(f"{task} reads record keys {', '.join(missing)}, which {info.name} "
                          f"does not give; set data.name={source!r}")


def _plain_pixels(config, task: str) -> None:
    if config.data.normalization != "none":
        raise ConfigError(f"{task} compares raw frames in [0, 1]: set data.normalization="
                          f"'none' (it is {config.data.normalization!r})")


class LocalMetric:
    def __init__(self, config):
        cfg = config.plan2vec
        if cfg.metric_loss not in METRIC_LOSSES:
            raise ConfigError(f"plan2vec.metric_loss={cfg.metric_loss!r}; valid choices: "
                              f"{', '.join(METRIC_LOSSES)}")
        _plain_pixels(config, "the local metric")
        self.loss_kind = cfg.metric_loss
        self.self_probability = cfg.self_pair_probability
        self.threshold = 0.5 if self.loss_kind == "bce" else 1.5  # near below, far above

    def check_data(self, info) -> None:
        _needs(info, ("next",), "the local metric", "experiments.plan2vec.samples:transitions")

    def build_model(self, config, info, rngs):
        try:
            return models.local_metric(config.plan2vec.metric_net, info.image_shape,
                                       layer_spec(config.model), rngs)
        except ValueError as e:
            raise ConfigError(str(e)) from e

    def phi(self, output: jax.Array) -> jax.Array:
        """φ (small = near) from the network's output."""
        return jax.nn.sigmoid(output) if self.loss_kind == "bce" else output

    def _loss(self, output, label):
        if self.loss_kind == "bce":
            return losses.sigmoid_binary_cross_entropy(output, (label == 2).astype(jnp.float32))
        return losses.smooth_l1(output, label.astype(jnp.float32))

    def train_loss(self, model, batch, rng, step):
        del step
        x, following = batch["image"], batch["next"]
        size, half = len(x), len(x) // 2
        self_rng, partner_rng = jax.random.split(rng)
        same = jax.random.bernoulli(self_rng, self.self_probability, (size,))
        partner = x[jax.random.randint(partner_rng, (size,), 0, size)]
        near = jnp.arange(size) < half
        b = jnp.where(near[:, None, None, None],
                      jnp.where(same[:, None, None, None], x, following), partner)
        label = jnp.where(near, jnp.where(same, 0, 1), 2)
        output = model(x, b, train=True)
        loss = self._loss(output, label).mean()
        phi = self.phi(output)
        correct = jnp.where(near, phi < self.threshold, phi >= self.threshold)
        return loss, {"loss": loss, "accuracy": correct.mean()}

    def eval_sums(self, model, batch):
        """On fixed pairs: (x_t, x_t+1) and (x_t, x_t) should score near, (x_t, the x of the
        record half a batch away: another trajectory) far."""
        x, mask = batch["image"], batch["mask"]
        partner, paired = partners(mask, half=True)
        rolled, rolled_mask = x[partner], mask * paired
        sums = {"count": jnp.sum(mask), "count/far_accuracy": jnp.sum(rolled_mask)}
        for name, b, label, weight in (("next", batch["next"], 1, mask), ("same", x, 0, mask),
                                       ("far", rolled, 2, rolled_mask)):
            output = model(x, b, train=False)
            phi = self.phi(output)
            correct = phi >= self.threshold if name == "far" else phi < self.threshold
            sums[f"{name}_accuracy"] = jnp.sum(correct * weight)
            loss = self._loss(output, jnp.full(output.shape, label))
            sums["loss"] = sums.get("loss", 0.0) + jnp.sum(loss * weight) / 3
        return sums


def partners(mask: jax.Array, half: bool) -> tuple[jax.Array, jax.Array]:
    """Fixed eval pairs among the n real rows of a padded batch (they come first): row i with
    row (i + n/2) mod n (`half`: another trajectory, for transitions in order) or (i + 1) mod
    n; and 1.0 where that pairs two real rows, distinct ones."""
    n = jnp.sum(mask > 0).astype(jnp.int32)
    rows = jnp.arange(len(mask))
    shift = n // 2 if half else jnp.ones((), jnp.int32)
    partner = jnp.where(rows < n, (rows + shift) % jnp.maximum(n, 1), rows)
    return partner, ((rows < n) & (n >= 2)).astype(jnp.float32)


def embedding_distances(f: jax.Array) -> jax.Array:
    """‖f_i − f_j‖ for rows i of f and their partners j, given as f[:, 0] and f[:, 1]."""
    squared = jnp.sum(jnp.square(f[:, 0] - f[:, 1]), -1)
    return jnp.sqrt(jnp.maximum(squared, NORM_FLOOR))


class Distillation:
    def __init__(self, config):
        cfg = config.plan2vec
        if cfg.objective != "distill":
            raise ConfigError(f"plan2vec.objective={cfg.objective!r}: only 'distill' "
                              "(objective (a)) is built")
        _plain_pixels(config, "the embedding")
        self.centre_weight, self.centre_nodes = cfg.centre_weight, cfg.centre_nodes

    def check_data(self, info) -> None:
        _needs(info, ("node", "distances"), "the embedding", "experiments.plan2vec.samples:nodes")

    def build_model(self, config, info, rngs):
        cfg = config.plan2vec
        try:
            return models.encoder(cfg.encoder, info.image_shape, cfg.latent,
                                  cfg.encoder_widths, layer_spec(config.model), rngs)
        except ValueError as e:
            raise ConfigError(str(e)) from e

    @staticmethod
    def _pair_terms(f, batch, partner):
        target = jnp.take_along_axis(batch["distances"], batch["node"][partner][:, None],
                                     axis=1)[:, 0]
        phi = embedding_distances(jnp.stack([f, f[partner]], 1))
        return phi, target, target >= 0  # −1: no path between the pair

    def train_loss(self, model, batch, rng, step):
        del step
        f = model(batch["image"], train=True)
        partner = jax.random.permutation(rng, len(f))
        phi, target, valid = self._pair_terms(f, batch, partner)
        distill = losses.masked_mean(losses.squared_error(phi, jnp.where(valid, target, 0.0)),
                                     valid)
        centre = jnp.sum(jnp.square(jnp.mean(f[:self.centre_nodes], 0)))
        loss = distill + self.centre_weight * centre
        return loss, {"loss": loss, "distill": distill, "centre": centre}

    def eval_sums(self, model, batch):
        f = model(batch["image"], train=False)
        mask = batch["mask"]
        partner, paired = partners(mask, half=False)
        phi, target, valid = self._pair_terms(f, batch, partner)
        weight = valid * mask * paired
        error = phi - jnp.where(valid, target, 0.0)
        return {"count": jnp.sum(weight), "mse": jnp.sum(jnp.square(error) * weight),
                "mae": jnp.sum(jnp.abs(error) * weight)}
