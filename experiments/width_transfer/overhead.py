"""Overhead accounting (width_transfer.md §2): the cost of running a width optimiser is its
per-image training FLOPs times the images it sees, and the overhead-reduction factor of a
proxy is that cost on the target over that cost on the proxy.

FLOPs are conv MACs (lib.slim.cost, the spec's convention). A training image costs
TRAIN_PASSES forward passes (the forward, and a backward of about twice its cost): a
convention that cancels in the factor. The spec's 320× is one decomposition of the factor:
4 (width 0.5) × 2 (half depth) × 4 (half resolution) × 10 (10 % of the images), if MACs
scaled exactly as width², depth and resolution²; a fixed-width stem makes the counted factor
differ (the §6 proxy: 104.1× counted against 106.7× so computed).
"""

from __future__ import annotations

import dataclasses

TRAIN_PASSES = 3


@dataclasses.dataclass(frozen=True)
class OptimiserRun:
    """What a width optimisation trains: conv MACs of one forward image, images seen."""

    macs_per_image: float
    images: float

    def __post_init__(self):
        if self.macs_per_image <= 0 or self.images <= 0:
            raise ValueError(f"an optimiser run needs positive MACs per image and images "
                             f"seen; got {self.macs_per_image} and {self.images}")

    @property
    def train_flops(self) -> float:
        """Per-image training FLOPs × images seen."""
        return TRAIN_PASSES * self.macs_per_image * self.images


def reduction(target: OptimiserRun, proxy: OptimiserRun) -> float:
    """The overhead-reduction factor: the optimiser's cost on the target over on the proxy."""
    return target.train_flops / proxy.train_flops

