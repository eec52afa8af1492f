"""The small-scale experiment of background_aug.md §6: SimCLR on the spurious-background set.

4,096 Fashion-MNIST items on striped backgrounds whose type follows the label 90 % of the time
(experiments.background_aug.spurious), exact masks. Encoder conv3×3(16, s2) → conv3×3(32, s2)
→ conv3×3(64, s1), ReLU, GAP (64-d); projector 64→64→64; NT-Xent τ 0.2 with in-batch
negatives, batch 256 images (512 views), Adam 1e-3, 10 epochs. Views: the background op, then
reflect-pad 3 + random crop, flip, brightness / contrast ×U(0.6, 1.4), per-channel gain
×U(0.7, 1.3), grayscale p 0.2. Then linear probes A and B (procedure.py).

Command:
    python -m lib.main --config=experiments/background_aug/configs/spurious.py:variant=bg_random \
      --workdir=/tmp/bg_random_s0
Hardware: a 2-core CPU. Expected wall time: about 50 s per run (spec §6), probes included.
Args: variant (baseline | bg_rm | bg_random | bg_swaps), seed, quick, method (simclr, the spec's
| moco | byol | swav: the paper's methods at this scale, not part of the verify). MoCo: a queue
of 1,024 keys (4 batches), key encoder EMA 0.99; BYOL: predictor 64→64, target τ 0.99 → 1 on a
cosine; SwAV: 30 prototypes (3 per class, as ImageNet's 3,000 for 1,000), τ 0.1, Sinkhorn ε 0.05
× 3, prototypes frozen for the first epoch (16 steps), no queue (256 images per batch spread
over 30 prototypes), the two views only (BackgroundViews makes no local crops). The encoder has
no BatchNorm, so shuffled BN does not apply.
"""

from configs import common
from experiments.background_aug import config as paper_config
from experiments.background_aug import spurious
from lib.config import parse_arg

METHODS = {  # the short runs (160 steps) need a faster EMA than the ImageNet 0.999 / 0.996
    "simclr": {"task": "lib.ssl.simclr:SimCLR"},
    "moco": {"task": "lib.ssl.moco:MoCo", "ssl.queue_size": 1024, "ssl.ema_decay": 0.99},
    "byol": {"task": "lib.ssl.byol:BYOL", "ssl.predictor_hidden": (64,), "ssl.ema_decay": 0.99,
             "ssl.ema_schedule": "cosine"},
    "swav": {"task": "lib.ssl.swav:SwAV", "ssl.prototypes": 30, "ssl.temperature": 0.1,
             "ssl.queue_size": 0, "ssl.freeze_prototypes_steps": 16},
}
VARIANTS = {  # spec §6: p per view; BG_Random's donors are the stored clean backgrounds
    "baseline": {},
    "bg_rm": {"rm_prob": 0.5, "rm_fill": "black"},
    "bg_random": {"random_prob": 0.9},
    "bg_swaps": {"swap_prob": 0.5},
}


def get_config(arg=None):
    a = parse_arg(arg, variant="baseline", seed=0, quick=False, method="simclr")
    for name, value, choices in (("variant", a.variant, VARIANTS), ("method", a.method, METHODS)):
        if value not in choices:
            raise ValueError(f"{name}={value!r}; valid choices: {', '.join(choices)}")
    c = paper_config.get_config()
    c.seed = a.seed
    c.procedure = "experiments.background_aug.procedure:run"
    c.model.name = "strided_convnet"
    c.model.widths, c.model.strides = (16, 32, 64), (2, 2, 1)
    c.model.kernel_init = "torch_default"
    c.ssl.temperature = 0.2
    c.ssl.projector_widths = (64, 64)
    c.data.name = "experiments.background_aug.spurious:source"
    c.data.train_split, c.data.eval_split = "train", "original"
    c.data.normalization = "none"  # pixels in [0, 1]: the background and view ops need them
    c.data.augment = "experiments.background_aug.augment:BackgroundViews"
    c.data.views, c.data.view_sizes = (2,), (spurious.SIDE,)
    c.data.view_min_scale, c.data.view_max_scale = (1.0,), (1.0,)  # no resized crop: pad-crop
    c.data.batch_size, c.data.eval_batch_size = 256, 512
    c.data.bgaug.donor_hole_fill = "none"
    for key, value in VARIANTS[a.variant].items():
        c.data.bgaug[key] = value
    c.optim.name, c.optim.lr, c.optim.weight_decay = "adam", 1e-3, 0.0
    c.optim.schedule = "constant"
    c.total_steps = 10 * common.steps_per_epoch(spurious.TRAIN_ITEMS, c.data.batch_size)
    c.log_every = 16
    c.eval_every = 0
    c.checkpoint_every = 1000
    c.progress = False
    c.eval.top_k = 0
    c.update_from_flattened_dict(METHODS[a.method])
    if a.quick:
        c.total_steps = 4
        c.data.batch_size = 64
        c.probe.steps = 20
    return c


def get_sweep(arg=None):
    """Every variant × seeds (spec §6: seeds 0, 1)."""
    a = parse_arg(arg, seeds=2)
    return [dict(variant=v, seed=s) for v in VARIANTS for s in range(a.seeds)]
