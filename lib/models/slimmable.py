"""Slimmable networks (joslim.md §2 "Slimmable model rules"): one set of weights whose
sub-networks keep the first c_d channels of each fused width dimension d.

Widths are chosen at call time by channel masks ({dim: [base_d] 0/1 float}, lib.slim.masks),
so one compiled step serves every width configuration; a mask zeroes the inactive channels
after each BatchNorm (and after the convolution where no BatchNorm follows), so every active
channel computes exactly what the narrow network with the sliced weights would. BatchNorm is
shared across widths (no switchable BN): in training its batch statistics are per channel,
and its running statistics move only where the channel is active. Static slicing is the
other road (`sliced`): the same module built at the sub-network's channel counts, with the
first channels of every weight; the two agree (tests/test_slimmable.py).

SlimCifarResNet: the paper's code's CIFAR ResNet-{6n+2}: stem "1x1" (a 1×1 conv 3→w₁ with
neither BN nor ReLU, the code's quirk) or "3x3" (conv, BN, ReLU); stages of n BasicBlocks at
widths (w, 2w, 4w); stage changes by option A (stride-2 subsampling, zero channels appended
after the active ones, which is why a later stage's residual width is at least the earlier
one's); global average pool and a 1×1 conv classifier (with bias). Its dims are those of
lib.slim.space.cifar_resnet: `stage{s}/residual` (the stem's output and every block's sum)
and `stage{s}/block{j}` (block j's first conv output).

Parameter paths: 'stem' ('stem_bn' for 3x3), 'stage{s}/block{j}/{conv1,bn1,conv2,bn2}',
'head' (the 1×1 conv). With features=True the model also returns 'stem', 'stage{s}/block{j}'
and 'pool'.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models.layers import DEFAULT_LAYERS, PAD1, LayerSpec, global_avg_pool

STEMS = ("1x1", "3x3")


def residual_dim(stage: int) -> str:
    return f"stage{stage}/residual"


def block_dim(stage: int, block: int) -> str:
    return f"stage{stage}/block{block}"


def _masked_bn(bn: nnx.BatchNorm, x, mask, train: bool):
    """BN(x)·mask; in training the running statistics of inactive channels stay put."""
    if mask is None:
        return bn(x, use_running_average=not train)
    if train:
        mean, var = bn.mean.value, bn.var.value
    y = bn(x, use_running_average=not train)
    if train:
        active = mask > 0
        bn.mean.value = jnp.where(active, bn.mean.value, mean)
        bn.var.value = jnp.where(active, bn.var.value, var)
    return y * mask.astype(y.dtype)


def _mask(x, mask):
    return x if mask is None else x * mask.astype(x.dtype)


def _option_a(x, cout: int, stride: int):
    """Subsample by `stride`, then zero channels appended up to `cout` (the code's
    SlimDownsample: the active channels stay first)."""
    x = x[:, ::stride, ::stride, :]
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, cout - x.shape[-1])))


class SlimBasicBlock(nnx.Module):
    """conv3×3-BN-ReLU (block dim) → conv3×3-BN (residual dim), + shortcut, ReLU."""

    def __init__(self, cin: int, width: int, cout: int, stride: int, layers: LayerSpec, *,
                 rngs: nnx.Rngs):
        self.conv1 = layers.conv(cin, width, 3, stride, padding=PAD1, rngs=rngs)
        self.bn1 = layers.bn(width, rngs=rngs)
        self.conv2 = layers.conv(width, cout, 3, padding=PAD1, rngs=rngs)
        self.bn2 = layers.bn(cout, rngs=rngs)
        self.stride, self.cout = stride, cout

    def __call__(self, x, masks: tuple, *, train: bool):
        inner, outer = masks
        y = jax.nn.relu(_masked_bn(self.bn1, self.conv1(x), inner, train))
        y = _masked_bn(self.bn2, self.conv2(y), outer, train)
        shortcut = x if self.stride == 1 and x.shape[-1] == self.cout else \
            _option_a(x, self.cout, self.stride)
        return jax.nn.relu(y + shortcut)


class _Stage(nnx.Module):
    """Blocks as attributes block0, block1, … so parameter paths read stage{s}/block{j}/…"""

    def __init__(self, blocks: list):
        self.num_blocks = len(blocks)
        for j, block in enumerate(blocks):
            setattr(self, f"block{j}", block)

    def blocks(self):
        return [getattr(self, f"block{j}") for j in range(self.num_blocks)]


class SlimCifarResNet(nnx.Module):
    """The paper's code's slimmable CIFAR ResNet (module docstring), built at `channels`
    ({dim: count}; default the base widths w, 2w, 4w) so that static slicing builds the
    narrow network with the same class."""

    def __init__(self, depth: int = 20, width: int = 16, *, num_classes: int,
                 in_channels: int = 3, stem: str = "1x1", channels: dict | None = None,
                 layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"slim_cifar_resnet depth must be 6n+2 (8, 14, 20, 32, 56, ...), "
                             f"got {depth!r}")
        if stem not in STEMS:
            raise ValueError(f"slim_cifar_resnet stem {stem!r}; valid choices: "
                             f"{', '.join(STEMS)}")
        self.blocks_per_stage = n = (depth - 2) // 6
        bases = {residual_dim(s): width * 2 ** (s - 1) for s in (1, 2, 3)}
        bases.update({block_dim(s, j): width * 2 ** (s - 1) for s in (1, 2, 3)
                      for j in range(n)})
        unknown = set(channels or {}) - set(bases)
        if unknown:
            raise ValueError(f"slim_cifar_resnet has no dims {sorted(unknown)}; its dims: "
                             f"{', '.join(bases)}")
        self.channels = {**bases, **(channels or {})}
        c = self.channels
        self.stem_kind = stem
        if stem == "1x1":
            self.stem = layers.conv(in_channels, c[residual_dim(1)], 1, padding="VALID",
                                    rngs=rngs)
            self.stem_bn = None
        else:
            self.stem = layers.conv(in_channels, c[residual_dim(1)], 3, padding=PAD1,
                                    rngs=rngs)
            self.stem_bn = layers.bn(c[residual_dim(1)], rngs=rngs)
        cin = c[residual_dim(1)]
        for s in (1, 2, 3):
            blocks = []
            for j in range(n):
                blocks.append(SlimBasicBlock(cin, c[block_dim(s, j)], c[residual_dim(s)],
                                             2 if s > 1 and j == 0 else 1, layers, rngs=rngs))
                cin = c[residual_dim(s)]
            setattr(self, f"stage{s}", _Stage(blocks))
        self.head = layers.conv(cin, num_classes, 1, padding="VALID", use_bias=True, rngs=rngs)

    def dims(self) -> list[str]:
        """The fused width dimensions, in lib.slim.space.cifar_resnet's order."""
        return [d for s in (1, 2, 3) for d in (residual_dim(s), *(
            block_dim(s, j) for j in range(self.blocks_per_stage)))]

    def __call__(self, x, *, train: bool, features: bool = False, masks: dict | None = None):
        m = masks or {}
        feats = collections.OrderedDict()
        x = self.stem(x)
        if self.stem_bn is None:
            x = _mask(x, m.get(residual_dim(1)))
        else:
            x = jax.nn.relu(_masked_bn(self.stem_bn, x, m.get(residual_dim(1)), train))
        feats["stem"] = x
        for s in (1, 2, 3):
            for j, block in enumerate(getattr(self, f"stage{s}").blocks()):
                x = block(x, (m.get(block_dim(s, j)), m.get(residual_dim(s))), train=train)
                feats[f"stage{s}/block{j}"] = x
        x = global_avg_pool(x)
        feats["pool"] = x
        logits = self.head(x[:, None, None, :])[:, 0, 0, :].astype(jnp.float32)
        return (logits, feats) if features else logits
