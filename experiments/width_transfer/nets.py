"""The width-configurable network families of width_transfer.md and their proxies.

A `Family` is a network layout (its blocks per stage, its base widths w0, its input side)
whose members differ only in channel counts: one per fused width dim (lib.slim.space), any
positive count, since the expand step widens past w0. Its FLOPs are the conv MACs of
lib.slim.cost; `proxy` narrows, shortens and shrinks it; `bn_groups` names the BatchNorm
layers that scale each dim's channels (MorphNet's γ). Three families:

- `CifarResNet` (§6): a CIFAR-style ResNet-{6n+2}: 3×3 stem + BN + ReLU, three stages of n
  BasicBlocks at w0 = (w, 2w, 4w) (stride 1, 2, 2), a 1×1 conv + BN projection shortcut at
  each stage change, global average pool and a dense classifier (not counted). Dims
  `stage{s}/residual` (the stem shares stage 1's) and `stage{s}/block{j}`: 3 + 3n. The §6
  target is n = 2, w0 = (8, 16, 32) at 14×14 (9 dims); its proxy has half the width, one
  block per stage and 7×7 inputs (6 dims).
- `ImageNetResNet` (§3): torchvision's ResNet-18 layout (7×7/2 stem + max-pool, BasicBlocks,
  1×1-conv shortcuts at stage changes, a 1×1-conv classifier, counted) at any stage widths
  and blocks per stage; the "scaled-up" target doubles both: widths 128–1024, 4 blocks a
  stage.
- `MobileNetV2` (§3): MobileNetV2 at a width and a depth multiplier (channels rounded to 8,
  ceil(n·depth) blocks a stage); the Linear classifier is not counted.

Each is built by a model factory here (model.name = MODEL, IMAGENET_RESNET or MOBILENET_V2),
whose model.widths holds the channel counts in the family's dim order (empty: w0).
"""

from __future__ import annotations

import dataclasses
import functools

from lib import models
from lib.models.slimmable import SlimCifarResNet, SlimImageNetResNet, SlimMobileNetV2
from lib.slim import cost, space


def _factor(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"a proxy's {name} factor is in (0, 1]: a proxy is never wider, "
                         f"deeper or larger than its target; got {value}")


def _fewer(blocks: int, depth: float) -> int:
    return max(1, round(depth * blocks))


class Family:
    """What every family shares. Subclasses are frozen dataclasses with `image`,
    `in_channels` and `num_classes` fields, and give `arch`, `proxy`, `bn_groups`, `model`
    and `model_keys`."""

    @property
    def arch(self) -> space.Arch:
        raise NotImplementedError

    @property
    def dims(self) -> tuple[str, ...]:
        return self.arch.space.names

    @property
    def base(self) -> dict[str, int]:
        """w0: {dim: channels}."""
        return self.arch.space.bases

    def flops(self, counts) -> int:
        """Conv MACs of the network with these channel counts ({dim: count})."""
        return cost.macs(self.arch, {**self.arch.space.fixed, **counts}, bounded=False)

    def _proxy(self, width: float, depth: float, resolution: float, **changes) -> Family:
        for name, v in (("width", width), ("depth", depth), ("resolution", resolution)):
            _factor(name, v)
        return dataclasses.replace(self, image=max(1, round(resolution * self.image)),
                                   **changes)


@dataclasses.dataclass(frozen=True)
class CifarResNet(Family):
    blocks: int = 2  # BasicBlocks per stage
    widths: tuple = (8, 16, 32)  # w0 of the three stages
    image: int = 14  # input side
    in_channels: int = 1
    num_classes: int = 10

    def __post_init__(self):
        if not (isinstance(self.blocks, int) and self.blocks >= 1):
            raise ValueError(f"a family needs at least one block per stage; got {self.blocks}")

    @property
    def depth(self) -> int:
        return 6 * self.blocks + 2

    @functools.cached_property
    def arch(self) -> space.Arch:
        return space.cifar_resnet(self.depth, self.num_classes, self.widths, self.image,
                                  "3x3", self.in_channels, shortcut="projection", head="dense")

    def proxy(self, width: float = 1.0, depth: float = 1.0, resolution: float = 1.0
              ) -> CifarResNet:
        """w0 = round(width·w0) (at least 1), round(depth·n) blocks (at least 1), a side of
        round(resolution·image)."""
        return self._proxy(width, depth, resolution, blocks=_fewer(self.blocks, depth),
                           widths=tuple(max(1, round(width * w)) for w in self.widths))

    def bn_groups(self) -> dict[str, list[str]]:
        return _resnet_bn_groups(self.dims, 3, self.blocks)

    def model_keys(self) -> dict:
        return {"model.depth": self.depth, "model.width": self.widths[0]}

    def model(self, channels, model_cfg, rngs):
        return SlimCifarResNet(self.depth, self.widths[0], num_classes=self.num_classes,
                               in_channels=self.in_channels, stem="3x3", channels=channels,
                               shortcut="projection", head="dense",
                               layers=models.layer_spec(model_cfg), rngs=rngs)


@dataclasses.dataclass(frozen=True)
class ImageNetResNet(Family):
    layout: tuple = (2, 2, 2, 2)  # BasicBlocks per stage
    widths: tuple = (64, 128, 256, 512)
    image: int = 224
    in_channels: int = 3
    num_classes: int = 1000

    @functools.cached_property
    def arch(self) -> space.Arch:
        return space.imagenet_resnet(18, self.num_classes, self.image, self.in_channels,
                                     widths=self.widths, layout=self.layout)

    def proxy(self, width: float = 1.0, depth: float = 1.0, resolution: float = 1.0
              ) -> ImageNetResNet:
        return self._proxy(width, depth, resolution,
                           layout=tuple(_fewer(n, depth) for n in self.layout),
                           widths=tuple(max(1, round(width * w)) for w in self.widths))

    def bn_groups(self) -> dict[str, list[str]]:
        return _resnet_bn_groups(self.dims, 4, self.layout)

    def model_keys(self) -> dict:
        return {"model.depth": 18, "model.layout": self.layout,
                "model.stage_widths": self.widths}

    def model(self, channels, model_cfg, rngs):
        return SlimImageNetResNet(18, num_classes=self.num_classes,
                                  in_channels=self.in_channels, channels=channels,
                                  widths=self.widths, layout=self.layout,
                                  layers=models.layer_spec(model_cfg), rngs=rngs)


@dataclasses.dataclass(frozen=True)
class MobileNetV2(Family):
    width_mult: float = 1.0
    depth_mult: float = 1.0
    image: int = 224
    in_channels: int = 3
    num_classes: int = 1000

    @functools.cached_property
    def arch(self) -> space.Arch:
        return space.mobilenet_v2(self.num_classes, self.image, self.in_channels,
                                  width_mult=self.width_mult, depth_mult=self.depth_mult)

    def proxy(self, width: float = 1.0, depth: float = 1.0, resolution: float = 1.0
              ) -> MobileNetV2:
        """Multipliers width·width_mult and depth·depth_mult: channels round to 8 and blocks
        round up as MobileNetV2's own multipliers do."""
        return self._proxy(width, depth, resolution, width_mult=width * self.width_mult,
                           depth_mult=depth * self.depth_mult)

    def bn_groups(self) -> dict[str, list[str]]:
        """`stem`: the stem's BN and the first block's depthwise BN (it runs at the stem's
        width); `stage{s}/residual`: every projection BN of the stage; `stage{s}/block{j}`:
        the block's expansion and depthwise BNs."""
        groups = {d: [] for d in self.dims}
        groups["stem"] += ["stem_bn", "stage1/block0/dw_bn"]
        groups["stage1/residual"].append("stage1/block0/project_bn")
        for d in self.dims:
            if _is_block(d) and not d.startswith("stage1/"):
                groups[d] += [f"{d}/expand_bn", f"{d}/dw_bn"]
                groups[d.split("/")[0] + "/residual"].append(f"{d}/project_bn")
        return groups

    def model_keys(self) -> dict:
        return {"model.width_mult": self.width_mult, "model.depth_mult": self.depth_mult}

    def model(self, channels, model_cfg, rngs):
        return SlimMobileNetV2(num_classes=self.num_classes, in_channels=self.in_channels,
                               channels=channels, width_mult=self.width_mult,
                               depth_mult=self.depth_mult,
                               layers=models.layer_spec(model_cfg), rngs=rngs)


def _is_block(dim: str) -> bool:
    return "/block" in dim


def _resnet_bn_groups(dims, stages: int, blocks) -> dict[str, list[str]]:
    """A BasicBlock ResNet's: `stage{s}/residual` — stage 1's stem_bn, every block's bn2 and
    the stage's downsample_bn (s > 1); `stage{s}/block{j}` — that block's bn1."""
    layout = [blocks] * stages if isinstance(blocks, int) else list(blocks)
    groups = {d: [] for d in dims}
    groups["stage1/residual"].append("stem_bn")
    for s, n in enumerate(layout, 1):
        for j in range(n):
            groups[f"stage{s}/block{j}"].append(f"stage{s}/block{j}/bn1")
            groups[f"stage{s}/residual"].append(f"stage{s}/block{j}/bn2")
            if s > 1 and j == 0:
                groups[f"stage{s}/residual"].append(f"stage{s}/block{j}/downsample_bn")
    return groups


MODEL = "experiments.width_transfer.nets:resnet"
IMAGENET_RESNET = "experiments.width_transfer.nets:imagenet_resnet"
MOBILENET_V2 = "experiments.width_transfer.nets:mobilenet_v2"
MODELS = (MODEL, IMAGENET_RESNET, MOBILENET_V2)


def family_of(model_cfg, image: int, in_channels: int = 1, num_classes: int = 10) -> Family:
    """The family of model.name at the given input side, channels and classes: MODEL from
    model.depth (6n + 2) and stage widths model.width · (1, 2, 4); IMAGENET_RESNET from
    model.stage_widths and model.layout (empty: ResNet-18's); MOBILENET_V2 from
    model.width_mult and model.depth_mult."""
    common = {"image": image, "in_channels": in_channels, "num_classes": num_classes}
    if model_cfg.name == IMAGENET_RESNET:
        if model_cfg.depth != 18:
            raise ValueError(f"model.depth={model_cfg.depth!r}: {IMAGENET_RESNET} is ResNet-18's "
                             "layout (model.depth=18); set its blocks per stage with "
                             "model.layout")
        return ImageNetResNet(tuple(model_cfg.layout) or (2, 2, 2, 2),
                              tuple(model_cfg.stage_widths) or (64, 128, 256, 512), **common)
    if model_cfg.name == MOBILENET_V2:
        return MobileNetV2(model_cfg.width_mult, model_cfg.depth_mult, **common)
    if model_cfg.name != MODEL:
        raise ValueError(f"model.name={model_cfg.name!r}: width transfer trains "
                         f"{' | '.join(MODELS)}")
    if not (isinstance(model_cfg.depth, int) and model_cfg.depth >= 8
            and (model_cfg.depth - 2) % 6 == 0):
        raise ValueError(f"model.depth={model_cfg.depth!r}: these ResNets are 6n + 2 deep "
                         "(8, 14, 20, ...)")
    return CifarResNet((model_cfg.depth - 2) // 6,
                       tuple(model_cfg.width * 2**s for s in range(3)), **common)


def _build(model_cfg, *, num_classes: int, in_channels: int, image_size=None, rngs):
    """The member of model_cfg's family whose channel counts are model.widths, one per dim
    in the family's order (an empty tuple: w0)."""
    side = image_size[0] if image_size else 1
    family = family_of(model_cfg, side, in_channels, num_classes)
    counts = tuple(model_cfg.widths)
    if counts and len(counts) != len(family.dims):
        raise ValueError(f"model.widths has {len(counts)} channel counts; this network has "
                         f"{len(family.dims)} dims: {', '.join(family.dims)}")
    if any(not (isinstance(c, int) and c >= 1) for c in counts):
        raise ValueError(f"model.widths={counts}: channel counts are positive integers")
    return family.model(dict(zip(family.dims, counts)) if counts else None, model_cfg, rngs)


# model.name picks the family (family_of); one factory builds each
resnet = imagenet_resnet = mobilenet_v2 = _build
