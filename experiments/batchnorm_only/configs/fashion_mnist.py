"""Small-scale BN-only on real offline data: ResNet-8 on Fashion-MNIST at 14×14 (CPU).

The design of batchnorm_only.md §6 ("Fashion-MNIST equivalent"): 2×2 average-pool to 14×14,
stratified 6,000-image train subset, 2,000-image test subset, the lth_common §1 ResNet with one
input channel, W = 16, n = 1 (ResNet-8, maps 14→7→4), γ ~ U[0,1); SGD μ 0.9, lr 0.1, wd 1e-4,
batch 128, 1,000 steps, ×0.1 at steps 500 and 750. The spec suggested 400 steps; 1,000 makes
the gaps between settings larger relative to the seed spread (measured: bn_only − output_only
0.054 at 400 steps, 0.080 at 1,000). `python -m lib.repro verify batchnorm_only` runs this
config for every setting and 3 seeds and checks the claims in ../claims.py.

Command:
    python -m lib.main \
      --config=experiments/batchnorm_only/configs/fashion_mnist.py:trainable=bn_only \
      --workdir=/tmp/fm_bn_only
Hardware: a 2-core CPU. Expected wall time: about 40 s for `all`, less for frozen-conv settings.
Args: trainable, seed, steps, quick.
"""

from configs import base, common
from experiments.batchnorm_only import settings
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, quick=False, trainable="bn_only", seed=0, steps=1000)
    c = base.get_config()
    c.seed = a.seed
    c.model.name = "cifar_resnet"
    c.model.depth = 8
    c.model.width = 16
    c.data.name = "fashion_mnist"
    c.data.pool = 2
    c.data.train_examples = 6_000
    c.data.eval_examples = 2_000
    c.data.normalization = "dataset"
    c.data.batch_size = 128
    c.data.eval_batch_size = 400
    steps = 60 if a.quick else a.steps
    common.lth_sgd(c, lr=0.1, total_steps=steps, milestones=(steps // 2, 3 * steps // 4))
    c.log_every = 25 if not a.quick else 10
    c.checkpoint_every = steps // 2
    settings.apply(c, a.trainable)
    return c


def get_sweep(arg=None):
    """The small-scale grid that `python -m lib.repro verify batchnorm_only` runs."""
    a = parse_arg(arg, seeds=3)
    return [dict(trainable=t, seed=s) for t in settings.ORDERED_SETTINGS for s in range(a.seeds)]
