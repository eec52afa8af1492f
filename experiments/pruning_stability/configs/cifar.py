"""Generalization-stability tradeoff at paper scale on CIFAR (pruning_stability.md §3).

Experiments (arg `experiment`):
- fig2 (default; also Figures 3, 5, 6, B.2): VGG-11 or ResNet-18, Adam 1e-3 ×0.1 after epochs
  150 and 300, 325 epochs, batch 128, no augmentation, no weight decay. VGG-11 prunes its last
  four convs (f = 30/30/30/90 %, s = 3/4/5/6, e = 150/150/150/275, L2); ResNet-18 the four convs
  of stage 4 (f = 25/40/25/95 %, or 25/80/25/95 % with table_c1, s = 7/8/9/10, e = 150/150/170/275,
  running-activation score). b2: Figure B.2's scores (VGG-11 EBN; ResNet-18 EBN_alt, s = 3–6).
  Default target L, r = 40.
- fig4: ResNet-18/20/56, SGD μ 0.9 lr 0.1 ×0.1 after epochs 83 and 125, 165 epochs, wd 1e-4,
  pad-4 crop + flip; every conv inside the residual blocks, f = 10 %, L1, S, s = 40, e = 100,
  r = 30 ("3 %", the default) or 60 ("5 %").
- c3: ResNet-18 as fig4 with s = 24, e = 100, r = 1, f = 10 % or 6 % (fraction=0.06), S.
- f1: ResNet-18 on CIFAR-100, Adam 1e-4 ×0.1 after epoch 2000, 4,000 epochs, crop + flip; the
  last conv only, f = 70 %, L1, events after epochs 2500 and 3250 (r = 750); default target L.
Noise variants (Figure 5/D.2, VGG-11, r = 40): noise=zero|gauss|zero_restore, noise_steps=X
(training steps; Figure 5's 0/129/1500 passes ↔ 0/50/1,105 steps), mask_bn=false for the
L_no_bn_mask baseline. flatness=true measures Figure 6's Hessian and gradient statistics on the
first 512 test images at epoch 315, and the accuracy/loss curves along the top-10 eigenvectors.

Command (one run; data prepared with `python -m lib.data.prepare cifar10 --data_dir=D`):
    python -m lib.main \
      --config=experiments/pruning_stability/configs/cifar.py:model=vgg11,target=L,period=40 \
      --workdir=$WORKDIR/gst_vgg11_L40_s0 --config.data.data_dir=D
Args: experiment, model (vgg11 | resnet18 | resnet20 | resnet56), target (S | L | R | scratch
| none; '' = the experiment's), period (0 = the experiment's), score ('' = the experiment's),
fraction (fig4/c3), table_c1, b2, noise, noise_steps, mask_bn, flatness, seed, quick.
Hardware: one GPU or TPU host. Expected wall time (estimate, not yet measured here): 325
epochs of VGG-11 at batch 128 with an eval per epoch, a few hours on one modern GPU.
Reported (claims.py): G3 VGG-11 best test accuracy ≈ 83–86.5 %; G5 ResNet-18 ≈ 84–88.5 %;
G7 Fig 4 ResNet-18 ≈ 94 %; G2 stability and best accuracy correlate negatively.
"""

from configs import common
from experiments.pruning_stability import config as paper_config
from lib.config import parse_arg

EPOCH = common.steps_per_epoch(common.CIFAR10_TRAIN, 128)  # 391
MODELS = {
    "vgg11": {"name": "cifar_vgg", "depth": 11, "final_pool": "max",
              "kernel_init": "kaiming_normal_fan_out", "linear_init": "torch_default"},
    "resnet18": {"name": "imagenet_resnet", "depth": 18, "width": 64, "stem": "cifar",
                 "kernel_init": "torch_default"},
    "resnet20": {"name": "cifar_resnet", "depth": 20, "width": 16, "shortcut": "zero_pad"},
    "resnet56": {"name": "cifar_resnet", "depth": 56, "width": 16, "shortcut": "zero_pad"},
}
STAGE4 = tuple(f"stage4/block{b}/conv{c}/kernel" for b in (0, 1) for c in (1, 2))
EXPERIMENTS = ("fig2", "fig4", "c3", "f1")
DEFAULT_PERIOD = {"fig2": 40, "fig4": 30, "c3": 1, "f1": 750}  # f1: events 2500, 3250
DEFAULT_TARGET = {"fig2": "L", "fig4": "S", "c3": "S", "f1": "L"}
FLATNESS_EPOCH = 315  # Figure 6 measures after 315 epochs


def _block_convs(model: str) -> tuple[str, ...]:
    """Every conv inside the residual blocks, in forward order."""
    stages, blocks = {"resnet18": (4, 2), "resnet20": (3, 3), "resnet56": (3, 9)}[model]
    return tuple(f"stage{s}/block{b}/conv{c}/kernel" for s in range(1, stages + 1)
                 for b in range(blocks) for c in (1, 2))


def _schedule(c, experiment, model, a):
    """(layers, fractions, starts, ends, period, score) of the experiment."""
    fp = c.filter_pruning
    if experiment == "fig2" and model == "vgg11":
        fp.layers = tuple(f"conv{i}/conv/kernel" for i in (4, 5, 6, 7))
        fp.fractions, fp.starts, fp.ends = (0.3, 0.3, 0.3, 0.9), (3, 4, 5, 6), (150, 150, 150, 275)
    elif experiment == "fig2":
        fp.layers = STAGE4
        fp.fractions = (0.25, 0.8 if a.table_c1 else 0.4, 0.25, 0.95)
        fp.starts, fp.ends = (7, 8, 9, 10), (150, 150, 170, 275)
    elif experiment in ("fig4", "c3"):
        fp.layers = _block_convs(model)
        n = len(fp.layers)
        start = 40 if experiment == "fig4" else 24
        fp.fractions, fp.starts, fp.ends = (a.fraction,) * n, (start,) * n, (100,) * n
    else:  # f1: the last conv, events after epochs 2500 and 3250
        fp.layers, fp.fractions, fp.starts, fp.ends = (STAGE4[-1],), (0.7,), (2500,), (3250,)
    if a.b2:  # Figure B.2: EBN (VGG) / EBN_alt with starts 3, 4, 5, 6 (ResNet-18)
        fp.starts = fp.starts if model == "vgg11" else (3, 4, 5, 6)
    fp.period = a.period or DEFAULT_PERIOD[experiment]


def _check(a):
    if a.experiment not in EXPERIMENTS:
        raise ValueError(f"experiment={a.experiment!r}; valid: {', '.join(EXPERIMENTS)}")
    if a.model not in MODELS:
        raise ValueError(f"model={a.model!r}; valid: {', '.join(MODELS)}")
    allowed = {"fig2": ("vgg11", "resnet18"), "fig4": ("resnet18", "resnet20", "resnet56"),
               "c3": ("resnet18",), "f1": ("resnet18",)}[a.experiment]
    if a.model not in allowed:
        raise ValueError(f"experiment={a.experiment} uses model {' or '.join(allowed)}, "
                         f"not {a.model}")


def _default_score(a) -> str:
    if a.experiment != "fig2":
        return "L1"
    if a.model == "resnet18":
        return "EBN_alt" if a.b2 else "activations"
    return "EBN" if a.b2 else "L2"


def get_config(arg=None):
    a = parse_arg(arg, quick=False, experiment="fig2", model="vgg11", target="", period=0,
                  score="", fraction=0.1, table_c1=False, b2=False, noise="none", noise_steps=0,
                  mask_bn=True, flatness=False, seed=0)
    _check(a)
    c = paper_config.get_config()
    c.seed = a.seed
    c.procedure = "experiments.pruning_stability.procedure:run"
    c.task = "experiments.pruning_stability.task:FilterPruning"
    for key, value in MODELS[a.model].items():
        c.model[key] = value
    c.model.bn_init = "fixed"  # PyTorch: γ = 1, β = 0
    c.model.mask_pruned_residual = a.model != "vgg11"
    c.data.name = "cifar100" if a.experiment == "f1" else "cifar10"
    c.data.normalization = "cifar100" if a.experiment == "f1" else "cifar10_kuangliu"
    c.data.augment = "none" if a.experiment == "fig2" else "cifar"
    c.data.batch_size = 128
    c.data.eval_batch_size = 128 if a.noise != "none" else 256
    c.data.num_workers = 4
    epochs, milestones = {"fig2": (325, (150, 300)), "fig4": (165, (83, 125)),
                          "c3": (165, (83, 125)), "f1": (4000, (2000,))}[a.experiment]
    if a.experiment in ("fig2", "f1"):
        c.optim.name, c.optim.lr, c.optim.weight_decay = "adam", (1e-3 if a.experiment ==
                                                                  "fig2" else 1e-4), 0.0
    else:
        c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay = "sgd", 0.1, 0.9, 1e-4
    c.optim.schedule, c.optim.decay_factor = "step", 0.1
    c.optim.milestones = tuple(m * EPOCH for m in milestones)
    c.total_steps = epochs * EPOCH
    c.log_every = c.eval_every = EPOCH  # per-epoch train accuracy and A_post
    c.checkpoint_every = 5 * EPOCH
    c.keep_checkpoints = 2  # one to fall back to if the newest is damaged
    _schedule(c, a.experiment, a.model, a)
    fp = c.filter_pruning
    fp.score = a.score or _default_score(a)
    fp.target = a.target or DEFAULT_TARGET[a.experiment]
    fp.steps_per_epoch = EPOCH
    fp.seed = a.seed
    fp.mask_bn = a.mask_bn
    fp.noise, fp.noise_steps = a.noise, a.noise_steps
    if a.flatness:  # Figure 6: the state after 315 epochs, kept for the measurement
        c.flatness.examples, c.flatness.curve_vectors = 512, 10
        c.flatness.step = FLATNESS_EPOCH * EPOCH
        c.keep_steps = (c.flatness.step,)
    if a.quick:
        _quick(c, a)
    return c


def _quick(c, a):
    """Minutes on a CPU: Fashion-MNIST subset, 6 short epochs, events after epochs 1 and 3."""
    common.quick(c)
    c.data.pool = 1 if a.model == "vgg11" else 2  # VGG's four max-pools need 28×28
    c.data.train_examples, c.data.eval_examples = 256, 256
    c.data.batch_size, c.data.eval_batch_size = 64, 256
    if a.model == "vgg11":
        c.data.train_examples = 128
    epoch = common.steps_per_epoch(c.data.train_examples, c.data.batch_size)
    c.model.width = min(c.model.width, 8)
    c.total_steps = 6 * epoch
    c.optim.milestones = (4 * epoch,)
    c.log_every = c.eval_every = c.filter_pruning.steps_per_epoch = epoch
    c.checkpoint_every = 3 * epoch
    n = len(c.filter_pruning.layers)
    c.filter_pruning.starts, c.filter_pruning.ends = (1,) * n, (3,) * n
    c.filter_pruning.period = 2
    if a.flatness:
        c.flatness.examples, c.flatness.eigenvalues, c.flatness.curve_vectors = 64, 2, 1
        c.flatness.curve_epsilons = 3
        c.flatness.step, c.keep_steps = 4 * epoch, (4 * epoch,)


def get_sweep(arg=None):
    """Figure 2's configurations (VGG-11: 10 seeds, ResNet-18) and Figure 3's grid (VGG-11,
    S/R/L × r, 5 seeds); `experiment=fig4` instead gives Figure 4's points."""
    a = parse_arg(arg, seeds=10, experiment="fig2")
    if a.experiment == "fig4":
        return [dict(experiment="fig4", model=m, target=t, period=r, seed=s)
                for m in ("resnet18", "resnet20", "resnet56")
                for t, r in (("S", 30), ("S", 60), ("none", 30)) for s in range(a.seeds)]
    fig2 = [("none", 40), ("S", 4), ("S", 40), ("R", 40), ("L", 40), ("scratch", 40)]
    points = [dict(model="vgg11", target=t, period=r, seed=s) for t, r in fig2
              for s in range(a.seeds)]
    points += [dict(model="resnet18", target=t, period=r, seed=s) for t, r in fig2[:3] +
               [("L", 40)] for s in range(a.seeds)]
    points += [dict(model="vgg11", target=t, period=r, seed=s) for t in ("S", "R", "L")
               for r in (4, 20, 60, 100, 200, 300) for s in range(min(a.seeds, 5))]
    return points
