"""Class selectivity at paper scale: ResNet-18 (or depth=50) on Tiny ImageNet
(class_selectivity.md §3).

ResNet-18 (torchvision topology, 200-way head; depth=50 for ResNet-50, C2; stem=imagenet
7×7/2 + max-pool by default, or stem=cifar 3×3/1 — which one the paper used is unknown); SGD
μ 0.9, lr 0.1, batch 256, wd 1e-4, 90 epochs, ×0.1 at 30 and 60; pad-4 crop + flip at 64 px;
ImageNet mean/std normalisation (the robustness evaluation still perturbs [0, 1] pixels and
normalises inside the model). All training values are reconstructed defaults. The regularizer
and the selectivity measurement use every block output (ResNet-18: 8 blocks of 64, 64, 128,
128, 256, 256, 512, 512 units; ResNet-50: 16 Bottleneck outputs). After training: clean
accuracy on the 10,000 validation images (the papers' test set), SI per block, Tiny ImageNet-C
(15 corruptions × 5 severities, the user's files) or the on-the-fly corruptions with
corruptions=on_the_fly (ImageNet-C noise constants), FGSM and PGD-20 over the ε grid, PCA-95
dimensionality per block.

Command (data: the unpacked tiny-imagenet-200 folder, with wnids.txt, train/ and val/, as
data.data_dir; the unpacked Tiny-ImageNet-C folder, <corruption>/<severity>/<wnid>/, as
robustness.corruption_dir):
    python -m lib.main --config=experiments/class_selectivity/configs/tiny_imagenet.py:alpha=-0.5 \\
      --workdir=$W/si_resnet18_a-0.5_s0 --config.data.data_dir=TIN \\
      --config.robustness.corruption_dir=TIN_C
Hardware: one GPU or TPU host. Expected wall time (estimate, not measured here): 90 epochs of
ResNet-18 at 64 px, a few hours on one modern GPU, plus the robustness evaluation.
Reported (claims.py): C1 the best α < 0 gains > 2 points over α = 0; C5 α > 0 costs accuracy;
C11 α = 0 reaches ≈ 50–60 % (stem-dependent).
Args: alpha, seed, depth (18 | 50), stem (imagenet | cifar), corruptions (released |
on_the_fly), quick.
"""

from configs import common
from experiments.class_selectivity import config as paper_config
from experiments.class_selectivity import paper_scale
from lib.config import ConfigError, parse_arg
from lib.models.resnet import IMAGENET_DEPTHS

ALPHAS = (-2.0, -1.0, -0.5, -0.3, -0.1, 0.0, 0.1, 0.3, 0.5, 1.0, 2.0)
TINY_IMAGENET_C = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur",
                   "glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog",
                   "brightness", "contrast", "elastic_transform", "pixelate",
                   "jpeg_compression")  # the release's folder names


def get_config(arg=None):
    a = parse_arg(arg, quick=False, alpha=0.0, seed=0, depth=18, stem="imagenet",
                  corruptions="released")
    if a.depth not in (18, 50):
        raise ConfigError(f"depth={a.depth}: the papers use ResNet-18 and ResNet-50")
    c = paper_config.get_config()
    c.seed = a.seed
    c.model.name, c.model.depth, c.model.width = "imagenet_resnet", a.depth, 64
    c.model.stem, c.model.bn_init = a.stem, "fixed"
    c.data.name, c.data.train_split, c.data.eval_split = "tiny_imagenet", "train", "validation"
    c.data.augment, c.data.normalization = "cifar", "imagenet"
    c.data.batch_size, c.data.eval_batch_size, c.data.num_workers = 256, 512, 8
    epoch = common.steps_per_epoch(common.TINY_IMAGENET_TRAIN, 256)
    c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay = "sgd", 0.1, 0.9, 1e-4
    c.optim.schedule, c.optim.milestones = "step", (30 * epoch, 60 * epoch)
    c.total_steps = 90 * epoch
    c.log_every, c.eval_every, c.checkpoint_every = 100, 5 * epoch, 5 * epoch
    c.keep_checkpoints = 2  # one to fall back to if the newest is damaged
    blocks = tuple(f"stage{s}/block{b}" for s, n in enumerate(IMAGENET_DEPTHS[a.depth][1], 1)
                   for b in range(n))
    paper_scale.regularized(c, alpha=a.alpha, layers=blocks, source=a.corruptions,
                      released=TINY_IMAGENET_C, corruption_data="tiny_imagenet_c",
                      corruption_split="validation")
    c.robustness.corruption_table = "imagenet"
    if a.quick:
        common.quick(c)
        c.data.num_workers = 0
        c.model.width = 8
        paper_scale.quick(c, ("stage1/block0", "stage4/block1"))
    return c


def get_sweep(arg=None):
    """The Tiny ImageNet α grid × seeds (spec §3: reconstructed)."""
    a = parse_arg(arg, seeds=5)
    return [dict(alpha=al, seed=s) for al in ALPHAS for s in range(a.seeds)]
