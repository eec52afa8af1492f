"""Class selectivity at paper scale: ResNet-20 on CIFAR-10 (class_selectivity.md §3).

ResNet-20 (3×3 stem 16, 3 stages × 3 basic blocks 16/32/64, option-A shortcuts, GAP, linear);
SGD μ 0.9, lr 0.1, batch 128, wd 5e-4, 200 epochs, ×0.1 at 100 and 150; pad-4 crop + flip (all
reconstructed defaults). The regularizer and the selectivity measurement use the 9 block
outputs (after the skip addition and the block's ReLU, spatially averaged). Inputs are pixels
in [0, 1] without per-channel normalisation, so attacks and corruptions act in pixel units
(the stem's BatchNorm absorbs a per-channel shift and scale). After training: clean accuracy,
SI per block, the 11 on-the-fly corruptions at severities 1–5 (CIFAR-10-C constants), FGSM and
PGD-20 over the spec's ε grid, PCA-95 dimensionality per block.

Command (data prepared with `python -m lib.data.prepare cifar10 --data_dir=D`):
    python -m lib.main --config=experiments/class_selectivity/configs/cifar10.py:alpha=-1 \
      --workdir=$W/si_resnet20_a-1_s0 --config.data.data_dir=D
Hardware: one GPU or TPU host. Expected wall time (estimate, not measured here): 200 epochs of
ResNet-20, about an hour on one modern GPU, plus the robustness evaluation (PGD-20 at 7 ε on
10,000 images: 140 forward-backward passes over the test set).
Reported (claims.py): C3 an α < 0 that cuts mean SI 2.5× leaves top-1 unchanged; C4 the most
negative α (SI ≈ 0) costs ≈ 2 points; C10 α = 0 reaches ≈ 91–92 %.
Args: alpha, seed, quick.
"""

from configs import base, common
from lib.config import parse_arg

ALPHAS = (-30.0, -10.0, -5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
EPS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)
BLOCKS = tuple(f"stage{s}/block{b}" for s in (1, 2, 3) for b in (0, 1, 2))


def get_config(arg=None):
    a = parse_arg(arg, quick=False, alpha=0.0, seed=0)
    c = base.get_config()
    c.seed = a.seed
    c.procedure = "experiments.class_selectivity.procedure:run"
    c.task = "experiments.class_selectivity.task:SelectivityRegularized"
    c.model.name, c.model.depth, c.model.width = "cifar_resnet", 20, 16
    c.model.shortcut, c.model.bn_init = "zero_pad", "fixed"
    c.data.name, c.data.augment, c.data.normalization = "cifar10", "cifar", "none"
    c.data.batch_size, c.data.eval_batch_size, c.data.num_workers = 128, 1000, 4
    epoch = common.steps_per_epoch(common.CIFAR10_TRAIN, 128)
    c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay = "sgd", 0.1, 0.9, 5e-4
    c.optim.schedule, c.optim.milestones = "step", (100 * epoch, 150 * epoch)
    c.total_steps = 200 * epoch
    c.log_every, c.eval_every, c.checkpoint_every = 100, 5 * epoch, 5 * epoch
    c.keep_checkpoints = 1
    c.selectivity.alpha, c.selectivity.layers = a.alpha, BLOCKS
    c.robustness.corruptions = ("gaussian_noise", "shot_noise", "impulse_noise",
                                "speckle_noise", "gaussian_blur", "defocus_blur", "brightness",
                                "contrast", "saturate", "pixelate", "jpeg_compression")
    c.robustness.severities = (1, 2, 3, 4, 5)
    c.robustness.noise_sigmas = (0.04, 0.1)
    c.robustness.fgsm_eps = c.robustness.pgd_eps = EPS
    c.robustness.pgd_steps = 20
    if a.quick:
        common.quick(c)
        c.data.normalization = "none"
        c.data.eval_examples, c.data.eval_batch_size = 128, 128
        c.model.depth, c.model.width = 8, 8
        c.selectivity.layers = ("stage1/block0", "stage2/block0", "stage3/block0")
        c.robustness.corruptions, c.robustness.severities = ("contrast",), (5,)
        c.robustness.fgsm_eps, c.robustness.pgd_eps, c.robustness.pgd_steps = (0.01,), (0.01,), 2
        c.total_steps, c.eval_every, c.checkpoint_every = 10, 0, 10
    return c


def get_sweep(arg=None):
    """The CIFAR-10 α grid × seeds (spec §3: reconstructed)."""
    a = parse_arg(arg, seeds=5)
    return [dict(alpha=al, seed=s) for al in ALPHAS for s in range(a.seeds)]
