"""The small-scale experiment of invariance.md §6: where translation invariance comes from.

Fashion-MNIST items (14×14) on a 28×28 canvas (experiments.invariance.shifted). Variants:
centred (trained on centred items), data (each item at a random position drawn once: variation
in the data), aug (centred items moved to a fresh random position every draw: translation
augmentation), untrained (the seeded initialisation, the same for every variant of a seed).
Net conv3×3(16, s2) → conv3×3(32, s2) → conv3×3(64, s1), ReLU after each, GAP (the 64-d
embedding), Dense(10), SAME padding, Flax's default init (LeCun normal, zero biases: the
spec's k = 4 remark holds only with zero biases); Adam 1e-3, batch 128, 6 epochs (474 steps).
Then the
invariance of the GAP embedding to translateX by 0, 2, …, 18 px on 1,000 centred test items
(cosine, seeded baseline), and top-1 on the 10,000 test items at random positions
(eval/accuracy).

Command:
    python -m lib.main --config=experiments/invariance/configs/shifted.py:variant=data \\
      --workdir=/tmp/inv_data_s0
Args: variant (centred | data | aug | untrained), seed, quick (4 steps, 512 top-1 test items).
Hardware: a 2-core CPU. Expected wall time: 5–10 s per trained run (474 steps), about 85 s
for the verify's 12 runs with their measurements.
"""

from configs import common
from experiments.invariance import config as paper_config
from experiments.invariance import shifted
from lib.config import parse_arg

VARIANTS = {
    "centred": {"data.train_split": "train_centred"},
    "data": {"data.train_split": "train_data"},
    "aug": {"data.train_split": "train_centred",
            "data.augment": "experiments.invariance.shifted:RandomPosition"},
    "untrained": {"data.train_split": "train_centred", "invariance.train": False},
}


def get_config(arg=None):
    a = parse_arg(arg, variant="data", seed=0, quick=False)
    if a.variant not in VARIANTS:
        raise ValueError(f"variant={a.variant!r}; valid choices: {', '.join(VARIANTS)}")
    c = small_scale(a.seed, epochs=6, items=shifted.TRAIN_ITEMS, quick=a.quick)
    c.procedure = "experiments.invariance.procedure:run"
    c.data.eval_split = "test_random"
    c.data.augment = "none"
    c.update_from_flattened_dict(VARIANTS[a.variant])
    return c


def small_scale(seed: int, *, epochs: int, items: int, quick: bool):
    """The spec §6 net and training on the shifted-items source (also configs/scaled.py)."""
    c = paper_config.get_config()
    c.seed = seed
    c.model.name = "strided_convnet"
    c.model.widths, c.model.strides = (16, 32, 64), (2, 2, 1)
    c.model.kernel_init, c.model.bias_init = "lecun_normal", "zeros"  # Flax's defaults
    c.model.conv_padding = "same"  # the spec's SAME: stride-2 convs pad only the end
    c.data.name = "experiments.invariance.shifted:source"
    c.data.normalization = "none"
    c.data.batch_size, c.data.eval_batch_size = 128, 512
    c.optim.name, c.optim.lr, c.optim.weight_decay = "adam", 1e-3, 0.0
    c.optim.schedule = "constant"
    c.total_steps = epochs * common.steps_per_epoch(items, c.data.batch_size)
    c.log_every, c.eval_every, c.checkpoint_every = 50, 0, 1000
    c.progress = False
    c.eval.top_k = 0
    if quick:
        c.total_steps = 4
        c.data.eval_examples = 512
    return c


def get_sweep(arg=None):
    """Every variant × seeds (spec §6: seeds 0, 1, 2)."""
    a = parse_arg(arg, seeds=3)
    return [dict(variant=v, seed=s) for v in VARIANTS for s in range(a.seeds)]
