"""The small-scale experiment of width_transfer.md §6: MorphNet widths optimised on a cheap
proxy and transferred to the target, against widths optimised on the target and uniform
widths, on Fashion-MNIST.

Data: 12,000 training images (stratified subset), 2,000 more held out as validation, the
10,000 test images; the target sees 14×14 (2×2 mean pool), the proxy 7×7 (4×4). Target: a
CIFAR-style ResNet-14 (3×3 stem + BN, 3 stages × 2 BasicBlocks at w0 = 8/16/32, 1×1 conv + BN
shortcuts, dense head; 9 width dims). Proxy: half the width (4/8/16), one block per stage
(6 dims), 7×7 inputs, 30 % of the training images.
MorphNet: shrink for 4 epochs of each net's training set (SGD momentum 0.9, lr 0.05 constant,
batch 64, no weight decay) with λ = 0.5 (`penalty=`), the budget rule at ρ = 0.5, expand back
to FLOPs(w0); the proxy's multipliers projected by `replicate` and renormalised to the
target's budget. Final training of the uniform, direct and transferred widths: 1,500 SGD
steps (momentum 0.9, lr 0.05 cosine, wd 5e-4, batch 64).

Command:
    python -m lib.main --config=experiments/width_transfer/configs/fashion.py:seed=0 \\
      --workdir=/tmp/width_transfer_s0
Args: seed, optimizer (morphnet | autoslim | dmcp), penalty (λ), stacking (replicate | tile |
interpolate), quick (the same stages, a few steps each: seconds).
AutoSlim (optimizer=autoslim): the supernet trains for the same 4 epochs with the final
trainings' optimiser (SGD momentum 0.9, lr 0.05 cosine, wd 5e-4), 2 random uniform-width
sub-networks besides the full and the smallest (α = 0.42) per step; each greedy step scores
every dim's 10 % cut on the 2,000 validation images after recalibrating BN on 2 batches of
512 training images.
DMCP (optimizer=dmcp): 4 epochs with the final trainings' optimiser, 10 channel groups per
dim, transition logits from 3.0 (no weight decay on them), λ = 2 on max(0, E[FLOPs]/B − 0.5).
Hardware: a 2-core CPU. Expected wall time: about 150 s per seed (140–145 s measured).
"""

from experiments.width_transfer import config as paper_config
from experiments.width_transfer import nets
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, seed=0, optimizer="morphnet", penalty=0.5, stacking="replicate",
                  quick=False)
    c = paper_config.get_config()
    c.seed = a.seed
    c.procedure = "experiments.width_transfer.procedure:run"
    c.model.name, c.model.depth, c.model.width, c.model.widths = nets.MODEL, 14, 8, ()
    c.data.name, c.data.pool = "fashion_mnist", 2
    c.data.train_examples, c.data.validation_examples = 12_000, 2_000
    c.data.batch_size, c.data.eval_batch_size = 64, 512
    c.optim.name, c.optim.lr, c.optim.momentum = "sgd", 0.05, 0.9
    c.optim.weight_decay, c.optim.schedule, c.optim.warmup_steps = 5e-4, "cosine", 0
    c.total_steps = 1500
    c.log_every, c.eval_every, c.checkpoint_every = 250, 0, 500
    c.progress = False
    c.width_transfer.optimizer = a.optimizer
    c.width_transfer.penalty, c.width_transfer.stacking = a.penalty, a.stacking
    c.width_transfer.final_steps = c.total_steps
    if a.quick:
        c.data.train_examples, c.data.validation_examples = 640, 100
        c.data.eval_examples = 500
        c.width_transfer.shrink_epochs, c.width_transfer.final_steps = 0.2, 10
        c.total_steps, c.checkpoint_every = 10, 5
    return c


def get_sweep(arg=None):
    """Seeds 0 and 1 (spec §6)."""
    a = parse_arg(arg, seeds=2)
    return [dict(seed=s) for s in range(a.seeds)]
