"""Slimmable networks (joslim.md §2 "Slimmable model rules"): one set of weights whose
sub-networks keep the first c_d channels of each fused width dimension d.

Widths are chosen at call time by channel masks ({dim: [base_d] 0/1 float}, lib.slim.masks),
so one compiled step serves every width configuration; a mask zeroes the inactive channels
after each BatchNorm (and after the convolution where no BatchNorm follows), so every active
channel computes exactly what the narrow network with the sliced weights would. BatchNorm is
shared across widths (no switchable BN): in training its batch statistics are per channel,
and its running statistics move only where the channel is active. Static slicing is the
other road (`sliced`): the same module built at the sub-network's channel counts, with the
first channels of every weight; the two agree (tests/test_slimmable.py and
tests/test_slimmable_imagenet.py).

SlimCifarResNet: the paper's code's CIFAR ResNet-{6n+2}: stem "1x1" (a 1×1 conv 3→w₁ with
neither BN nor ReLU, the code's quirk) or "3x3" (conv, BN, ReLU); stages of n BasicBlocks at
widths (w, 2w, 4w); stage changes by option A (stride-2 subsampling, zero channels appended
after the active ones, which is why a later stage's residual width is at least the earlier
one's) or, with shortcut="projection", a 1×1 conv + BN (width_transfer.md §6); global
average pool and a 1×1 conv classifier with bias (head="dense": a dense layer). Its dims are
those of lib.slim.space.cifar_resnet: `stage{s}/residual` (the stem's output and every
block's sum) and `stage{s}/block{j}` (block j's first conv output).

Parameter paths: 'stem' ('stem_bn' for 3x3), 'stage{s}/block{j}/{conv1,bn1,conv2,bn2}'
(and '{downsample,downsample_bn}' where a projection shortcut is), 'head'. With
features=True the model also returns 'stem', 'stage{s}/block{j}' and 'pool'.

SlimImageNetResNet (18/34/50; other stage `widths` and `layout`), SlimMobileNetV2
(`width_mult`, `depth_mult`) and SlimMobileNetV3 (large/small) have the dims and
convolutions of lib.slim.space.imagenet_resnet, mobilenet_v2 and mobilenet_v3 at the same
arguments, their convs named as the arch's. Every model is built at `channels` ({dim:
count}, default the bases): narrower for static slicing, or wider than the bases (a network
widened past them, as width_transfer's expand step does). A depthwise conv is masked like
any other: at full width, with its inactive inputs zero, each active channel computes what
the narrow network's depthwise conv (one group per active channel) computes. Where a
residual add joins two dims (only MobileNetV3-Large's first block: `stem` onto
`stage1/residual`), the input is zero-padded to the output's width, which the width space's
chain keeps at least as wide.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models.layers import DEFAULT_LAYERS, PAD1, LayerSpec, global_avg_pool
from lib.slim import space

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
    """conv3×3-BN-ReLU (block dim) → conv3×3-BN (residual dim), + option-A shortcut, ReLU.
    (SlimCifarResNet's projection-shortcut variant uses SlimResNetBlock.)"""

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
                 shortcut: str = "zero_pad", head: str = "conv",
                 layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"slim_cifar_resnet depth must be 6n+2 (8, 14, 20, 32, 56, ...), "
                             f"got {depth!r}")
        for what, value, valid in (("stem", stem, STEMS),
                                   ("shortcut", shortcut, space.CIFAR_SHORTCUTS),
                                   ("head", head, space.CIFAR_HEADS)):
            if value not in valid:
                raise ValueError(f"slim_cifar_resnet {what} {value!r}; valid choices: "
                                 f"{', '.join(valid)}")
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
        cin, cin_dim = c[residual_dim(1)], residual_dim(1)
        for s in (1, 2, 3):
            blocks = []
            for j in range(n):
                stride = 2 if s > 1 and j == 0 else 1
                if shortcut == "projection":  # torchvision's BasicBlock: a 1×1 conv + BN
                    blocks.append(SlimResNetBlock(  # where the stage changes
                        cin, c[block_dim(s, j)], c[residual_dim(s)], stride, layers,
                        bottleneck=False, downsample=cin_dim != residual_dim(s), rngs=rngs))
                else:
                    blocks.append(SlimBasicBlock(cin, c[block_dim(s, j)], c[residual_dim(s)],
                                                 stride, layers, rngs=rngs))
                cin, cin_dim = c[residual_dim(s)], residual_dim(s)
            setattr(self, f"stage{s}", _Stage(blocks))
        self.head_kind = head
        self.head = (layers.conv(cin, num_classes, 1, padding="VALID", use_bias=True, rngs=rngs)
                     if head == "conv" else layers.linear(cin, num_classes, rngs=rngs))

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
        if self.head_kind == "conv":
            logits = self.head(x[:, None, None, :])[:, 0, 0, :].astype(jnp.float32)
        else:
            logits = self.head(x).astype(jnp.float32)
        return (logits, feats) if features else logits


# --- ImageNet ResNets and MobileNets (lib.slim.space.imagenet_resnet, mobilenet_v2, _v3) ---

ACTIVATIONS = {"relu": jax.nn.relu, "relu6": jax.nn.relu6, "hswish": jax.nn.hard_swish}
# MobileNetV3 Tables 1 and 2, the NL column: ReLU up to this row of space.MOBILENET_V3[kind]
# (0-based), h-swish from it on.
V3_HSWISH_FROM = {"large": 6, "small": 3}
V3_HEAD = 1280  # the 1×1 conv after pooling (space.mobilenet_v3's fixed "head"; the code's)


def _same(kernel: int):
    """PyTorch's kernel // 2 padding on both sides: ceil(side / stride) outputs for odd k."""
    p = kernel // 2
    return ((p, p), (p, p))


def _widths(name: str, bases: dict[str, int], channels: dict | None) -> dict[str, int]:
    """{dim: channels}: the base widths, in the width space's order, overridden by
    `channels` (a narrow or widened network's counts)."""
    unknown = set(channels or {}) - set(bases)
    if unknown:
        raise ValueError(f"{name} has no dims {sorted(unknown)}; its dims: {', '.join(bases)}")
    return {d: (channels or {}).get(d, b) for d, b in bases.items()}


def _add(y, x):
    """y + x, x zero-padded to y's channels: a residual add between widths that a chain of
    the width space keeps non-decreasing (only ever unequal in a sliced network)."""
    extra = y.shape[-1] - x.shape[-1]
    if extra < 0:
        raise ValueError(f"a residual add of {x.shape[-1]} channels onto {y.shape[-1]}: the "
                         "later width must be at least the earlier one (the chain rule)")
    return y + jnp.pad(x, ((0, 0),) * (x.ndim - 1) + ((0, extra),))


class SlimResNetBlock(nnx.Module):
    """torchvision's BasicBlock (3×3 conv with the stride → 3×3 conv) or Bottleneck (1×1 →
    3×3 with the stride → 1×1), each conv followed by BN; the inner convs' outputs are the
    block dim, the last conv's the residual dim. Shortcut: a 1×1 conv + BN where the block
    changes stride or (base) width (`downsample`), the input otherwise; ReLU after the add."""

    def __init__(self, cin: int, width: int, cout: int, stride: int, layers: LayerSpec, *,
                 bottleneck: bool, downsample: bool, rngs: nnx.Rngs):
        if bottleneck:
            self.conv1 = layers.conv(cin, width, 1, padding="VALID", rngs=rngs)
            self.conv2 = layers.conv(width, width, 3, stride, padding=PAD1, rngs=rngs)
            self.conv3 = layers.conv(width, cout, 1, padding="VALID", rngs=rngs)
        else:
            self.conv1 = layers.conv(cin, width, 3, stride, padding=PAD1, rngs=rngs)
            self.conv2 = layers.conv(width, cout, 3, padding=PAD1, rngs=rngs)
            self.conv3 = None
        self.bn1 = layers.bn(width, rngs=rngs)
        self.bn2 = layers.bn(width if bottleneck else cout, rngs=rngs)
        self.bn3 = layers.bn(cout, rngs=rngs) if bottleneck else None
        if downsample:
            self.downsample = layers.conv(cin, cout, 1, stride, padding="VALID", rngs=rngs)
            self.downsample_bn = layers.bn(cout, rngs=rngs)
        else:
            self.downsample = self.downsample_bn = None

    def __call__(self, x, masks: tuple, *, train: bool):
        inner, outer = masks
        y = jax.nn.relu(_masked_bn(self.bn1, self.conv1(x), inner, train))
        if self.conv3 is None:
            y = _masked_bn(self.bn2, self.conv2(y), outer, train)
        else:
            y = jax.nn.relu(_masked_bn(self.bn2, self.conv2(y), inner, train))
            y = _masked_bn(self.bn3, self.conv3(y), outer, train)
        if self.downsample is not None:
            x = _masked_bn(self.downsample_bn, self.downsample(x), outer, train)
        return jax.nn.relu(_add(y, x))


class SlimImageNetResNet(nnx.Module):
    """The paper's code's slimmable ImageNet ResNet-18/34/50 (torchvision's: four stages of
    `layout` blocks, default the depth's, at `widths`, default 64/128/256/512, Bottleneck
    outputs ×4): 7×7/2 conv + BN + ReLU + 3×3/2 max-pool, the stages, global average pool and a
    1×1-conv classifier with bias. Built at `channels` ({dim: count}; default the base
    widths) so that static slicing builds the narrow network with the same class, and a
    width optimiser any wider one. Dims as lib.slim.space.imagenet_resnet at the same depth,
    widths and layout: `stage{s}/residual`, `stage{s}/block{j}`, and in ResNet-50 `stem`
    (the BasicBlock nets' stem output is stage 1's residual, since their first block adds
    its input unprojected).

    Parameter paths: 'stem', 'stem_bn', 'stage{s}/block{j}/{conv1,bn1,conv2,bn2[,conv3,bn3]}',
    'stage{s}/block{j}/{downsample,downsample_bn}', 'head' (the arch's conv names). With
    features=True the model also returns 'stem' (after the max-pool), 'stage{s}/block{j}'
    and 'pool'."""

    def __init__(self, depth: int = 18, *, num_classes: int, in_channels: int = 3,
                 widths=None, layout=None, channels: dict | None = None,
                 layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        if depth not in space.IMAGENET_RESNETS:
            raise ValueError(f"slim_imagenet_resnet depth must be one of "
                             f"{', '.join(map(str, space.IMAGENET_RESNETS))}; got {depth!r}")
        kind, widths, self.layout = space.imagenet_resnet_stages(depth, widths, layout)
        bottleneck = kind == "bottleneck"
        expansion = 4 if bottleneck else 1
        bases = {"stem": widths[0]} if bottleneck else {}
        for s, (w, n) in enumerate(zip(widths, self.layout), 1):
            bases[residual_dim(s)] = w * expansion
            bases.update({block_dim(s, j): w for j in range(n)})
        self.channels = c = _widths("slim_imagenet_resnet", bases, channels)
        self.stem_dim = "stem" if bottleneck else residual_dim(1)
        self.stem = layers.conv(in_channels, c[self.stem_dim], 7, 2, padding=_same(7),
                                rngs=rngs)
        self.stem_bn = layers.bn(c[self.stem_dim], rngs=rngs)
        cin, cin_base = self.stem_dim, widths[0]
        for s, (w, n) in enumerate(zip(widths, self.layout), 1):
            blocks = []
            for j in range(n):
                stride = 2 if s > 1 and j == 0 else 1
                blocks.append(SlimResNetBlock(
                    c[cin], c[block_dim(s, j)], c[residual_dim(s)], stride, layers,
                    bottleneck=bottleneck, downsample=stride != 1 or cin_base != w * expansion,
                    rngs=rngs))
                cin, cin_base = residual_dim(s), w * expansion
            setattr(self, f"stage{s}", _Stage(blocks))
        self.head = layers.conv(c[cin], num_classes, 1, padding="VALID", use_bias=True,
                                rngs=rngs)

    def dims(self) -> list[str]:
        """The fused width dimensions, in lib.slim.space.imagenet_resnet's order."""
        return list(self.channels)

    def __call__(self, x, *, train: bool, features: bool = False, masks: dict | None = None):
        m = masks or {}
        feats = collections.OrderedDict()
        x = jax.nn.relu(_masked_bn(self.stem_bn, self.stem(x), m.get(self.stem_dim), train))
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=PAD1)  # -inf padding, as PyTorch
        feats["stem"] = x
        for s in range(1, len(self.layout) + 1):
            for j, block in enumerate(getattr(self, f"stage{s}").blocks()):
                x = block(x, (m.get(block_dim(s, j)), m.get(residual_dim(s))), train=train)
                feats[f"stage{s}/block{j}"] = x
        x = global_avg_pool(x)
        feats["pool"] = x
        logits = self.head(x[:, None, None, :])[:, 0, 0, :].astype(jnp.float32)
        return (logits, feats) if features else logits


class SlimMobileBlock(nnx.Module):
    """A MobileNet block at expansion width `mid`: [1×1 expansion conv-BN-act] → k×k
    depthwise conv (one group per channel, the stride) -BN-act → [squeeze-and-excitation]
    → 1×1 projection conv-BN (linear), plus the input where `residual` (stride 1 and equal
    base widths in and out). Without expansion (the depthwise-separable first block) `mid`
    is the input's width and its dim. SE (MobileNetV3): global average pool, 1×1 conv to
    `se` channels (fixed: the base expansion // 4) with bias, ReLU, 1×1 conv back with bias,
    hard sigmoid, times the input. Masked, a depthwise conv at full width computes on each
    active channel what the narrow conv computes (its inactive inputs are zero); SE's inner
    width is whole in both, and its gate only scales channels already zero where inactive.
    """

    def __init__(self, cin: int, mid: int, cout: int, kernel: int, stride: int,
                 layers: LayerSpec, *, expand: bool, se: int, act: str, residual: bool,
                 rngs: nnx.Rngs):
        if expand:
            self.expand = layers.conv(cin, mid, 1, padding="VALID", rngs=rngs)
            self.expand_bn = layers.bn(mid, rngs=rngs)
        else:
            self.expand = self.expand_bn = None
        self.dw = layers.conv(mid, mid, kernel, stride, padding=_same(kernel), groups=mid,
                              rngs=rngs)
        self.dw_bn = layers.bn(mid, rngs=rngs)
        if se:
            self.se_reduce = layers.conv(mid, se, 1, padding="VALID", use_bias=True, rngs=rngs)
            self.se_expand = layers.conv(se, mid, 1, padding="VALID", use_bias=True, rngs=rngs)
        else:
            self.se_reduce = self.se_expand = None
        self.project = layers.conv(mid, cout, 1, padding="VALID", rngs=rngs)
        self.project_bn = layers.bn(cout, rngs=rngs)
        self.act, self.residual = act, residual

    def __call__(self, x, masks: tuple, *, train: bool):
        inner, outer = masks
        act = ACTIVATIONS[self.act]
        y = x
        if self.expand is not None:
            y = act(_masked_bn(self.expand_bn, self.expand(y), inner, train))
        y = act(_masked_bn(self.dw_bn, self.dw(y), inner, train))
        if self.se_reduce is not None:
            g = jnp.mean(y, axis=(1, 2), keepdims=True)
            y = y * jax.nn.hard_sigmoid(self.se_expand(jax.nn.relu(self.se_reduce(g))))
        y = _masked_bn(self.project_bn, self.project(y), outer, train)
        return _add(y, x) if self.residual else y


class _SlimMobileNet(nnx.Module):
    """What MobileNetV2 and V3 share: the stem conv-BN-act, stages of SlimMobileBlocks, the
    fixed-width 1×1 'last' conv-BN-act (activation `last_act`) and the global average pool;
    the subclasses add what follows. `stages`: per stage a list of (kernel, stride, SE width
    or 0, activation, residual) rows; block j of stage s expands to dim stage{s}/block{j}
    (stage 1: no expansion, the stem's dim) and projects to stage{s}/residual."""

    last_act = "relu6"

    def __init__(self, name: str, bases: dict, channels: dict | None, in_channels: int,
                 stem_act: str, stages: list, last: int, layers: LayerSpec, rngs: nnx.Rngs):
        self.channels = c = _widths(name, bases, channels)
        self.stem_act = stem_act
        self.stem = layers.conv(in_channels, c["stem"], 3, 2, padding=PAD1, rngs=rngs)
        self.stem_bn = layers.bn(c["stem"], rngs=rngs)
        cin = "stem"
        self.num_stages = len(stages)
        for s, rows in enumerate(stages, 1):
            blocks = []
            for j, (kernel, stride, se, act, residual) in enumerate(rows):
                mid = "stem" if s == 1 else block_dim(s, j)
                blocks.append(SlimMobileBlock(c[cin], c[mid], c[residual_dim(s)], kernel,
                                              stride, layers, expand=s > 1, se=se, act=act,
                                              residual=residual, rngs=rngs))
                cin = residual_dim(s)
            setattr(self, f"stage{s}", _Stage(blocks))
        self.last = layers.conv(c[cin], last, 1, padding="VALID", rngs=rngs)
        self.last_bn = layers.bn(last, rngs=rngs)

    def dims(self) -> list[str]:
        """The fused width dimensions, in the lib.slim.space builder's order."""
        return list(self.channels)

    def _features(self, x, m: dict, train: bool, feats: dict):
        """The globally pooled output of 'last', filling `feats`."""
        x = ACTIVATIONS[self.stem_act](_masked_bn(self.stem_bn, self.stem(x), m.get("stem"),
                                                  train))
        feats["stem"] = x
        for s in range(1, self.num_stages + 1):
            for j, block in enumerate(getattr(self, f"stage{s}").blocks()):
                inner = m.get("stem" if s == 1 else block_dim(s, j))
                x = block(x, (inner, m.get(residual_dim(s))), train=train)
                feats[f"stage{s}/block{j}"] = x
        x = ACTIVATIONS[self.last_act](self.last_bn(self.last(x), use_running_average=not train))
        feats["last"] = x
        x = global_avg_pool(x)
        feats["pool"] = x
        return x


class SlimMobileNetV2(_SlimMobileNet):
    """The paper's code's slimmable MobileNetV2 (joslim.md §2): 3×3/2 stem conv → 32, a
    depthwise-separable block 32 → 16 (stage 1), inverted-residual stages 2–7 of
    lib.slim.space.MOBILENET_V2 (expansion base in·t for a stage's first block, c·t after;
    the add where stride 1 and in == out), 1×1 conv → 1280 (not searchable), global average
    pool, dropout (`dropout`, the code's 0.5; none in eval), Linear classifier; ReLU6
    throughout, BN after every conv. `width_mult` and `depth_mult` scale the widths (the
    last conv's too, above 1) and blocks per stage as lib.slim.space.mobilenet_v2_layout
    says. Dims as lib.slim.space.mobilenet_v2 at the same multipliers: `stem` (the stem's
    output, also the first block's depthwise width), `stage1/residual`, then per stage
    `stage{s}/residual` and `stage{s}/block{j}` (block j's expansion width). The code's init,
    normal(0, √(2/n)), n = k·k·C_in/groups, is model.kernel_init = kaiming_normal (fan_in).

    Parameter paths: 'stem', 'stem_bn', 'stage{s}/block{j}/{expand,dw,project}[_bn]', 'last',
    'last_bn', 'head' (the Linear). With features=True the model also returns 'stem',
    'stage{s}/block{j}', 'last' and 'pool'."""

    def __init__(self, *, num_classes: int, in_channels: int = 3, dropout: float = 0.5,
                 width_mult: float = 1.0, depth_mult: float = 1.0, channels: dict | None = None,
                 layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        stem, cin, table, last = space.mobilenet_v2_layout(width_mult, depth_mult)
        bases = {"stem": stem, residual_dim(1): cin}
        stages = [[(3, 1, 0, "relu6", False)]]
        for s, (t, c, n, first_stride) in enumerate(table, 2):
            bases[residual_dim(s)] = c
            rows = []
            for j in range(n):
                bases[block_dim(s, j)] = cin * t
                stride = first_stride if j == 0 else 1
                rows.append((3, stride, 0, "relu6", stride == 1 and cin == c))
                cin = c
            stages.append(rows)
        super().__init__("slim_mobilenet_v2", bases, channels, in_channels, "relu6", stages,
                         last, layers, rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout else None
        self.head = layers.linear(last, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool, features: bool = False, masks: dict | None = None):
        feats = collections.OrderedDict()
        x = self._features(x, masks or {}, train, feats)
        if self.dropout is not None:
            x = self.dropout(x, deterministic=not train)
        logits = self.head(x).astype(jnp.float32)
        return (logits, feats) if features else logits


class SlimMobileNetV3(_SlimMobileNet):
    """Slimmable MobileNetV3-Large/Small with the paper's code's dims and the MobileNetV3
    tables' layers (lib.slim.space.MOBILENET_V3): 3×3/2 stem conv → 16 with h-swish; the
    first row as a depthwise-separable block (stage 1; Large adds its input, Small has SE
    and stride 2); the other rows as inverted-residual blocks, a new stage where the output
    width changes (the code's grouping), the add where stride 1 and in == out; k×k depthwise
    convs, SE (reduction 4: a fixed exp // 4 inner width, hard sigmoid) after the depthwise
    conv's activation where the table says, ReLU or h-swish as its NL column; 1×1 conv →
    960 (Large) / 576 (Small) with BN and h-swish (not searchable), global average pool,
    1×1 conv → 1280 with bias and h-swish ('post_pool'; not counted by the cost), dropout
    (`dropout`: the code's 0), Linear classifier. Dims as lib.slim.space.mobilenet_v3:
    `stem`, `stage1/residual`, per stage `stage{s}/residual` and `stage{s}/block{j}`.

    Parameter paths as SlimMobileNetV2's, plus 'stage{s}/block{j}/{se_reduce,se_expand}' and
    'post_pool'; features as SlimMobileNetV2's."""

    last_act = "hswish"

    def __init__(self, kind: str = "large", *, num_classes: int, in_channels: int = 3,
                 dropout: float = 0.0, channels: dict | None = None,
                 layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        if kind not in space.MOBILENET_V3:
            raise ValueError(f"slim_mobilenet_v3 kind {kind!r}; valid choices: "
                             f"{', '.join(space.MOBILENET_V3_KINDS)}")
        self.kind = kind
        table = space.MOBILENET_V3[kind]
        bases, stages, cin = {"stem": 16}, [], 16
        for i, (kernel, exp, c, se, stride) in enumerate(table):
            if not stages or c != cin:  # the first row, and every change of output width
                stages.append([])
                bases[residual_dim(len(stages))] = c
            if i:
                bases[block_dim(len(stages), len(stages[-1]))] = exp
            act = "hswish" if i >= V3_HSWISH_FROM[kind] else "relu"
            stages[-1].append((kernel, stride, exp // 4 if se else 0, act,
                               stride == 1 and cin == c))
            cin = c
        last = space.MOBILENET_V3_LAST[kind]
        super().__init__("slim_mobilenet_v3", bases, channels, in_channels, "hswish", stages,
                         last, layers, rngs)
        self.post_pool = layers.conv(last, V3_HEAD, 1, padding="VALID", use_bias=True,
                                     rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout else None
        self.head = layers.linear(V3_HEAD, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool, features: bool = False, masks: dict | None = None):
        feats = collections.OrderedDict()
        x = self._features(x, masks or {}, train, feats)
        x = jax.nn.hard_swish(self.post_pool(x[:, None, None, :])[:, 0, 0, :])
        if self.dropout is not None:
            x = self.dropout(x, deterministic=not train)
        logits = self.head(x).astype(jnp.float32)
        return (logits, feats) if features else logits
