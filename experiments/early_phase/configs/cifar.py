"""Early phase at paper scale on CIFAR-10 (early_phase.md §3): IMP with rewinding to step k,
then the perturbations of the rewound weights at the last level.

Models: ResNet-20 (main), VGG-13 and WRN-16-8 (cifar_resnet depth 14, width 128). open_lth CIFAR
defaults (lth_common.md §4): SGD μ 0.9, lr 0.1, batch 128, 62,560 steps, ×0.1 at 31,280 and
46,920, wd 1e-4, flip + pad-4 crop, ImageNet normalisation, Kaiming-normal, γ ~ U[0,1). IMP
prunes 20 % of the remaining weights per level, global magnitude: ResNets every conv (shortcut
convs included) and the output layer, VGG every conv but not the output layer.

Command (one point; data prepared with `python -m lib.data.prepare cifar10 --data_dir=D`):
    python -m lib.main \
      --config=experiments/early_phase/configs/cifar.py:model=resnet20,k=2000,levels=20 \
      --workdir=$WORKDIR/ep_resnet20_k2000_s0 --config.data.data_dir=D
Args: model (resnet20 | vgg13 | wrn16_8), k (rewind step), levels, perturbations
('+'-separated, '' = trunk only), seed, pretrain (random_labels | rotation | blur | subsample |
no_augment; '' = none) with pretrain_steps P (IMP then rewinds to S_P), blur (factor),
fraction (subsample share), quick. The dense run logs the early-phase statistics
(experiments/early_phase/task.py) up to step 4,000.
Hardware: one GPU or TPU host. Expected wall time (estimate, not yet measured here): every
level is a full 62,560-step training run, so levels=20 costs 21 runs plus one per
perturbation; for ResNet-20 roughly an hour per run on one modern GPU.
Reported (claims.py): E3 dense ResNet-20 ≈ 91.7 %; E4 rewinding to k ≈ 500 recovers dense
accuracy where k = 0 does not; E5, E6 keep-sign reinit and shuffles below rewinding.
"""

from configs import common
from experiments.early_phase import config as paper_config
from lib.config import parse_arg

MODELS = {
    "resnet20": {"name": "cifar_resnet", "depth": 20, "width": 16, "exclude": ""},
    "vgg13": {"name": "cifar_vgg", "depth": 13, "width": 16, "exclude": "^head/"},
    "wrn16_8": {"name": "cifar_resnet", "depth": 14, "width": 128, "exclude": ""},
}
REWIND_STEPS = (0, 25, 50, 100, 250, 500, 1000, 2000, 4000)
# 0.5, 1, 2, 5, 10 epochs (the paper's grid is a recollection)
PRETRAIN_STEPS = (196, 391, 782, 1955, 3910)
PERTURBATIONS = "reinit+reinit_keep_sign+shuffle_layer+shuffle_layer_keep_sign"


def get_config(arg=None):
    a = parse_arg(arg, quick=False, model="resnet20", k=2000, levels=20, perturbations="",
                  seed=0, pretrain="", pretrain_steps=2000, blur=4, fraction=0.1)
    if a.model not in MODELS:
        raise ValueError(f"unknown model {a.model!r}; valid: {', '.join(MODELS)}")
    m = MODELS[a.model]
    c = paper_config.get_config()
    common.lth_cifar10(c)
    c.seed = a.seed
    c.procedure = "experiments.early_phase.procedure:run"
    c.model.name, c.model.depth, c.model.width = m["name"], m["depth"], m["width"]
    c.sparsity.fraction = 0.2
    c.sparsity.scope = "global"
    c.sparsity.exclude = m["exclude"]
    c.imp.levels = a.levels
    c.imp.rewind_step = a.k
    c.keep_checkpoints = 2  # one to fall back to if the newest is damaged
    c.perturb.names = tuple(a.perturbations.split("+"))
    c.perturb.seed = a.seed
    c.task = "experiments.early_phase.task:EarlyPhaseStatistics"  # dense run's first 4,000 steps
    c.pretrain.variant, c.pretrain.steps = a.pretrain, a.pretrain_steps
    c.pretrain.blur, c.pretrain.fraction = a.blur, a.fraction
    if a.pretrain:
        c.imp.rewind_step = a.pretrain_steps  # every level starts from S_P
    if a.quick:
        c.model.depth = 8 if m["name"] == "cifar_resnet" else 11
        c.model.width = 16
        common.quick(c)
        if m["name"] == "cifar_vgg":
            c.data.pool = 1  # four max-pools need 28×28 (14×14 would vanish)
        c.imp.levels = 2
        c.imp.rewind_step = min(a.k, 10)
        c.sparsity.fraction = 0.5
        c.early_stats.until = 20
        c.pretrain.steps = c.imp.rewind_step if a.pretrain else c.pretrain.steps
    return c


def get_sweep(arg=None):
    """The rewinding sweep (trunks, 3 seeds) for each model, the perturbations at k = 500
    and 2,000, and ResNet-20's pretraining variants over P."""
    a = parse_arg(arg, seeds=3)
    points = [dict(model=m, k=k, seed=s) for m in MODELS for k in REWIND_STEPS
              for s in range(a.seeds)]
    points += [dict(model=m, k=k, perturbations=PERTURBATIONS, seed=s) for m in MODELS
               for k in (500, 2000) for s in range(a.seeds)]
    points += [dict(model="resnet20", pretrain=v, pretrain_steps=p, seed=s)
               for v in ("random_labels", "rotation", "blur", "no_augment", "subsample")
               for p in PRETRAIN_STEPS for s in range(a.seeds)]
    return points
