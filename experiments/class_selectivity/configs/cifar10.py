"""Class selectivity at paper scale: ResNet-20 on CIFAR-10 (class_selectivity.md §3).

ResNet-20 (3×3 stem 16, 3 stages × 3 basic blocks 16/32/64, option-A shortcuts, GAP, linear);
SGD μ 0.9, lr 0.1, batch 128, wd 5e-4, 200 epochs, ×0.1 at 100 and 150; pad-4 crop + flip (all
reconstructed defaults). The regularizer and the selectivity measurement use the 9 block
outputs (after the skip addition and the block's ReLU, spatially averaged). Inputs are pixels
in [0, 1] without per-channel normalisation, so attacks and corruptions act in pixel units
(the stem's BatchNorm absorbs a per-channel shift and scale). After training: clean accuracy,
SI per block, the 19 corruptions of the released CIFAR-10-C (TFDS cifar10_corrupted) at
severities 1–5 — or with corruptions=on_the_fly those of lib.evaluators.corruptions, which needs
no download but only approximates the released pipelines —, FGSM and PGD-20 over the spec's ε
grid, PCA-95 dimensionality per block of the clean activations and of each perturbation's Δ.

Command (data prepared with `python -m lib.data.prepare cifar10 --data_dir=D`, and
`python -m lib.data.prepare cifar10_corrupted --data_dir=D`: all 95 configs, about 3 GB):
    python -m lib.main --config=experiments/class_selectivity/configs/cifar10.py:alpha=-1 \
      --workdir=$W/si_resnet20_a-1_s0 --config.data.data_dir=D
Hardware: one GPU or TPU host. Expected wall time (estimate, not measured here): 200 epochs of
ResNet-20, about an hour on one modern GPU, plus the robustness evaluation (PGD-20 at 7 ε on
10,000 images: 140 forward-backward passes over the test set).
Reported (claims.py): C3 an α < 0 that cuts mean SI 2.5× leaves top-1 unchanged; C4 the most
negative α (SI ≈ 0) costs ≈ 2 points; C10 α = 0 reaches ≈ 91–92 %.
Args: alpha, seed, corruptions (released | on_the_fly), quick.
"""

from configs import common
from experiments.class_selectivity import config as paper_config
from experiments.class_selectivity import paper_scale
from lib.config import parse_arg

ALPHAS = (-30.0, -10.0, -5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
BLOCKS = tuple(f"stage{s}/block{b}" for s in (1, 2, 3) for b in (0, 1, 2))
CIFAR10_C = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur",
             "frosted_glass_blur", "motion_blur", "zoom_blur", "gaussian_blur", "snow", "frost",
             "fog", "brightness", "spatter", "contrast", "elastic", "pixelate",
             "jpeg_compression", "saturate")  # TFDS cifar10_corrupted's 19 names


def get_config(arg=None):
    a = parse_arg(arg, quick=False, alpha=0.0, seed=0, corruptions="released")
    c = paper_config.get_config()
    c.seed = a.seed
    c.model.name, c.model.depth, c.model.width = "cifar_resnet", 20, 16
    c.model.shortcut, c.model.bn_init = "zero_pad", "fixed"
    c.data.name, c.data.augment, c.data.normalization = "cifar10", "cifar", "none"
    c.data.batch_size, c.data.eval_batch_size, c.data.num_workers = 128, 1000, 4
    epoch = common.steps_per_epoch(common.CIFAR10_TRAIN, 128)
    c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay = "sgd", 0.1, 0.9, 5e-4
    c.optim.schedule, c.optim.milestones = "step", (100 * epoch, 150 * epoch)
    c.total_steps = 200 * epoch
    c.log_every, c.eval_every, c.checkpoint_every = 100, 5 * epoch, 5 * epoch
    c.keep_checkpoints = 2  # one to fall back to if the newest is damaged
    paper_scale.regularized(c, alpha=a.alpha, layers=BLOCKS, source=a.corruptions,
                      released=CIFAR10_C, corruption_data="cifar10_corrupted",
                      corruption_split="test")
    if a.quick:
        common.quick(c)
        c.data.normalization = "none"
        c.model.depth, c.model.width = 8, 8
        paper_scale.quick(c, ("stage1/block0", "stage2/block0", "stage3/block0"))
    return c


def get_sweep(arg=None):
    """The CIFAR-10 α grid × seeds (spec §3: reconstructed)."""
    a = parse_arg(arg, seeds=5)
    return [dict(alpha=al, seed=s) for al in ALPHAS for s in range(a.seeds)]
