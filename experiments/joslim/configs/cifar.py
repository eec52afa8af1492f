"""Paper scale (joslim.md §3): slimmable CIFAR ResNet-20/32/44/56 on cifar100 (or cifar10),
Joslim against Slim and TwoStage, then the front (experiments.joslim.procedure).

Recipe (the paper's code's README, spec §3): SGD μ 0.9, lr 0.1 × 128/256 = 0.05, batch 128,
weight decay 5e-4 (not on BN β and biases; on BN γ as the code: `wd_gamma=code`, which for
these nets decays every γ), 5 warm-up epochs then linear decay to 0, label smoothing 0.1,
in-place distillation; random crop 32 with 4 px padding and flips, ImageNet mean/std
normalisation (the code's, for CIFAR too); M = 2, P = 20, l = 0.42, b = −3, UCB β 0.1,
τ such that about 500 rounds run (the code: 235 for 300 epochs). The paper trained 200 epochs
(the README says 300: `epochs=300`). The code calibrated and selected the front on the test
split; here 5,000 training images are held out as the validation split for both.
MOBO as the code's (spec §2): GPs for loss and cost with the spec's priors, MAP-fitted
(experiments.joslim.fitted_gp, tinygp: the `[gp]` extra), the acquisition refined by
L-BFGS-B restarts; `--config.joslim.surrogate=fixed --config.joslim.cost_model=exact
--config.joslim.acquisition=candidates` gives spec §6's small-scale sampler instead.

Command (CIFAR-100 prepared with `python -m lib.data.prepare cifar100 --data_dir=D`):
    python -m lib.main --config=experiments/joslim/configs/cifar.py:depth=20,method=joslim \\
      --workdir=$WORKDIR/joslim_r20_c100 --config.data.data_dir=D
Args: depth (20 | 32 | 44 | 56), dataset (cifar100 | cifar10), method (joslim | slim |
twostage), epochs (200), wd_gamma (code | none | all), seed (the code seeds 3080 + seed),
quick (the same code path on Fashion-MNIST at 14 px, 20 steps: seconds).
Hardware: one GPU. Not run here: no wall time or accuracy has been measured.
Reported (claims.py): J4 (the gain over Slim is larger for ResNet-20 than for ResNet-56),
J5 / J6 (40.16 M / 125.10 M conv MACs at full width, exact in tests).
"""

from configs import common
from experiments.joslim import config as paper_config
from experiments.joslim.configs import digits
from lib.config import parse_arg

TRAIN = {"cifar10": 50_000, "cifar100": 50_000}
HELD_OUT = 5_000
ROUNDS = 500
SEED_OFFSET = 3080


def get_config(arg=None):
    a = parse_arg(arg, depth=20, dataset="cifar100", method="joslim", epochs=200,
                  wd_gamma="code", seed=0, quick=False)
    if a.dataset not in TRAIN:
        raise ValueError(f"dataset={a.dataset!r}; valid choices: {', '.join(TRAIN)}")
    if a.wd_gamma not in digits.WD_GAMMA:
        raise ValueError(f"wd_gamma={a.wd_gamma!r}; valid choices: "
                         f"{', '.join(digits.WD_GAMMA)}")
    c = paper_config.get_config()
    c.seed = SEED_OFFSET + a.seed
    c.task = "experiments.joslim.task:Joslim"
    c.procedure = "experiments.joslim.procedure:run"
    c.model.name, c.model.depth, c.model.width, c.model.stem = \
        "slim_cifar_resnet", a.depth, 16, "1x1"
    c.model.kernel_init, c.model.bn_init = "kaiming_normal_fan_out", "fixed"
    c.data.name, c.data.augment, c.data.normalization = a.dataset, "cifar", "imagenet"
    c.data.validation_examples = HELD_OUT
    c.data.batch_size, c.data.eval_batch_size, c.data.num_workers = 128, 1000, 4
    epoch = common.steps_per_epoch(TRAIN[a.dataset] - HELD_OUT, c.data.batch_size)
    c.total_steps = a.epochs * epoch
    c.label_smoothing = 0.1
    c.optim.name, c.optim.lr, c.optim.momentum = "sgd", 0.1 * 128 / 256, 0.9
    c.optim.weight_decay = 5e-4
    c.optim.weight_decay_exclude = digits.WD_GAMMA[a.wd_gamma]
    c.optim.schedule, c.optim.warmup_steps = "linear", 5 * epoch
    c.log_every, c.eval_every, c.checkpoint_every = 200, 10 * epoch, 5 * epoch
    c.joslim.method = a.method
    c.joslim.tau = max(1, c.total_steps // ROUNDS)
    c.joslim.samples, c.joslim.prior = 2, 20
    c.joslim.surrogate, c.joslim.cost_model, c.joslim.acquisition = "fitted", "gp", "restarts"
    if a.quick:
        common.quick(c, steps=20)
        c.data.validation_examples = 200
        c.data.normalization = "dataset"
        c.joslim.tau, c.joslim.prior = 5, 2
        c.progress = False
    return c


def get_sweep(arg=None):
    """Joslim, Slim and TwoStage × ResNet-20/32/44/56 on cifar100."""
    a = parse_arg(arg, dataset="cifar100")
    return [dict(depth=d, method=m, dataset=a.dataset) for d in (20, 32, 44, 56)
            for m in ("joslim", "slim", "twostage")]
