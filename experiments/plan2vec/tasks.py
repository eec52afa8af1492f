"""plan2vec's two training stages as Tasks of the one trainer.

LocalMetric (records of experiments.plan2vec.samples:transitions): each batch of B
transitions gives B pairs: the first B/2 near, (x_t, x_t) with probability
plan2vec.self_pair_probability, else (x_t, x_t+1); the rest random, (x_t, a uniformly drawn
frame of the batch). `bce`: label 0 near, 1 random, BCE with logits, φ = σ(output), the
probability of "far". `smooth_l1`: labels 0 (same frame), 1 (next frame), 2 (random), smooth-L1
regression, φ = the output.

VariationalAutoencoder (records of experiments.plan2vec.samples:frames): the VAE baseline.

Distillation (records of experiments.plan2vec.samples:nodes), objective (a): each frame i of
a batch is paired with frame π(i) of a random permutation π of the batch; loss = mean over
the pairs with a path of (‖f(x_i) − f(x_π(i))‖ − D_graph)² + centre_weight·‖mean of f over the
first centre_nodes frames‖². Every step is a fresh optax step (no gradient accumulation).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.plan2vec import models
from lib import losses
from lib.config import ConfigError
from lib.models import layer_spec
from lib.models import state as state_lib

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


def encoder_of(config, info, rngs):
    """The encoder f of plan2vec.encoder, to plan2vec.latent."""
    cfg = config.plan2vec
    try:
        return models.encoder(cfg.encoder, info.image_shape, cfg.latent, cfg.encoder_widths,
                              layer_spec(config.model), rngs)
    except ValueError as e:
        raise ConfigError(str(e)) from e


class Distillation:
    def __init__(self, config):
        cfg = config.plan2vec
        _plain_pixels(config, "the embedding")
        self.centre_weight, self.centre_nodes = cfg.centre_weight, cfg.centre_nodes

    def check_data(self, info) -> None:
        _needs(info, ("node", "distances"), "the embedding", "experiments.plan2vec.samples:nodes")

    def build_model(self, config, info, rngs):
        return encoder_of(config, info, rngs)

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


class VariationalAutoencoder:
    """The VAE baseline: negative ELBO = Σ_pixels −log p(x | z) + KL(q(z|x) ‖ N(0, I)), with
    p Bernoulli (BCE of the decoder's logits) or, with plan2vec.vae_sigma > 0, Gaussian of
    mean σ(logits) and that standard deviation,
    one reparameterised sample per frame, the KL weighted up from 0 over plan2vec.vae_warmup
    steps; planned with the latent mean."""

    def __init__(self, config):
        _plain_pixels(config, "the VAE")
        self.latent, self.widths = config.plan2vec.vae_latent, config.plan2vec.vae_widths
        self.warmup = config.plan2vec.vae_warmup
        self.sigma = config.plan2vec.vae_sigma

    def build_model(self, config, info, rngs):
        h, w, c = info.image_shape
        return models.VAE(h * w * c, self.latent, self.widths, layers=layer_spec(config.model),
                          rngs=rngs)

    def _terms(self, model, x, noise):
        flat = x.reshape(len(x), -1)
        mean, log_variance = model.encode(flat)
        z = mean + jnp.exp(0.5 * log_variance) * noise
        logits = model.decode(z)
        if self.sigma:  # Gaussian, fixed σ, mean σ(logits); the constant term left out
            reconstruction = losses.squared_error(jax.nn.sigmoid(logits), flat).sum(-1) / (
                2 * self.sigma**2)
        else:
            reconstruction = losses.sigmoid_binary_cross_entropy(logits, flat).sum(-1)
        return reconstruction, losses.gaussian_kl(mean, log_variance)

    def kl_weight(self, step):
        """1, or rising linearly from 0 over the first vae_warmup steps (KL annealing)."""
        if not self.warmup:
            return 1.0
        return jnp.minimum(1.0, step.astype(jnp.float32) / self.warmup)

    def train_loss(self, model, batch, rng, step):
        x = batch["image"]
        noise = jax.random.normal(rng, (len(x), self.latent))
        reconstruction, kl = self._terms(model, x, noise)
        loss = jnp.mean(reconstruction + self.kl_weight(step) * kl)
        return loss, {"loss": loss, "reconstruction": reconstruction.mean(), "kl": kl.mean()}

    def eval_sums(self, model, batch):
        x, mask = batch["image"], batch["mask"]
        reconstruction, kl = self._terms(model, x, jnp.zeros((len(x), self.latent)))
        return {"count": jnp.sum(mask), "loss": jnp.sum((reconstruction + kl) * mask),
                "reconstruction": jnp.sum(reconstruction * mask), "kl": jnp.sum(kl * mask)}


class Replayed(nnx.Variable):
    """Minibatches drawn from the replay by the hook, read by the next steps."""


class ValueNet(nnx.Module):
    """The encoder f, its target copy (EMA variables, soft-updated after every step), and the
    next `updates` minibatches of replayed transitions (frames of x, x*, g; r; success)."""

    def __init__(self, online: nnx.Module, shape: tuple, updates: int, batch: int):
        self.online = online
        self.target = state_lib.ema_copy(online)
        for k in ("x", "x_star", "goal"):
            setattr(self, f"replayed_{k}", Replayed(jnp.zeros((updates, batch, *shape))))
        self.replayed_reward = Replayed(jnp.zeros((updates, batch)))
        self.replayed_success = Replayed(jnp.zeros((updates, batch)))

    def __call__(self, x, *, train: bool):
        return self.online(x, train=train)


class ValueIteration:
    """Objective (b): Φ(x, g) = ‖f(x) − f(g)‖ regressed on r_scale·r + γ·(1 − success)·
    Φ_target(x*, g) over replayed transitions of value_iteration.Game. Every vi_updates
    steps the hook plays one round of the game with the current f (off the training clock)
    and draws the next vi_updates minibatches of vi_batch transitions from the replay; the
    step reads its own (records of the nodes source only carry the frames)."""

    def __init__(self, config):
        cfg = config.plan2vec
        _plain_pixels(config, "the embedding")
        self.cfg, self.seed = cfg, config.seed
        self.data_dir = config.data.data_dir
        self.game = None

    def check_data(self, info) -> None:
        _needs(info, ("node",), "the value-iteration embedding",
               "experiments.plan2vec.samples:nodes")

    def build_model(self, config, info, rngs):
        return ValueNet(encoder_of(config, info, rngs), info.image_shape, self.cfg.vi_updates,
                        self.cfg.vi_batch)

    def start(self, model) -> None:
        state_lib.copy_into(model.target, model.online)
        nnx.update(model.target, nnx.state(model.online, nnx.BatchStat))

    def update_state(self, model, step) -> None:
        """The soft update of the target's parameters; its BatchNorm statistics (ResNet
        encoders) are the online network's running ones."""
        state_lib.ema_update(model.target, model.online, 1.0 - self.cfg.vi_target_rate)
        nnx.update(model.target, nnx.state(model.online, nnx.BatchStat))

    # --- the game on the host ---------------------------------------------------------------

    def _load(self):
        """The frames and the graph's neighbours (once per process)."""
        if self.game is None:
            from scipy import sparse

            from experiments.plan2vec import samples, value_iteration
            from lib import graphs

            self.frames = samples.read(self.data_dir).images
            graph = sparse.load_npz(pathlib.Path(self.data_dir) / "graph.npz")
            table, valid = value_iteration.neighbour_table(graphs.neighbours(graph))
            self.game = value_iteration.Game(table, valid, self.cfg.vi_horizon,
                                             self.cfg.vi_epsilon, self.cfg.vi_relabel)
        return self.game

    def extra_state(self, shapes) -> dict:
        """The replay ring buffer (node indices) and the rollouts' state."""
        from experiments.plan2vec import value_iteration

        cfg, size = self.cfg, self.replay_size()
        return {
            **{f"replay/{k}": np.zeros(size, np.int32 if k in ("x", "x_star", "goal")
                                       else np.float32) for k in value_iteration.FIELDS},
            "replay/position": np.zeros((), np.int32), "replay/filled": np.zeros((), np.int32),
            **{f"rollout/{k}": np.zeros(cfg.vi_rollouts, np.int32) for k in ("x", "goal", "t")},
        }

    def replay_size(self) -> int:
        return 2 * self.cfg.vi_horizon * self.cfg.vi_rollouts

    def hook_due(self, step: int) -> bool:
        return step % self.cfg.vi_updates == 0

    def hook(self, trainer, state, step):
        from experiments.plan2vec import value_iteration

        game = self._load()
        cfg = self.cfg
        extra = {k: np.array(v) for k, v in jax.device_get(state["extra"]).items()}
        rng = np.random.default_rng([self.seed, step])
        codes = self._codes(trainer, state)
        rollout = ({k: extra[f"rollout/{k}"].astype(np.int64) for k in ("x", "goal", "t")}
                   if step > 0 else value_iteration.start(cfg.vi_rollouts, len(codes), rng))
        rollout, made = game.play(rollout, codes, rng)
        replay = {k: extra[f"replay/{k}"] for k in value_iteration.FIELDS}
        replay, position, filled = value_iteration.push(
            replay, int(extra["replay/position"]), int(extra["replay/filled"]), made)
        picks = rng.integers(filled, size=(cfg.vi_updates, cfg.vi_batch))
        extra.update({f"replay/{k}": v for k, v in replay.items()})
        extra.update({"replay/position": np.asarray(position, np.int32),
                      "replay/filled": np.asarray(filled, np.int32)})
        extra.update({f"rollout/{k}": v.astype(np.int32) for k, v in rollout.items()})
        model_state = dict(state["model_state"])
        for k in ("x", "x_star", "goal"):
            model_state[f"replayed_{k}"] = self.frames[replay[k][picks]]
        for k in ("reward", "success"):
            model_state[f"replayed_{k}"] = replay[k][picks]
        values = {"vi/success_rate": float(made["success"].mean()),
                  "vi/replay_filled": float(filled)}
        return trainer.place({**state, "extra": extra, "model_state": model_state}), values

    def _codes(self, trainer, state) -> np.ndarray:
        """f(x) of every frame with the current parameters."""
        if not hasattr(self, "_encode"):
            self._encode = jax.jit(lambda st, x: trainer.setup.model(st)(x, train=False))
        chunk = 512
        return np.concatenate([np.asarray(self._encode(state, self.frames[i:i + chunk]))
                               for i in range(0, len(self.frames), chunk)])

    # --- the step ---------------------------------------------------------------------------

    def train_loss(self, model, batch, rng, step):
        del batch, rng
        i = step % self.cfg.vi_updates
        x, x_star, goal, reward, success = (
            getattr(model, f"replayed_{k}")[...][i]
            for k in ("x", "x_star", "goal", "reward", "success"))
        f = model.online(jnp.concatenate([x, goal]), train=True)
        phi = embedding_distances(jnp.stack(jnp.split(f, 2), 1))
        target_codes = model.target(jnp.concatenate([x_star, goal]), train=False)
        bootstrap = embedding_distances(jnp.stack(jnp.split(target_codes, 2), 1))
        target = jax.lax.stop_gradient(self.cfg.vi_reward_scale * reward + self.cfg.vi_gamma
                                       * (1.0 - success) * bootstrap)
        loss = jnp.mean(losses.squared_error(phi, target))
        return loss, {"loss": loss, "target": target.mean()}

    def eval_sums(self, model, batch):
        """Mean Φ between each frame and a fixed partner (the planning evaluation judges Φ)."""
        f = model(batch["image"], train=False)
        partner, paired = partners(batch["mask"], half=False)
        phi = embedding_distances(jnp.stack([f, f[partner]], 1))
        return {"count": jnp.sum(paired), "phi": jnp.sum(phi * paired)}
