"""The width-configurable networks of width_transfer.md §6 and their proxies.

A `Family` is a CIFAR-style ResNet-{6n+2} (lib.slim.space.cifar_resnet): 3×3 stem + BN +
ReLU, three stages of n BasicBlocks at base widths w0 (stride 1, 2, 2), a 1×1 conv + BN
projection shortcut at each stage change, global average pool and a dense classifier (not
counted). Its dims are `stage{s}/residual` (the stem shares stage 1's) and `stage{s}/block{j}`:
3 + 3n. A network of the family is one channel count per dim, with any positive count (the
expand step widens past w0); its FLOPs are the conv MACs of lib.slim.cost.

The §6 target is n = 2, w0 = (8, 16, 32), 14×14 grey inputs (9 dims); the proxy halves the
width (round(0.5·w0)), keeps one block per stage, and sees 7×7 inputs (6 dims).
"""

from __future__ import annotations

import dataclasses
import functools

from lib import models
from lib.models.slimmable import SlimCifarResNet
from lib.slim import cost, space


@dataclasses.dataclass(frozen=True)
class Family:
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

    def proxy(self, width: float = 1.0, depth: float = 1.0, resolution: float = 1.0
              ) -> Family:
        """The proxy family: w0 = round(width·w0) (at least 1), round(depth·n) blocks (at
        least 1), a side of round(resolution·image)."""
        for name, v in (("width", width), ("depth", depth), ("resolution", resolution)):
            if not 0 < v <= 1:
                raise ValueError(f"a proxy's {name} factor is in (0, 1]: a proxy is never "
                                 f"wider, deeper or larger than its target; got {v}")
        return dataclasses.replace(
            self, blocks=max(1, round(depth * self.blocks)),
            widths=tuple(max(1, round(width * w)) for w in self.widths),
            image=max(1, round(resolution * self.image)))


MODEL = "experiments.width_transfer.nets:resnet"


def family_of(model_cfg, image: int, in_channels: int = 1, num_classes: int = 10) -> Family:
    """The family of model.depth (6n + 2) and stage widths model.width · (1, 2, 4)."""
    if not (isinstance(model_cfg.depth, int) and model_cfg.depth >= 8
            and (model_cfg.depth - 2) % 6 == 0):
        raise ValueError(f"model.depth={model_cfg.depth!r}: these ResNets are 6n + 2 deep "
                         "(8, 14, 20, ...)")
    return Family((model_cfg.depth - 2) // 6, tuple(model_cfg.width * 2**s for s in range(3)),
                  image, in_channels, num_classes)


def resnet(model_cfg, *, num_classes: int, in_channels: int, image_size=None, rngs):
    """model.name = MODEL: the family member of model.depth and model.width (family_of)
    whose channel counts are model.widths, one per dim in the family's order (an empty
    tuple: w0)."""
    del image_size
    family = family_of(model_cfg, 1, in_channels, num_classes)
    counts = tuple(model_cfg.widths)
    if counts and len(counts) != len(family.dims):
        raise ValueError(f"model.widths has {len(counts)} channel counts; a ResNet-"
                         f"{family.depth} has {len(family.dims)} dims: "
                         f"{', '.join(family.dims)}")
    channels = dict(zip(family.dims, counts)) if counts else None
    if any(not (isinstance(c, int) and c >= 1) for c in counts):
        raise ValueError(f"model.widths={counts}: channel counts are positive integers")
    return SlimCifarResNet(family.depth, model_cfg.width, num_classes=num_classes,
                           in_channels=in_channels, stem="3x3", channels=channels,
                           shortcut="projection", head="dense",
                           layers=models.layer_spec(model_cfg), rngs=rngs)
