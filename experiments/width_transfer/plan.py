"""What a width-transfer config will cost before it trains: the optimiser's per-image MACs
and images seen on the target and on the proxy, and the overhead-reduction factor
(procedure.planned, the numbers a run reports as overhead/factor).

    python -m experiments.width_transfer.plan \\
      experiments/width_transfer/configs/imagenet.py:model=resnet18,proxy=all

A dataset whose size is known without reading it (imagenet2012: 1,281,167 training images,
less the held-out validation split) is not opened; any other is (data.get_info).
"""

from __future__ import annotations

import sys

from configs import common
from experiments.width_transfer import overhead, procedure
from lib import config as config_lib
from lib import data
from lib.data.pipeline import DatasetInfo

KNOWN = {"imagenet2012": (common.IMAGENET_TRAIN, 3, 1000)}  # train images, channels, classes


def info_of(config) -> DatasetInfo:
    """The dataset's info, from KNOWN where the config's images are cropped to a fixed size."""
    d = config.data
    if d.name in KNOWN and d.image_size:
        train, channels, classes = KNOWN[d.name]
        train = d.train_examples or train - d.validation_examples
        return DatasetInfo(d.name, (d.image_size, d.image_size, channels), classes, train, 0)
    return data.get_info(d)


def describe(config) -> str:
    plan = procedure.preflight(config, info_of(config))
    lines = []
    for name, (family, run) in plan.items():
        lines.append(f"{name}: {type(family).__name__} at {family.image}px, "
                     f"{len(family.dims)} dims, {run.macs_per_image:,.0f} MACs per image "
                     f"(w0 {family.flops(family.base):,}), {run.images:,.0f} images")
    factor = overhead.reduction(plan["optimise_target"][1], plan["optimise_proxy"][1])
    return "\n".join(lines + [f"overhead-reduction factor: {factor:.1f}×"])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m experiments.width_transfer.plan CONFIG_FILE[:ARGS]",
              file=sys.stderr)
        return 2
    path, _, arg = argv[0].partition(":")
    try:
        print(describe(config_lib.load_file(path, arg or None)))
    except (config_lib.ConfigError, data.DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
