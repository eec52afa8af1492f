"""SimCLR: NT-Xent over two views with in-batch negatives, as a task for the trainer.

    task = "lib.ssl.simclr:SimCLR"   data.augment = 'views' (or a Views subclass), data.views=(2,)

The model is an encoder (config.model built with num_classes=0: its output is the pooled
representation) followed by an MLP projector (ssl.projector_widths, ReLU between layers,
BatchNorm before each ReLU with ssl.projector_batchnorm); the loss is on the projections,
probes and kNN read the encoder's representation (`model.represent`). The host makes the crops
(data.augment='views'); ssl.color adds a method's colour recipe per view on device, and
ssl.input_normalization normalises inside the network (both on [0, 1] pixels), so every
method here shares one view path (`view_images`). Both views go through the encoder in one
batch, so BatchNorm sees all 2B views (as in SimCLR). A batch may carry `negative`
[B, H, W, C] and `has_negative` [B]: one extra negative per example for its view-0 row
(BG_Swaps), in the same forward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lib import models
from lib.config import ConfigError
from lib.data import device_augment, preprocess
from lib.models import layers
from lib.ssl import losses


class Projector(nnx.Module):
    """Linear layers of the given widths with ReLU between them (none after the last); with
    `batchnorm` (a LayerSpec), BatchNorm (γ 1, β 0) before each ReLU, as SimCLR, BYOL and
    SwAV's heads have."""

    def __init__(self, cin: int, widths, *, batchnorm: layers.LayerSpec | None = None,
                 rngs: nnx.Rngs):
        if not widths:
            raise ConfigError("ssl.projector_widths is empty; give the projector's layer "
                              "widths, e.g. (2048, 128)")
        self.layers, self.norms = nnx.List(), nnx.List()
        for i, w in enumerate(widths):
            self.layers.append(nnx.Linear(cin, w, rngs=rngs))
            if batchnorm is not None and i < len(widths) - 1:
                self.norms.append(batchnorm.bn(w, rngs=rngs))
            cin = w

    def __call__(self, x, *, train: bool = False):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                if self.norms:
                    x = self.norms[i](x, use_running_average=not train)
                x = jax.nn.relu(x)
        return x


class Contrastive(nnx.Module):
    """[input normalisation →] encoder → projector; `represent` gives the encoder's
    representation alone. `input_stats` (mean, std), when given, normalise every input here,
    so on-device colour ops can act on [0, 1] pixels first and probes see the same inputs."""

    def __init__(self, encoder: nnx.Module, projector: Projector,
                 input_stats: tuple | None = None):
        self.encoder = encoder
        self.projector = projector
        self.input_stats = input_stats

    def represent(self, x, *, train: bool = False):
        if self.input_stats is not None:
            x = device_augment.normalize(x, *self.input_stats)
        return self.encoder(x, train=train)

    def __call__(self, x, *, train: bool):
        return self.projector(self.represent(x, train=train).astype(jnp.float32), train=train)


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
    """config.model without a classifier, for images of the data's channel count."""
    stats = input_stats(config)
    if stats and len(stats[0]) != info.image_shape[-1]:
        raise ConfigError(
            f"ssl.input_normalization={config.ssl.input_normalization!r} has "
            f"{len(stats[0])} channels but {info.name} images have {info.image_shape[-1]}; "
            "choose statistics of the data's channel count")
    return models.build(config.model, num_classes=0, in_channels=info.image_shape[-1],
                        image_size=info.image_shape[:2], rngs=rngs)


def check_queue_size(queue_size: int, batch_size: int, why: str) -> None:
    """A queue takes whole batches: ssl.queue_size must be a positive multiple of the batch."""
    if queue_size < 1 or queue_size % batch_size:
        raise ConfigError(
            f"ssl.queue_size={queue_size} is not a multiple of data.batch_size={batch_size}: "
            f"{why}; choose a queue size divisible by the batch, e.g. "
            f"{max(1, queue_size // batch_size) * batch_size}")


def projector_layers(config) -> layers.LayerSpec | None:
    """The LayerSpec for the projector's BatchNorms (ssl.projector_batchnorm), grouped like
    the encoder's (model.bn_group_size)."""
    if not config.ssl.projector_batchnorm:
        return None
    return layers.LayerSpec(bn_init="fixed", bn_group_size=config.model.bn_group_size)


class SimCLR:
    """NT-Xent (ssl.temperature) on the projections of a record's two views."""

    def __init__(self, config) -> None:
        self.temperature = config.ssl.temperature
        self.widths = tuple(config.ssl.projector_widths)
        self.head_layers = projector_layers(config)
        self.color, self.input_stats = _view_color(config), input_stats(config)

    def view_images(self, batch, rng) -> list:
        """Each view group's images [B, n, S, S, C], with ssl.color applied per view index
        (counted over all groups) on device."""
        groups = [g["image"] for g in batch["views"]]
        if not self.color:
            return groups
        out, index = [], 0
        for g, key in zip(groups, jax.random.split(rng, len(groups))):
            keys = jax.random.split(key, g.shape[1])
            out.append(jnp.stack([self._colour(index + v, keys[v], g[:, v])
                                  for v in range(g.shape[1])], axis=1))
            index += g.shape[1]
        return out

    def negative_image(self, batch, rng):
        """BG_Swaps' negative, coloured as the positive (view 1) is."""
        if not self.color:
            return batch["negative"]
        return self._colour(1, rng, batch["negative"])

    def _colour(self, view: int, key, images):
        return self.color[min(view, len(self.color) - 1)](key, images)

    def check_data(self, info) -> None:
        if [n for n, _ in info.views] != [2]:
            raise ConfigError(
                f"{type(self).__name__} takes two views of each example (data.augment='views', "
                f"data.views=(2,)); this data gives view groups {info.views or 'none'}")

    def build_model(self, config, info, rngs) -> nnx.Module:
        encoder = build_encoder(config, info, rngs)
        dim = representation_dim(encoder, info.image_shape)
        projector = Projector(dim, self.widths, batchnorm=self.head_layers, rngs=rngs)
        return Contrastive(encoder, projector, self.input_stats)

    def train_loss(self, model, batch, rng, step):
        del step
        view_rng, negative_rng = jax.random.split(rng)
        views = self.view_images(batch, view_rng)[0]  # [B, 2, H, W, C]
        b = views.shape[0]
        inputs = [views[:, 0], views[:, 1]]
        if "negative" in batch:
            inputs.append(self.negative_image(batch, negative_rng))
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


def _view_color(config) -> tuple:
    """ssl.color's per-view recipes; () for none."""
    name = config.ssl.color
    if name and name not in device_augment.RECIPES:
        raise ConfigError(f"ssl.color={name!r}; valid choices: '' (none), "
                          f"{', '.join(device_augment.RECIPES)}")
    if name and config.data.normalization != "none":
        raise ConfigError(f"ssl.color={name!r} colours [0, 1] pixels on device, but "
                          f"data.normalization={config.data.normalization!r} normalises them "
                          "on the host; set data.normalization='none' and "
                          "ssl.input_normalization to the statistics wanted")
    return device_augment.RECIPES[name] if name else ()


def input_stats(config) -> tuple | None:
    """ssl.input_normalization's (mean, std), or None."""
    name = config.ssl.input_normalization
    if name == "none":
        return None
    if name not in preprocess.NORMALIZATION:
        raise ConfigError(f"ssl.input_normalization={name!r}; valid choices: none, "
                          f"{', '.join(preprocess.NORMALIZATION)}")
    if config.data.normalization != "none":
        raise ConfigError(f"ssl.input_normalization={name!r} normalises inside the network, "
                          f"but data.normalization={config.data.normalization!r} already did "
                          "on the host; set data.normalization='none'")
    return tuple(tuple(v) for v in preprocess.NORMALIZATION[name])


def _positive_top1(z1, z2):
    """Share of view-0 rows whose most similar other view is their partner."""
    z = losses.l2_normalize(jnp.concatenate([z1, z2]))
    b = z1.shape[0]
    sim = jnp.where(jnp.eye(2 * b, dtype=bool), -jnp.inf, z @ z.T)
    return jnp.mean(jnp.argmax(sim[:b], axis=1) == jnp.arange(b) + b)
