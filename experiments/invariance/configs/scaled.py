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

from configs import common
from experiments.invariance import config as paper_config
from experiments.invariance import shifted
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, variant="None", seed=0, quick=False)
    if a.variant not in shifted.CANVAS_VARIANTS:
        raise ValueError(f"variant={a.variant!r}; valid choices: "
                         f"{', '.join(shifted.CANVAS_VARIANTS)}")
    c = paper_config.get_config()
    c.seed = a.seed
    c.model.name = "strided_convnet"
    c.model.widths, c.model.strides = (16, 32, 64), (2, 2, 1)
    c.model.kernel_init, c.model.bias_init = "lecun_normal", "zeros"
    c.model.conv_padding = "same"
    c.data.name = "experiments.invariance.shifted:source"
    c.data.train_split, c.data.eval_split = "train_scaled", "test_scaled"
    c.data.normalization = "none"
    c.data.augment = "experiments.invariance.shifted:CanvasJitter"
    c.data.invaug.variant = a.variant
    c.data.batch_size, c.data.eval_batch_size = 128, 512
    c.optim.name, c.optim.lr, c.optim.weight_decay = "adam", 1e-3, 0.0
    c.optim.schedule = "constant"
    c.total_steps = 20 * common.steps_per_epoch(shifted.SCALED_ITEMS, c.data.batch_size)
    c.log_every, c.eval_every, c.checkpoint_every = 100, 0, 1000
    c.progress = False
    c.eval.top_k = 0
    if a.quick:
        c.total_steps = 4
        c.data.eval_examples = 512
    return c


def get_sweep(arg=None):
    """Every variant × seeds."""
    a = parse_arg(arg, seeds=3)
    return [dict(variant=v, seed=s) for v in shifted.CANVAS_VARIANTS for s in range(a.seeds)]
