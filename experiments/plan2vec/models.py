"""plan2vec's networks (plan2vec.md §2, §6): local metrics φ(a, b) that score a pair of frames
(small = near), and the encoders f of the global embedding Φ(x, g) = ‖f(x) − f(g)‖₂.

Local metrics (`plan2vec.metric_net`):
    mlp         spec §6: an MLP on [a, b, |a − b|] flattened (3·H·W·C → 256 → 128 → 1)
    conv_large  the code's LocalMetricConvLarge: a and b stacked as channels → four k4/2 convs
                (32, 64, 64, 32; no padding; BN, ReLU) → flatten → 128 → 100 → 1 (64×64 in)
    conv_deep   LocalMetricConvDeep (StreetLearn): six k4 convs of 128 channels, strides
                2, 2, 1, 1, 1, 1 (BN, ReLU) → flatten → 128 → 100 → 1
Encoders (`plan2vec.encoder`): mlp (widths plan2vec.encoder_widths), resnet18 (torchvision
ResNet-18, 7×7/2 stem on the frames' channels), resnet18_coord (the same on two more
CoordConv channels); each ends in a linear map to plan2vec.latent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models import MLP, ImageNetResNet
from lib.models.coord import WithCoordinates
from lib.models.layers import LayerSpec

METRIC_NETS = ("mlp", "conv_large", "conv_deep")

ENCODERS = ("mlp", "resnet18", "resnet18_coord")


class PairMLP(nnx.Module):
    """φ(a, b) = MLP([a, b, |a − b|]): one output per pair."""

    def __init__(self, in_features: int, widths=(256, 128), *, layers: LayerSpec,
                 rngs: nnx.Rngs):
        self.mlp = MLP(widths, num_classes=1, in_features=3 * in_features, layers=layers,
                       rngs=rngs)

    def __call__(self, a, b, *, train: bool):
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        return self.mlp(jnp.concatenate([a, b, jnp.abs(a - b)], -1), train=train)[:, 0]

    def block(self, a, b):
        """([n, m] outputs for (a_i, b_j), [n, m] for (b_j, a_i)) in one pass: the first
        layer's |a − b| term, the expensive one, is shared by both orders."""
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        first = self.mlp.dense0
        d = len(a[0])
        w, bias = first.kernel[...], first.bias[...]
        wa, wb, wd = w[:d], w[d:2 * d], w[2 * d:]
        shared = jnp.einsum("nmd,dk->nmk", jnp.abs(a[:, None] - b[None]), wd)
        forward = a @ wa + bias  # a in the first slot
        backward = b @ wa + bias
        hidden_ab = shared + forward[:, None] + (b @ wb)[None]
        hidden_ba = shared + backward[None] + (a @ wb)[:, None]
        return self._rest(hidden_ab), self._rest(hidden_ba)

    def _rest(self, hidden):
        shape = hidden.shape[:2]
        x = jax.nn.relu(hidden.reshape(-1, hidden.shape[-1]))
        for i in range(1, self.mlp.num_hidden):
            x = jax.nn.relu(getattr(self.mlp, f"dense{i}")(x))
        return self.mlp.head(x)[:, 0].astype(jnp.float32).reshape(shape)


class StackedConvMetric(nnx.Module):
    """φ(a, b) from a and b stacked as channels: convs (k 4, no padding, BN, ReLU), flatten,
    then the fully connected widths and one output."""

    def __init__(self, channels: int, size: tuple, convs, fc, *, layers: LayerSpec,
                 rngs: nnx.Rngs):
        cin, (h, w) = 2 * channels, size
        self.num_convs, self.num_fc = len(convs), len(fc)
        for i, (cout, stride) in enumerate(convs):
            setattr(self, f"conv{i}", layers.conv(cin, cout, 4, stride, padding="VALID",
                                                  rngs=rngs))
            setattr(self, f"bn{i}", layers.bn(cout, rngs=rngs))
            h, w, cin = (h - 4) // stride + 1, (w - 4) // stride + 1, cout
            if min(h, w) < 1:
                raise ValueError(f"frames of {size[0]}×{size[1]} are too small for this "
                                 f"local metric's {len(convs)} unpadded 4×4 convs; use "
                                 "larger frames or plan2vec.metric_net=mlp")
        cin = h * w * cin
        for i, width in enumerate((*fc, 1)):
            setattr(self, f"fc{i}", layers.linear(cin, width, rngs=rngs))
            cin = width

    def __call__(self, a, b, *, train: bool):
        x = jnp.concatenate([a, b], -1)
        for i in range(self.num_convs):
            x = getattr(self, f"conv{i}")(x)
            x = jax.nn.relu(getattr(self, f"bn{i}")(x, use_running_average=not train))
        x = x.reshape(len(x), -1)
        for i in range(self.num_fc):
            x = jax.nn.relu(getattr(self, f"fc{i}")(x))
        return getattr(self, f"fc{self.num_fc}")(x)[:, 0].astype(jnp.float32)


class VAE(nnx.Module):
    """The VAE baseline (spec §3): an MLP encoder to the mean and log-variance of a Gaussian
    latent, an MLP decoder to per-pixel logits (the likelihood is the task's: Gaussian around
    σ(logits), or Bernoulli)."""

    def __init__(self, in_features: int, latent: int, widths=(256,), *, layers: LayerSpec,
                 rngs: nnx.Rngs):
        self.encoder = MLP(widths, num_classes=2 * latent, in_features=in_features,
                           layers=layers, rngs=rngs)
        self.decoder = MLP(tuple(reversed(widths)), num_classes=in_features,
                           in_features=latent, layers=layers, rngs=rngs)
        self.latent = latent

    def encode(self, x):
        out = self.encoder(x, train=False)
        return out[:, :self.latent], out[:, self.latent:]

    def decode(self, z):
        return self.decoder(z, train=False)

    def __call__(self, x, *, train: bool):
        """The latent mean: the code planned with."""
        return self.encode(x)[0]


def pair_block(model, a, b):
    """(outputs for every (a_i, b_j), outputs for every (b_j, a_i)), each [n, m]."""
    if isinstance(model, PairMLP):
        return model.block(a, b)
    m = len(b)

    def row(ai):  # one a against every b: m pairs per call, so memory stays that of m pairs
        left = jnp.broadcast_to(ai, (m, *ai.shape))
        return model(left, b, train=False), model(b, left, train=False)

    return jax.lax.map(row, a)


def local_metric(name: str, image_shape: tuple, layers: LayerSpec, rngs: nnx.Rngs
                 ) -> nnx.Module:
    h, w, c = image_shape
    if name == "mlp":
        return PairMLP(h * w * c, layers=layers, rngs=rngs)
    if name == "conv_large":
        return StackedConvMetric(c, (h, w), ((32, 2), (64, 2), (64, 2), (32, 2)), (128, 100),
                                 layers=layers, rngs=rngs)
    if name == "conv_deep":
        return StackedConvMetric(c, (h, w), tuple((128, s) for s in (2, 2, 1, 1, 1, 1)),
                                 (128, 100), layers=layers, rngs=rngs)
    raise ValueError(f"plan2vec.metric_net={name!r}; valid choices: {', '.join(METRIC_NETS)}")


def encoder(name: str, image_shape: tuple, latent: int, widths, layers: LayerSpec,
            rngs: nnx.Rngs) -> nnx.Module:
    h, w, c = image_shape
    if name == "mlp":
        return MLP(tuple(widths), num_classes=latent, in_features=h * w * c, layers=layers,
                   rngs=rngs)
    if name == "resnet18":
        return ImageNetResNet(18, num_classes=latent, in_channels=c, layers=layers, rngs=rngs)
    if name == "resnet18_coord":
        return WithCoordinates(ImageNetResNet(18, num_classes=latent, in_channels=c + 2,
                                              layers=layers, rngs=rngs))
    raise ValueError(f"plan2vec.encoder={name!r}; valid choices: {', '.join(ENCODERS)}")
