"""The small-scale early-phase experiment of early_phase.md §6 on sklearn digits (2-core CPU).

1,797 images, random 70/30 split (1,258 / 539), standardised with train statistics; the 4-conv
net (3x3 conv-BN-ReLU 16/32/64/64, γ ~ U[0,1), 2x2 max-pool after convs 2 and 4, global average
pool, linear head), Kaiming-normal weights; SGD lr 0.1, μ 0.9, wd 1e-4, batch 64, 400 steps, ×0.1
at 200 and 300. IMP: global magnitude over every conv and linear kernel, 50 % per level, 7
levels (0.78 % remaining), rewinding to k = 40; then the perturbations of §2 at the last level.

Command:
    python -m lib.main --config=experiments/early_phase/configs/digits.py:seed=0 \
      --workdir=/tmp/early_phase_digits_s0
Hardware: a 2-core CPU. Expected wall time: about 40 s per seed (measured: 312 s for the
five seeds of both trunks in `python -m lib.repro verify early_phase`).
Reference (spec §6, 2 seeds, 0.78 % remaining): rewind k 0.964, reinit 0.886, reinit_keep_sign
0.950, shuffle_layer 0.898, shuffle_layer_keep_sign 0.955; rewind 0 0.948.
Args: seed, k (rewind step), levels, fraction, perturbations ('+'-separated), quick.
"""

from configs import common
from experiments.early_phase import config as paper_config
from lib.config import parse_arg

PERTURBATIONS = "reinit+reinit_keep_sign+shuffle_layer+shuffle_layer_keep_sign"


def get_config(arg=None):
    a = parse_arg(arg, quick=False, seed=0, k=40, levels=7, fraction=0.5,
                  perturbations=PERTURBATIONS)
    c = paper_config.get_config()
    c.seed = a.seed
    c.procedure = "experiments.early_phase.procedure:run"
    c.model.name = "convnet"
    c.model.widths = (16, 32, 64, 64)
    c.model.pool_after = (1, 3)
    c.data.name = "digits"
    c.data.test_fraction = 0.3
    c.data.subset_seed = 0  # one split for every seed: seeds vary init and data order only
    c.data.batch_size = 64
    c.data.eval_batch_size = 560  # the 539-image test split in one padded batch
    steps = 60 if a.quick else 400
    common.lth_sgd(c, lr=0.1, total_steps=steps, milestones=(steps // 2, 3 * steps // 4))
    c.log_every = 100
    c.checkpoint_every = 200
    c.progress = False
    c.imp.levels = 2 if a.quick else a.levels
    c.imp.rewind_step = min(a.k, steps // 4)
    c.sparsity.fraction = a.fraction
    c.sparsity.scope = "global"
    c.perturb.names = tuple(a.perturbations.split("+"))
    c.perturb.seed = a.seed
    return c


def get_sweep(arg=None):
    """Seeds of the whole experiment (each point is a full trunk plus perturbations)."""
    a = parse_arg(arg, seeds=5)
    return [dict(seed=s) for s in range(a.seeds)]
