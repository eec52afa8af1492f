"""The spec's Section-2 analogue (invariance.md §6, soft): does translation alone recover most
of what translation + scale augmentation adds?

Fashion-MNIST items from 28 × 28 resized to a side drawn once in 14..20 px, at a random
position on a 28 × 28 canvas (experiments.invariance.shifted, splits train_scaled: 3,000
items, test_scaled: 10,000). Train augmentations of the canvas (shifted:CanvasJitter):
None; T, whole-pixel shifts uniform in ±4 px; S, a centred rescale by U(0.8, 1.25); TS, S then
T. The small-scale experiment's net (configs/shifted.py: strided_convnet 16-32-64, SAME
padding, GAP, Flax's init), Adam 1e-3, batch 128, 20 epochs (480 steps). The claim reads
(acc_T − acc_None)/(acc_TS − acc_None) > 0.5 over seeds' mean top-1.

Command:
    python -m lib.main --config=experiments/invariance/configs/scaled.py:variant=T \\
      --workdir=/tmp/inv_scaled_T_s0
Args: variant (None | T | S | TS), seed, quick (4 steps).
Hardware: a 2-core CPU. Expected wall time: 5–10 s per run, about a minute for the verify's
12 runs.
"""

from experiments.invariance import shifted
from experiments.invariance.configs import shifted as shifted_config
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, variant="None", seed=0, quick=False)
    if a.variant not in shifted.CANVAS_VARIANTS:
        raise ValueError(f"variant={a.variant!r}; valid choices: "
                         f"{', '.join(shifted.CANVAS_VARIANTS)}")
    c = shifted_config.small_scale(a.seed, epochs=20, items=shifted.SCALED_ITEMS,
                                   quick=a.quick)
    c.data.train_split, c.data.eval_split = "train_scaled", "test_scaled"
    c.data.augment = "experiments.invariance.shifted:CanvasJitter"
    c.data.invaug.variant = a.variant
    c.log_every = 100
    return c

def get_sweep(arg=None):
    """Every variant × seeds."""
    a = parse_arg(arg, seeds=3)
    return [dict(variant=v, seed=s) for v in shifted.CANVAS_VARIANTS for s in range(a.seeds)]
