"""The width space of a slimmable network and the convolutions its cost is counted over
(joslim.md §2 "Cost" and "Slimmable model rules").

A width configuration α holds one multiplier in [low, high] (0.42 and 1 in the paper) per
*fused* width dimension: a set of layers whose channel counts are tied, such as the outputs
of every block of a stage (joined by the residual adds), or a depthwise conv and the conv
feeding it. Decoding keeps the first floor(α_d · base_d) channels of dim d (the float product
truncated, as the paper's code's int(wm * c) does), then raises every residual chain to its
running maximum: a later stage's residual width is at least the previous one's, since a
zero-padding shortcut can widen its input but never narrow it. Fixed counts (image channels,
classes, MobileNetV2's last conv width) are not searched and pass through decoding unchanged.
A channel count may exceed its dim's base (a network widened past it, as width_transfer's
expand step does); lib.slim.cost counts such networks with bounded=False.

The builders give the dim layout of the paper's code (enyac-group/Joslim, model/slim_*.py):
the same dims in the same order, so a configuration means the same sub-network there and
here. The ImageNet ResNets also take other stage widths and blocks per stage, and
MobileNetV2 the MobileNetV2 paper's width multiplier and a depth multiplier
(width_transfer's scaled-up targets and proxies, width_transfer.md §3); at the defaults
they are the code's nets. Each builder also lists the network's convolutions: input and
output channels named by a dim or a fixed count, kernel, stride, and output side at the
builder's image size (sides are ceil(side / stride), the output of "same" padding);
lib.slim.cost counts them, and `Arch.counted` says in words what the list covers and leaves
out. The dim names are the interface of lib.models.slimmable:

- ResNets: `stage{s}/residual` (s from 1: the stage's residual width, shared by the stem's
  output in the BasicBlock nets) and `stage{s}/block{j}` (j from 0: the block's inner width,
  i.e. its first conv's output; in a Bottleneck both the 1×1 and the 3×3 conv's output, as
  in the code); ResNet-50 adds `stem` (stage 1's width, 64) before them.
- MobileNets: `stem`, `stage1/residual` (the output of the first, depthwise-separable
  block), then per inverted-residual stage `stage{s}/residual` (its output width) and
  `stage{s}/block{j}` (block j's expansion width, shared by its expansion conv, depthwise
  conv and SE input/output).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

LOW, HIGH = 0.42, 1.0
CIFAR_STEMS = ("1x1", "3x3")
MOBILENET_V3_KINDS = ("large", "small")


@dataclasses.dataclass(frozen=True)
class Dim:
    """A searchable fused width dimension with `base` channels at full width."""

    name: str
    base: int


@dataclasses.dataclass(frozen=True)
class WidthSpace:
    """The searchable dims in α's order, the residual chains (dims whose decoded widths are
    made non-decreasing along the chain), the multiplier bounds and the fixed counts."""

    dims: tuple[Dim, ...]
    chains: tuple[tuple[str, ...], ...] = ()
    low: float = LOW
    high: float = HIGH
    fixed: Mapping[str, int] = dataclasses.field(default_factory=dict)
    name: str = "the network"

    def __post_init__(self):
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "chains", tuple(tuple(c) for c in self.chains))
        object.__setattr__(self, "fixed", dict(self.fixed))
        names = [d.name for d in self.dims]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{self.name}: dims {repeated} appear more than once")
        if not 0.0 < self.low <= self.high <= 1.0:
            raise ValueError(f"{self.name}: the multiplier bounds must satisfy "
                             f"0 < low <= high <= 1; got [{self.low}, {self.high}]")
        clash = sorted(set(names) & set(self.fixed))
        if clash:
            raise ValueError(f"{self.name}: {clash} are both searchable dims and fixed counts")
        for key, count in [(d.name, d.base) for d in self.dims] + list(self.fixed.items()):
            if not (isinstance(count, int | np.integer) and count >= 1):
                raise ValueError(f"{self.name}: {key!r} has {count!r} channels; a channel "
                                 "count is a positive integer")
        for d in self.dims:
            if int(self.low * d.base) < 1:
                raise ValueError(f"{self.name}: dim {d.name!r} (base {d.base}) keeps no "
                                 f"channel at the lower bound {self.low}")
        bases = self.bases
        for chain in self.chains:
            unknown = [n for n in chain if n not in bases]
            if unknown:
                raise ValueError(f"{self.name}: chain {chain} names unknown dims {unknown}")
            if any(bases[a] > bases[b] for a, b in zip(chain, chain[1:])):
                raise ValueError(f"{self.name}: bases along chain {chain} must not decrease; "
                                 f"got {[bases[n] for n in chain]}")

    def __hash__(self):
        return hash((self.dims, self.chains, self.low, self.high,
                     tuple(sorted(self.fixed.items())), self.name))

    @property
    def size(self) -> int:
        """D, the number of searchable dims (the code's search_dim)."""
        return len(self.dims)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dims)

    @property
    def bases(self) -> dict[str, int]:
        """{dim: channels at full width}."""
        return {d.name: d.base for d in self.dims}

    @property
    def full_channels(self) -> dict[str, int]:
        """The full network's channel counts: every dim at its base, plus the fixed counts
        (bases never decrease along a chain, so the chain rule leaves them as they are)."""
        return {**self.bases, **self.fixed}

    def check(self, alpha) -> np.ndarray:
        """α as a float64 [D] array, or a ValueError that says what is wrong with it."""
        try:
            a = np.asarray(alpha, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"a width configuration is a sequence of {self.size} numbers, "
                             f"one multiplier per dim of {self.name}; got {alpha!r}") from e
        if a.ndim != 1:
            raise ValueError(f"a width configuration is one multiplier per dim ({self.size} "
                             f"for {self.name}); got an array of shape {a.shape}")
        if len(a) != self.size:
            raise ValueError(f"the width configuration has {len(a)} entries; {self.name}'s "
                             f"space has {self.size} dims: {', '.join(self.names)}")
        bad = [f"{d.name} = {v:g}" for d, v in zip(self.dims, a)
               if not self.low <= v <= self.high]
        if bad:
            raise ValueError(f"width multipliers outside [{self.low}, {self.high}] for "
                             f"{self.name}: {', '.join(bad)}")
        return a

    def decode(self, alpha) -> dict[str, int]:
        """{dim or fixed key: active channels}: floor(α_d · base_d), each chain raised to its
        running maximum, then the fixed counts."""
        a = self.check(alpha)
        channels = {d.name: int(float(v) * d.base) for d, v in zip(self.dims, a)}
        for chain in self.chains:
            widest = 0
            for name in chain:
                widest = channels[name] = max(channels[name], widest)
        return {**channels, **self.fixed}

    def uniform(self, f: float) -> tuple[float, ...]:
        """The configuration with multiplier f in every dim."""
        return tuple(float(v) for v in self.check([f] * self.size))

    def full(self) -> tuple[float, ...]:
        return self.uniform(self.high)

    def smallest(self) -> tuple[float, ...]:
        return self.uniform(self.low)


@dataclasses.dataclass(frozen=True)
class Conv:
    """One convolution, channels `cin` → `cout` (each a dim name or a fixed-count key), a
    kernel×kernel window at `stride`, an out_size×out_size output. A depthwise conv has one
    group per active channel, so cin is cout."""

    name: str
    cin: str
    cout: str
    kernel: int
    stride: int
    out_size: int
    depthwise: bool = False


@dataclasses.dataclass(frozen=True)
class Arch:
    """A network's width space and the convolutions its cost is counted over; `counted`
    says in words what the list covers and what it leaves out."""

    space: WidthSpace
    convs: tuple[Conv, ...]
    counted: str = ""

    def __post_init__(self):
        object.__setattr__(self, "convs", tuple(self.convs))
        known = set(self.space.names) | set(self.space.fixed)
        names = [c.name for c in self.convs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{self.name}: convs {repeated} appear more than once")
        for c in self.convs:
            unknown = [k for k in (c.cin, c.cout) if k not in known]
            if unknown:
                raise ValueError(f"{self.name}: conv {c.name!r} uses {unknown}, neither a dim "
                                 "nor a fixed count of the width space")
            if c.depthwise and c.cin != c.cout:
                raise ValueError(f"{self.name}: depthwise conv {c.name!r} maps {c.cin!r} to "
                                 f"{c.cout!r}; a depthwise conv keeps its channels")
            if min(c.kernel, c.stride, c.out_size) < 1:
                raise ValueError(f"{self.name}: conv {c.name!r} needs a positive kernel, "
                                 "stride and output size")

    @property
    def name(self) -> str:
        return self.space.name


def _side(size: int, stride: int) -> int:
    """The output side of a conv or pool with "same" padding (PyTorch's k // 2 padding)."""
    return -(-size // stride)


def _residual(s: int) -> str:
    return f"stage{s}/residual"


def _block(s: int, j: int) -> str:
    return f"stage{s}/block{j}"


def _positive(what: str, value) -> None:
    if not (isinstance(value, int | np.integer) and value >= 1):
        raise ValueError(f"{what} must be a positive integer; got {value!r}")


CIFAR_SHORTCUTS = ("zero_pad", "projection")  # model.shortcut's names
CIFAR_HEADS = ("conv", "dense")


def cifar_resnet(depth: int, num_classes: int, widths=(16, 32, 64), image: int = 32,
                 stem: str = "1x1", in_channels: int = 3, shortcut: str = "zero_pad",
                 head: str = "conv") -> Arch:
    """The code's CIFAR ResNet-{6n+2}: stem conv 3→w₁ ("1x1": the code's 1×1 conv without
    BN; "3x3"), three stages of n BasicBlocks at `widths`, global pool and a classifier.
    Shortcuts at a stage change: "zero_pad" (the code's option A: stride-2 subsampling and
    zero channels, no conv; a later stage's residual width is then at least the previous
    one's) or "projection" (a 1×1 conv + BN, width_transfer.md §6: the stages' widths are
    independent).
    Classifier: "conv" (the code's 1×1 conv, counted) or "dense" (not counted).
    Dims per stage: `stage{s}/residual` (the stem shares stage 1's), then one `stage{s}/block{j}`
    per block: 3n + 3 (ResNet-20: 12, ResNet-56: 30). Counted: stem, both 3×3 convs of every
    block, the 1×1 shortcut convs, the 1×1 classifier (at 1×1)."""
    if not (isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0):
        raise ValueError(f"a CIFAR ResNet's depth is 6n + 2 with n >= 1 (8, 20, 32, 44, 56, "
                         f"...); got {depth!r}")
    for what, value, valid in (("stem", stem, CIFAR_STEMS), ("shortcut", shortcut,
                                                             CIFAR_SHORTCUTS),
                               ("head", head, CIFAR_HEADS)):
        if value not in valid:
            raise ValueError(f"unknown CIFAR {what} {value!r}; valid: {', '.join(valid)}")
    widths = tuple(widths)
    if len(widths) != 3:
        raise ValueError(f"a CIFAR ResNet has 3 stage widths; got {widths!r}")
    for what, v in [("num_classes", num_classes), ("image", image),
                    ("in_channels", in_channels)] + [
            (f"widths[{i}]", w) for i, w in enumerate(widths)]:
        _positive(what, v)
    n = (depth - 2) // 6
    dims, size = [], image
    convs = [Conv("stem", "image", _residual(1), 1 if stem == "1x1" else 3, 1, size)]
    cin = _residual(1)
    for s, w in enumerate(widths, 1):
        dims += [Dim(_residual(s), w)] + [Dim(_block(s, j), w) for j in range(n)]
        for j in range(n):
            stride = 2 if s > 1 and j == 0 else 1
            size = _side(size, stride)
            b = _block(s, j)
            convs += [Conv(f"{b}/conv1", cin, b, 3, stride, size),
                      Conv(f"{b}/conv2", b, _residual(s), 3, 1, size)]
            if shortcut == "projection" and cin != _residual(s):
                convs.append(Conv(f"{b}/downsample", cin, _residual(s), 1, stride, size))
            cin = _residual(s)
    if head == "conv":
        convs.append(Conv("head", cin, "classes", 1, 1, 1))
    chains = (tuple(_residual(s) for s in (1, 2, 3)),) if shortcut == "zero_pad" else ()
    space = WidthSpace(tuple(dims), chains, fixed={"image": in_channels, "classes": num_classes},
                       name=f"ResNet-{depth}")
    return Arch(space, tuple(convs), counted=(
        f"conv MACs: the {stem} stem conv, both 3×3 convs of every BasicBlock"
        + (", the 1×1 shortcut convs at stage changes" if shortcut == "projection" else
           "; option-A shortcuts have no conv")
        + ("; the 1×1-conv classifier" if head == "conv" else
           "; the dense classifier is not counted")
        + "; BN, ReLU, pooling and adds are not counted"))


IMAGENET_RESNETS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                    50: ("bottleneck", (3, 4, 6, 3))}
IMAGENET_WIDTHS = (64, 128, 256, 512)  # the stage widths (a Bottleneck's outputs are ×4)


def _per_stage(what: str, value, default: tuple[int, ...]) -> tuple[int, ...]:
    """`value` as four positive ints, one per stage (None: `default`), or a ValueError."""
    if value is None:
        return default
    if not (isinstance(value, tuple | list) and len(value) == 4
            and all(isinstance(v, int | np.integer) and v >= 1 for v in value)):
        raise ValueError(f"an ImageNet ResNet's {what} are four positive integers, one per "
                         f"stage; got {value!r}")
    return tuple(int(v) for v in value)


def imagenet_resnet_stages(depth: int, widths=None, layout=None
                           ) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """The block kind ("basic" or "bottleneck", from `depth`), the four stage widths (default
    IMAGENET_WIDTHS) and blocks per stage (default `depth`'s layout) of an ImageNet ResNet of
    a supported depth, checked: the one reading of the scaling arguments for
    imagenet_resnet and lib.models.slimmable.SlimImageNetResNet."""
    kind, default_layout = IMAGENET_RESNETS[depth]
    return (kind, _per_stage("stage widths", widths, IMAGENET_WIDTHS),
            _per_stage("layout (blocks per stage)", layout, default_layout))


def imagenet_resnet(depth: int, num_classes: int = 1000, image: int = 224,
                    in_channels: int = 3, *, widths=None, layout=None) -> Arch:
    """The code's ImageNet ResNet-18/34/50: 7×7/2 stem, 3×3/2 max-pool, four stages at
    `widths` (default 64/128/256/512; Bottleneck outputs ×4, stride on its 3×3 conv) of
    `layout` blocks (default the depth's, e.g. ResNet-18's 2/2/2/2; the depth picks the
    block kind), 1×1-conv + BN downsample where a block changes stride or width, global pool
    and a 1×1-conv classifier. Other widths and layouts give width_transfer's scaled-up nets
    and their proxies (width_transfer.md §3). Dims per stage: `stage{s}/residual`, then one
    `stage{s}/block{j}` per block (a Bottleneck's 1×1 and 3×3 convs share it, as in the
    code); the stem shares stage 1's residual in the BasicBlock nets and is its own dim
    `stem` (base widths[0]) in ResNet-50, placed first. search_dim at the default layouts:
    ResNet-18 12, ResNet-34 20, ResNet-50 21. Counted: every conv including the downsample
    convs and the 1×1 classifier (at 1×1)."""
    if depth not in IMAGENET_RESNETS:
        raise ValueError(f"unsupported ImageNet ResNet depth {depth!r}; valid: "
                         f"{', '.join(map(str, IMAGENET_RESNETS))}")
    _positive("num_classes", num_classes)
    _positive("image", image)
    _positive("in_channels", in_channels)
    block, widths, layout = imagenet_resnet_stages(depth, widths, layout)
    expansion = 4 if block == "bottleneck" else 1
    dims = [Dim("stem", widths[0])] if block == "bottleneck" else []
    stem_out = "stem" if dims else _residual(1)
    size = _side(image, 2)
    convs = [Conv("stem", "image", stem_out, 7, 2, size)]
    size = _side(size, 2)  # the 3×3/2 max-pool
    cin, cin_base = stem_out, widths[0]
    for s, (w, n) in enumerate(zip(widths, layout), 1):
        out = w * expansion
        dims += [Dim(_residual(s), out)] + [Dim(_block(s, j), w) for j in range(n)]
        for j in range(n):
            stride = 2 if s > 1 and j == 0 else 1
            size_in, size = size, _side(size, stride)
            b = _block(s, j)
            if block == "bottleneck":
                convs += [Conv(f"{b}/conv1", cin, b, 1, 1, size_in),
                          Conv(f"{b}/conv2", b, b, 3, stride, size),
                          Conv(f"{b}/conv3", b, _residual(s), 1, 1, size)]
            else:
                convs += [Conv(f"{b}/conv1", cin, b, 3, stride, size),
                          Conv(f"{b}/conv2", b, _residual(s), 3, 1, size)]
            if stride != 1 or cin_base != out:
                convs.append(Conv(f"{b}/downsample", cin, _residual(s), 1, stride, size))
            cin, cin_base = _residual(s), out
    convs.append(Conv("head", cin, "classes", 1, 1, 1))
    scaled = [f"{what} {'/'.join(map(str, value))}" for what, value, default in (
        ("widths", widths, IMAGENET_WIDTHS), ("layout", layout, IMAGENET_RESNETS[depth][1]))
        if value != default]
    space = WidthSpace(tuple(dims), (tuple(_residual(s) for s in (1, 2, 3, 4)),),
                       fixed={"image": in_channels, "classes": num_classes},
                       name=f"ResNet-{depth}" + (f" ({', '.join(scaled)})" if scaled else ""))
    return Arch(space, tuple(convs), counted=(
        "conv MACs: the 7×7 stem, every conv of every block, the 1×1 downsample convs and the "
        "1×1-conv classifier; BN, ReLU, max/average pooling and adds are not counted"))


def _mobile_block(b: str, cin: str, mid: str, cout: str, kernel: int, stride: int,
                  size_in: int, size: int, *, expand: bool = True,
                  se: bool = False) -> list[Conv]:
    """A MobileNet block's convs: [1×1 expansion], depthwise, [SE: 1×1 to the fixed key
    `{b}/se` and back, at 1×1], 1×1 projection."""
    convs = [Conv(f"{b}/expand", cin, mid, 1, 1, size_in)] if expand else []
    convs.append(Conv(f"{b}/dw", mid, mid, kernel, stride, size, depthwise=True))
    if se:
        convs += [Conv(f"{b}/se_reduce", mid, f"{b}/se", 1, 1, 1),
                  Conv(f"{b}/se_expand", f"{b}/se", mid, 1, 1, 1)]
    return convs + [Conv(f"{b}/project", mid, cout, 1, 1, size)]


# (expansion t, output channels c, blocks n, first stride s) after the 32→16 separable block
MOBILENET_V2 = ((6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))
MOBILENET_V2_STEM, MOBILENET_V2_FIRST, MOBILENET_V2_LAST = 32, 16, 1280


def make_divisible(v: float, divisor: int = 8) -> int:
    """The MobileNets' rounding of a scaled channel count (torchvision's _make_divisible):
    the nearest multiple of `divisor` (halves up), at least `divisor`, one `divisor` more
    where that would lose over 10% of v."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


def mobilenet_v2_layout(width_mult: float = 1.0, depth_mult: float = 1.0
                        ) -> tuple[int, int, tuple[tuple[int, int, int, int], ...], int]:
    """MobileNetV2 at the MobileNetV2 paper's width multiplier and a depth multiplier:
    (stem width, stage 1's width, the (t, c, n, s) rows of stages 2–7, the last conv's
    width). Every channel count c becomes make_divisible(c · width_mult); the last conv's
    1280 only grows (width_mult > 1), as in the paper; every stage's n becomes
    ceil(n · depth_mult). Stage 1's separable block stays one block: it has no dim of its own
    for a repeat to share (its depthwise width is the stem's). The one reading of the
    multipliers for mobilenet_v2 and lib.models.slimmable.SlimMobileNetV2."""
    for what, value in (("width_mult", width_mult), ("depth_mult", depth_mult)):
        if not (isinstance(value, int | float | np.integer | np.floating)
                and not isinstance(value, bool) and math.isfinite(value) and value > 0):
            raise ValueError(f"MobileNetV2's {what} must be a positive number (1.0: the "
                             f"paper's network); got {value!r}")
    rows = tuple((t, make_divisible(c * width_mult), math.ceil(n * depth_mult), s)
                 for t, c, n, s in MOBILENET_V2)
    last = make_divisible(MOBILENET_V2_LAST * width_mult) if width_mult > 1 else \
        MOBILENET_V2_LAST
    return (make_divisible(MOBILENET_V2_STEM * width_mult),
            make_divisible(MOBILENET_V2_FIRST * width_mult), rows, last)


def mobilenet_v2(num_classes: int = 1000, image: int = 224, in_channels: int = 3, *,
                 width_mult: float = 1.0, depth_mult: float = 1.0) -> Arch:
    """The code's MobileNetV2: 3×3/2 stem → 32, depthwise-separable block 32→16 (stage 1),
    inverted-residual stages 2–7 of MOBILENET_V2, 1×1 conv → 1280 (fixed), global pool,
    Linear classifier; scaled by `width_mult` and `depth_mult` as mobilenet_v2_layout says
    (width_transfer's scaled-up nets and proxies, width_transfer.md §3). Dims: `stem`,
    `stage1/residual`, then per stage `stage{s}/residual` and one `stage{s}/block{j}` per
    block (expansion width, base in·t for a stage's first block, c·t after): 24 dims at the
    default multipliers, the code's channel_space. The chain covers the residuals of stages
    2–7 (the code's rule; no stage's first block has a shortcut). Counted: stem, every
    block's expansion, depthwise and projection convs, the 1×1 → last conv."""
    _positive("num_classes", num_classes)
    _positive("image", image)
    _positive("in_channels", in_channels)
    stem, first, rows, last = mobilenet_v2_layout(width_mult, depth_mult)
    size = _side(image, 2)
    dims = [Dim("stem", stem), Dim(_residual(1), first)]
    convs = [Conv("stem", "image", "stem", 3, 2, size)]
    convs += _mobile_block("stage1/block0", "stem", "stem", _residual(1), 3, 1, size, size,
                           expand=False)
    cin, cin_base = _residual(1), first
    for s, (t, c, n, first_stride) in enumerate(rows, 2):
        dims.append(Dim(_residual(s), c))
        for j in range(n):
            b = _block(s, j)
            dims.append(Dim(b, cin_base * t))
            stride = first_stride if j == 0 else 1
            size_in, size = size, _side(size, stride)
            convs += _mobile_block(b, cin, b, _residual(s), 3, stride, size_in, size)
            cin, cin_base = _residual(s), c
    convs.append(Conv("last", cin, "last", 1, 1, size))
    scaled = width_mult != 1 or depth_mult != 1
    space = WidthSpace(tuple(dims), (tuple(_residual(s) for s in range(2, 8)),),
                       fixed={"image": in_channels, "last": last, "classes": num_classes},
                       name="MobileNetV2" + (f" (width ×{width_mult:g}, depth ×{depth_mult:g})"
                                             if scaled else ""))
    return Arch(space, tuple(convs), counted=(
        "conv MACs: the stem, every depthwise (one group per active channel) and pointwise "
        f"conv, and the 1×1 conv to the fixed {last} channels; BN, ReLU6, pooling, adds and "
        "the Linear classifier are not counted"))


# (kernel, expansion, output channels, SE, stride) per block: MobileNetV3 Tables 1 and 2
MOBILENET_V3 = {
    "large": ((3, 16, 16, False, 1),
              (3, 64, 24, False, 2), (3, 72, 24, False, 1),
              (5, 72, 40, True, 2), (5, 120, 40, True, 1), (5, 120, 40, True, 1),
              (3, 240, 80, False, 2), (3, 200, 80, False, 1), (3, 184, 80, False, 1),
              (3, 184, 80, False, 1),
              (3, 480, 112, True, 1), (3, 672, 112, True, 1),
              (5, 672, 160, True, 2), (5, 960, 160, True, 1), (5, 960, 160, True, 1)),
    "small": ((3, 16, 16, True, 2),
              (3, 72, 24, False, 2), (3, 88, 24, False, 1),
              (5, 96, 40, True, 2), (5, 240, 40, True, 1), (5, 240, 40, True, 1),
              (5, 120, 48, True, 1), (5, 144, 48, True, 1),
              (5, 288, 96, True, 2), (5, 576, 96, True, 1), (5, 576, 96, True, 1)),
}
MOBILENET_V3_LAST = {"large": 960, "small": 576}


def mobilenet_v3(kind: str = "large", num_classes: int = 1000, image: int = 224,
                 reference_code: bool = False, in_channels: int = 3) -> Arch:
    """MobileNetV3-Large/Small with the code's dims: 3×3/2 stem → 16, a depthwise-separable
    first block (stage 1), inverted-residual stages (a new stage where the output width
    changes), 1×1 conv → 960 (Large) / 576 (Small), fixed; global pool, 1×1 conv → 1280,
    Linear classifier. Dims: `stem`, `stage1/residual`, per stage `stage{s}/residual` and one
    `stage{s}/block{j}` per block (its expansion width): Large 21, Small 16. SE (reduction 4)
    squeezes a block's active channels to a fixed exp // 4 (key `stage{s}/block{j}/se`), as
    the code keeps the SE's inner width whole. Chains: the residuals of stages 2 on (the
    code's rule) and, in Large, `stem` → `stage1/residual`, since that block adds its input
    to its output (the code leaves the two free, which breaks the add when they differ).
    Counted: stem, every expansion, depthwise, SE (two 1×1 convs at 1×1, as the code counts
    them) and projection conv, and the 1×1 → 960/576 conv; not the 1×1 → 1280 conv after
    pooling, nor the Linear classifier. reference_code=True reproduces the code's model
    (model/slim_mbv3.py), whose depthwise convs are all 3×3 and whose first block has no
    SE; by default kernels and SE follow the MobileNetV3 tables."""
    if kind not in MOBILENET_V3:
        raise ValueError(f"unknown MobileNetV3 kind {kind!r}; valid: "
                         f"{', '.join(MOBILENET_V3_KINDS)}")
    _positive("num_classes", num_classes)
    _positive("image", image)
    _positive("in_channels", in_channels)
    rows = MOBILENET_V3[kind]
    size = _side(image, 2)
    dims = [Dim("stem", 16)]
    convs = [Conv("stem", "image", "stem", 3, 2, size)]
    fixed = {"image": in_channels, "last": MOBILENET_V3_LAST[kind], "head": 1280,
             "classes": num_classes}
    chains = []
    k, _, c, se, stride = rows[0]
    dims.append(Dim(_residual(1), c))
    size_in, size = size, _side(size, stride)
    se = se and not reference_code
    if se:
        fixed["stage1/block0/se"] = 16 // 4
    convs += _mobile_block("stage1/block0", "stem", "stem", _residual(1),
                           3 if reference_code else k, stride, size_in, size, expand=False,
                           se=se)
    if stride == 1 and c == 16:
        chains.append(("stem", _residual(1)))
    stages = []
    for row in rows[1:]:
        if not stages or row[2] != stages[-1][-1][2]:
            stages.append([])
        stages[-1].append(row)
    cin = _residual(1)
    for s, stage in enumerate(stages, 2):
        dims.append(Dim(_residual(s), stage[0][2]))
        for j, (k, exp, _, se, stride) in enumerate(stage):
            b = _block(s, j)
            dims.append(Dim(b, exp))
            if se:
                fixed[f"{b}/se"] = exp // 4
            size_in, size = size, _side(size, stride)
            convs += _mobile_block(b, cin, b, _residual(s), 3 if reference_code else k, stride,
                                   size_in, size, se=se)
            cin = _residual(s)
    chains.append(tuple(_residual(s) for s in range(2, len(stages) + 2)))
    convs.append(Conv("last", cin, "last", 1, 1, size))
    space = WidthSpace(tuple(dims), tuple(chains), fixed=fixed,
                       name=f"MobileNetV3-{kind.capitalize()}")
    return Arch(space, tuple(convs), counted=(
        "conv MACs: the stem, every expansion, depthwise (one group per active channel), SE "
        f"(1×1, at 1×1) and projection conv, and the 1×1 conv to the fixed "
        f"{MOBILENET_V3_LAST[kind]}; BN, activations, pooling, adds, the 1×1 conv to 1280 "
        "after pooling and the Linear classifier are not counted"))
