"""The small-scale experiment of joslim.md §6: Joslim against Slim on scikit-learn digits.

Digits (8×8, /16), stratified 80/10/10 train / validation / test (seed 0); the validation
split drives the calibration of the history and the selection of the front (the paper's code
used the test split there). A slimmable CIFAR-style ResNet [1, 1, 1] at widths 8/16/32,
option-A shortcuts, the code's 1×1 stem without BN, a 1×1-conv classifier: D = 6 width dims.
3,000 SGD steps (momentum 0.9), batch 64, lr 0.05 with 150 warm-up steps then linear decay to
0, weight decay 5e-4 (not on BN β and biases; on γ as the paper's code: `wd_gamma=code`),
label smoothing 0.1 on the full width, in-place distillation for the sub-networks; τ = 50,
M = 2, P = 10, l = 0.42, UCB β = 0.1, the exact cost counter (conv MACs). Then the front:
peeling of the history (Slim: 10 uniform widths), BN recalibration on the whole train split,
validation-selected front, test top-1 and the area under it.

Command:
    python -m lib.main --config=experiments/joslim/configs/digits.py:method=joslim \\
      --workdir=/tmp/joslim_digits_s0
Args: method (joslim | slim | twostage), seed, wd_gamma (code | none | all: weight decay on
BN γ), target (uniform | area: PareCO's), quick (20 steps, τ 5).
Hardware: a 2-core CPU. Expected wall time: about a minute per run.
"""

from experiments.joslim import config as paper_config
from lib.config import parse_arg

WD_GAMMA = {"code": r"bias$", "all": r"bias$", "none": r"(bias|scale)$"}


def get_config(arg=None):
    a = parse_arg(arg, method="joslim", seed=0, wd_gamma="code", target="uniform",
                  quick=False)
    if a.wd_gamma not in WD_GAMMA:
        raise ValueError(f"wd_gamma={a.wd_gamma!r}; valid choices: {', '.join(WD_GAMMA)}")
    c = paper_config.get_config()
    c.seed = a.seed
    c.task = "experiments.joslim.task:Joslim"
    c.procedure = "experiments.joslim.procedure:run"
    c.model.name, c.model.depth, c.model.width, c.model.stem = "slim_cifar_resnet", 8, 8, "1x1"
    c.model.kernel_init, c.model.bn_init = "kaiming_normal_fan_out", "fixed"
    c.data.name = "digits"
    c.data.test_fraction = 0.1
    c.data.validation_examples = 180
    c.data.batch_size, c.data.eval_batch_size = 64, 64
    c.label_smoothing = 0.1
    c.optim.name, c.optim.lr, c.optim.momentum = "sgd", 0.05, 0.9
    c.optim.weight_decay, c.optim.weight_decay_exclude = 5e-4, WD_GAMMA[a.wd_gamma]
    c.optim.schedule, c.optim.warmup_steps = "linear", 150
    c.total_steps = 3000
    c.log_every, c.eval_every, c.checkpoint_every = 250, 0, 1000
    c.progress = False
    c.joslim.method, c.joslim.target = a.method, a.target
    c.joslim.tau, c.joslim.samples, c.joslim.prior = 50, 2, 10
    if a.quick:
        c.total_steps, c.optim.warmup_steps, c.joslim.tau, c.joslim.prior = 20, 2, 5, 2
        c.checkpoint_every = 10
    return c


def get_sweep(arg=None):
    """Joslim and Slim × seeds (spec §6: 0, 1, 2)."""
    a = parse_arg(arg, seeds=3)
    return [dict(method=m, seed=s) for m in ("joslim", "slim") for s in range(a.seeds)]
