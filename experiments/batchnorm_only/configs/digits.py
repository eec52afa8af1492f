"""The reference small-scale run of batchnorm_only.md §6 on sklearn digits (8×8, CPU, seconds).

1,797 images, random 70/30 split, inputs standardised with train statistics; ResNet-8 with one
input channel, W = 16 (77,754 parameters, 672 BN parameters; maps 8→4→2), γ ~ U[0,1); SGD μ 0.9,
lr 0.1, wd 1e-4, batch 128, 300 steps, ×0.1 at 150 and 225. Reference (2 seeds): all 0.983,
bn_and_output 0.940, bn_only 0.853, output_only 0.775, random_k_per_channel 0.432, none 0.091.

Command:
    python -m lib.main --config=experiments/batchnorm_only/configs/digits.py:trainable=bn_only \
      --workdir=/tmp/digits_bn_only
Hardware: a 2-core CPU. Expected wall time: about 10–20 s per run, mostly compilation.
Args: trainable, seed, steps, quick.
"""

from configs import base, common
from experiments.batchnorm_only import settings
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, quick=False, trainable="bn_only", seed=0, steps=300)
    c = base.get_config()
    c.seed = a.seed
    c.model.name = "cifar_resnet"
    c.model.depth = 8
    c.model.width = 16
    c.data.name = "digits"
    c.data.test_fraction = 0.3
    c.data.subset_seed = 0  # one split for every seed: seeds vary init and data order only
    c.data.normalization = "dataset"
    c.data.batch_size = 128
    c.data.eval_batch_size = 560  # the whole 539-image test split in one padded batch
    steps = 60 if a.quick else a.steps
    common.lth_sgd(c, lr=0.1, total_steps=steps, milestones=(steps // 2, 3 * steps // 4))
    c.log_every = 50 if not a.quick else 10
    c.checkpoint_every = steps
    settings.apply(c, a.trainable)
    return c


def get_sweep(arg=None):
    """Every setting of the spec's reference table (batchnorm_only.md §6), 3 seeds."""
    a = parse_arg(arg, seeds=3)
    return [dict(trainable=t, seed=s) for t in settings.ORDERED_SETTINGS for s in range(a.seeds)]
