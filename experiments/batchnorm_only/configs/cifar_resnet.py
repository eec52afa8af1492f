"""BN-only on CIFAR-10 ResNets: the depth sweep (W=16) and the ResNet-14 width sweep.

Paper: batchnorm_only.md §3 (open_lth cifar_resnet defaults, lth_common.md §4): SGD μ 0.9,
lr 0.1, batch 128, 62,560 steps (160 epochs), ×0.1 at 31,280 and 46,920, wd 1e-4 on every
trainable tensor (γ and β included), flip + pad-4 crop, ImageNet normalisation, γ ~ U[0,1).

Command (one point; data prepared with `python -m lib.data.prepare cifar10 --data_dir=D`):
    python -m lib.main \
      --config=experiments/batchnorm_only/configs/cifar_resnet.py:depth=866,trainable=bn_only \
      --workdir=$WORKDIR/rn866_bn_only_s0 --config.data.data_dir=D
Args: depth (14, 20, 32, 56, 110, 218, 434, 866), width (16, 32, 64, 128, 256, 512),
trainable (see settings.py), seed, lr, quick.
Hardware: one GPU or one TPU host. Expected wall time (estimate, not yet measured here): a few
hours on one modern GPU for ResNet-110, roughly 8× that for ResNet-866.
Reported (claims.py): ResNet-866 bn_only 82 % top-1 (B1); ResNet-110 ≈ 70 %, ResNet-14
≈ 48 % (B10, recollection); ResNet-20 all ≈ 91.7 % (B9); bn_only ResNet-866 trains 64,736
parameters (B7); about a third of γ near 0 (B3).
"""

from configs import base, common
from experiments.batchnorm_only import settings
from lib.config import parse_arg

DEPTHS = (14, 32, 56, 110, 218, 434, 866)
WIDTHS = (16, 32, 64, 128, 256, 512)


def get_config(arg=None):
    a = parse_arg(arg, quick=False, depth=110, width=16, trainable="bn_only", seed=0, lr=0.1)
    c = base.get_config()
    common.lth_cifar10(c)
    c.model.name = "cifar_resnet"
    c.model.depth = a.depth
    c.model.width = a.width
    c.optim.lr = a.lr
    c.seed = a.seed
    settings.apply(c, a.trainable)
    if a.quick:
        c.model.depth = 8
        common.quick(c)
    return c


def get_sweep(arg=None):
    """Depth sweep at W=16 and width sweep at depth 14, every paper setting, 5 seeds."""
    a = parse_arg(arg, seeds=5)
    points = [dict(depth=d, width=16) for d in DEPTHS]
    points += [dict(depth=14, width=w) for w in WIDTHS if w != 16]
    return [dict(p, trainable=t, seed=s) for p in points for t in settings.PAPER_SETTINGS
            for s in range(a.seeds)]
