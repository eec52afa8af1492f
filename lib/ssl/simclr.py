"""SimCLR: NT-Xent over two views with in-batch negatives, as a task for the trainer.

    task = "lib.ssl.simclr:SimCLR"   data.augment = 'views' (or a Views subclass), data.views=(2,)

The model is an encoder (config.model built with num_classes=0: its output is the pooled
representation) followed by an MLP projector (ssl.projector_widths, ReLU between layers); the
loss is on the projections, probes and kNN read the encoder's representation
(`model.represent`). Both views go through the encoder in one batch, so BatchNorm sees all
2B views (as in SimCLR). A batch may carry `negative` [B, H, W, C] and `has_negative` [B]:
one extra negative per example for its view-0 row (BG_Swaps), in the same forward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lib import models
from lib.config import ConfigError
from lib.ssl import losses


class Projector(nnx.Module):
    """Linear layers of the given widths with ReLU between them (none after the last)."""

    def __init__(self, cin: int, widths, *, rngs: nnx.Rngs):
        if not widths:
            raise ConfigError("ssl.projector_widths is empty; give the projector's layer "
                              "widths, e.g. (2048, 128)")
        self.layers = nnx.List()
        for w in widths:
            self.layers.append(nnx.Linear(cin, w, rngs=rngs))
            cin = w

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        return x


class Contrastive(nnx.Module):
    """encoder → projector; `represent` gives the encoder's representation alone."""

    def __init__(self, encoder: nnx.Module, representation_dim: int, widths, *,
                 rngs: nnx.Rngs):
        self.encoder = encoder
        self.projector = Projector(representation_dim, widths, rngs=rngs)

    def represent(self, x, *, train: bool = False):
        return self.encoder(x, train=train)

    def __call__(self, x, *, train: bool):
        return self.projector(self.encoder(x, train=train).astype(jnp.float32))


def representation_dim(encoder: nnx.Module, image_shape) -> int:
    """The width of the encoder's output on one image (traced, no compute)."""
    graphdef, state = nnx.split(encoder)
    out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x, train=False), state,
                         jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))
    if out.ndim != 2:
        raise ConfigError(f"model.name={encoder.__class__.__name__} with num_classes=0 gives "
                          f"outputs of shape {out.shape}; an encoder must give [batch, dim]")
    return out.shape[-1]


def build_encoder(config, info, rngs) -> nnx.Module:
    return models.build(config.model, num_classes=0, in_channels=info.image_shape[-1],
                        image_size=info.image_shape[:2], rngs=rngs)


class SimCLR:
    """NT-Xent (ssl.temperature) on the projections of a record's two views."""

    def __init__(self, config) -> None:
        self.temperature = config.ssl.temperature
        self.widths = tuple(config.ssl.projector_widths)

    def check_data(self, info) -> None:
        if [n for n, _ in info.views] != [2]:
            raise ConfigError(
                f"{type(self).__name__} takes two views of each example (data.augment='views', "
                f"data.views=(2,)); this data gives view groups {info.views or 'none'}")

    def build_model(self, config, info, rngs) -> nnx.Module:
        encoder = build_encoder(config, info, rngs)
        dim = representation_dim(encoder, info.image_shape)
        return Contrastive(encoder, dim, self.widths, rngs=rngs)

    def train_loss(self, model, batch, rng, step):
        del rng, step
        views = batch["views"][0]["image"]  # [B, 2, H, W, C]
        b = views.shape[0]
        inputs = [views[:, 0], views[:, 1]]
        if "negative" in batch:
            inputs.append(batch["negative"])
        z = model(jnp.concatenate(inputs), train=True)
        extra = z[2 * b:] if "negative" in batch else None
        per_row = losses.nt_xent(z[:b], z[b:2 * b], self.temperature, extra,
                                 batch.get("has_negative"))
        loss = per_row.mean()
        return loss, {"loss": loss, "positive_top1": _positive_top1(z[:b], z[b:2 * b])}

    def eval_sums(self, model, batch):
        """The representation's mean L2 norm (a collapse shows as it shrinks); probes and kNN
        are evaluated on the finished run."""
        rep = model.represent(batch["image"]).astype(jnp.float32)
        mask = batch["mask"]
        return {"representation_norm": jnp.sum(jnp.linalg.norm(rep, axis=-1) * mask),
                "count": jnp.sum(mask)}


def _positive_top1(z1, z2):
    """Share of view-0 rows whose most similar other view is their partner."""
    z = losses.l2_normalize(jnp.concatenate([z1, z2]))
    b = z1.shape[0]
    sim = jnp.where(jnp.eye(2 * b, dtype=bool), -jnp.inf, z @ z.T)
    return jnp.mean(jnp.argmax(sim[:b], axis=1) == jnp.arange(b) + b)
