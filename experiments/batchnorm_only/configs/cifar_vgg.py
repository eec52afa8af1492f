"""Appendix: BN-only on CIFAR-10 VGG-11/13/16/19 with BN (no residual connections).

Paper: batchnorm_only.md §3 (appendix, recollection): open_lth cifar_vgg defaults (the CIFAR
recipe of cifar_resnet.py). BN-only is reported far weaker without residual connections.

Command:
    python -m lib.main \
      --config=experiments/batchnorm_only/configs/cifar_vgg.py:depth=19,trainable=bn_only \
      --workdir=$WORKDIR/vgg19_bn_only --config.data.data_dir=D
Args: depth (11, 13, 16, 19), trainable, bn_init (uniform, fixed, oneone, positivenegative:
the BN-init ablation), seed, lr, quick.
Hardware: one GPU. Expected wall time (estimate, not measured here): 1–2 hours per run.
Reported: qualitative only (no registered number).
"""

from configs import base, common
from experiments.batchnorm_only import settings
from lib import models
from lib.config import parse_arg

DEPTHS = (11, 13, 16, 19)
BN_INITS = models.BN_INITS  # uniform, fixed, oneone, positivenegative


def get_config(arg=None):
    a = parse_arg(arg, quick=False, depth=11, trainable="bn_only", bn_init="uniform", seed=0,
                  lr=0.1)
    c = base.get_config()
    common.lth_cifar10(c)
    c.model.name = "cifar_vgg"
    c.model.depth = a.depth
    c.model.bn_init = a.bn_init
    c.optim.lr = a.lr
    c.seed = a.seed
    settings.apply(c, a.trainable)
    if a.quick:
        common.quick(c, steps=30)
        c.data.pool = 1  # four max-pools need 28×28 (14×14 would vanish)
    return c


def get_sweep(arg=None):
    a = parse_arg(arg, seeds=1)
    return [dict(depth=d, trainable=t, bn_init=b, seed=s) for d in DEPTHS
            for t in ("all", "bn_only") for b in BN_INITS for s in range(a.seeds)]
