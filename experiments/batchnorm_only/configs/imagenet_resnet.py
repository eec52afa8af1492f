"""BN-only on ImageNet ResNets (torchvision layout, open_lth imagenet_resnet defaults).

Paper: batchnorm_only.md §3: batch 1024, lr 0.4, 5-epoch linear warmup, ×0.1 at epochs 30, 60,
80, 90 epochs, wd 1e-4, inception crop + flip, eval resize 256 / center 224, γ ~ U[0,1).

Command (data prepared with `python -m lib.data.prepare imagenet2012 --data_dir=D`, which needs
the ImageNet tarballs in TFDS's manual_dir):
    python -m lib.main \
      --config=experiments/batchnorm_only/configs/imagenet_resnet.py:depth=200,trainable=bn_only \
      --workdir=$WORKDIR/in_rn200_bn_only --config.data.data_dir=D
Args: depth (18, 34, 50, 101, 200), trainable, seed, lr, quick.
Hardware: a TPU v4-32 slice or an 8-GPU host. Expected wall time (estimate, not measured here):
about a day for ResNet-50 `all` on 8 modern GPUs; bn_only is cheaper (no conv weight-gradients).
Reported (claims.py): deepest ResNet bn_only 32 % top-5 (B2); ResNet-50 all 76.1 % top-1 (B8).
"""

from configs import base, common
from experiments.batchnorm_only import settings
from lib.config import parse_arg

DEPTHS = (18, 34, 50, 101, 200)


def get_config(arg=None):
    a = parse_arg(arg, quick=False, depth=200, trainable="bn_only", seed=0, lr=0.4)
    c = base.get_config()
    common.lth_imagenet(c)
    c.model.name = "imagenet_resnet"
    c.model.depth = a.depth
    c.model.width = 64
    c.optim.lr = a.lr
    c.seed = a.seed
    settings.apply(c, a.trainable)
    if a.quick:
        c.model.depth = 18
        c.model.width = 8
        common.quick(c)
    return c


def get_sweep(arg=None):
    a = parse_arg(arg, seeds=1)
    trainables = ("all", "bn_only", "output_only", "random_k_per_channel")
    return [dict(depth=d, trainable=t, seed=s) for d in DEPTHS for t in trainables
            for s in range(a.seeds)]
