"""Paper scale (joslim.md §3): slimmable MobileNetV2, MobileNetV3-Large and ResNet-18 on
imagenet2012, Joslim against Slim and TwoStage, then the front (experiments.joslim.procedure).

Recipe (the paper's code's README, spec §3): batch 1024, SGD μ 0.9, lr 0.125 × 1024/256 =
0.5, weight decay 4e-5 (not on BN β and biases; on BN γ as the code decides by module name:
`wd_gamma=code`), 5 warm-up epochs then linear decay to 0, label smoothing 0.1, in-place
distillation; 250 epochs (ResNet-18: 100), τ 625 (ResNet-18: 250), M = 2, P = 20,
l = 0.42; random resized crop 224 at area (0.25, 1) (MobileNetV3: (0.08, 1)), flips, colour
jitter 0.4 and PCA lighting 0.1; eval resize 256 → centre crop 224, ImageNet mean / std.
BN recalibration before evaluating a sub-network on 2 training batches of 1,024 (the code's).
10,000 training images are held out as the validation split for calibration and front
selection (the code used the test split).
MOBO as the code's (spec §2): MAP-fitted GPs for loss and cost (experiments.joslim.fitted_gp,
tinygp: the `[gp]` extra) and L-BFGS-B restarts of the acquisition.

Command (ImageNet prepared with `python -m lib.data.prepare imagenet2012 --data_dir=D`):
    python -m lib.main \\
      --config=experiments/joslim/configs/imagenet.py:model=mobilenet_v2,method=joslim \\
      --workdir=$WORKDIR/joslim_mbv2 --config.data.data_dir=D
Args: model (mobilenet_v2 | mobilenet_v3 | resnet18; default mobilenet_v2, resnet18 with
quick), method (joslim | slim | twostage), cost (macs | memory), wd_gamma (code | none | all),
seed (the code seeds 3080 + seed), quick (the same code path on Fashion-MNIST, 10 steps, one
sampled sub-network per round, ResNet-18 at 16 px: under a minute; MobileNets at 32 px:
about two).
Hardware: 8 GPUs or a TPU v4-8 slice. Not run here: no wall time or accuracy has been
measured.
Reported (claims.py): J1 (MobileNetV2, FLOPs: up to +1.7 top-1 over Slim), J2 (MobileNetV3:
up to +1), J3 (MobileNetV2, memory: up to +8), J7 / J8 (299.5 M / 1814 M conv MACs).
"""

from configs import common
from experiments.joslim import config as paper_config
from lib.config import parse_arg

MODELS = {  # model: (model.name, epochs, τ, crop area low)
    "mobilenet_v2": ("slim_mobilenet_v2", 250, 625, 0.25),
    "mobilenet_v3": ("slim_mobilenet_v3", 250, 625, 0.08),
    "resnet18": ("slim_imagenet_resnet", 100, 250, 0.25),
}
# Weight decay exclusions: β and biases always; γ where the paper's code's module is named
# bn* (its Bottleneck and downsample BNs: here downsample_bn), or every γ ('none'), or none.
WD_GAMMA = {"code": r"(bias|downsample_bn/scale)$", "all": r"bias$",
            "none": r"(bias|scale)$"}
HELD_OUT = 10_000
SEED_OFFSET = 3080


def get_config(arg=None):
    a = parse_arg(arg, model="", method="joslim", cost="macs", wd_gamma="code", seed=0,
                  quick=False)
    a.model = a.model or ("resnet18" if a.quick else "mobilenet_v2")
    if a.model not in MODELS:
        raise ValueError(f"model={a.model!r}; valid choices: {', '.join(MODELS)}")
    if a.wd_gamma not in WD_GAMMA:
        raise ValueError(f"wd_gamma={a.wd_gamma!r}; valid choices: {', '.join(WD_GAMMA)}")
    name, epochs, tau, crop_low = MODELS[a.model]
    c = paper_config.get_config()
    c.seed = SEED_OFFSET + a.seed
    c.task = "experiments.joslim.task:Joslim"
    c.procedure = "experiments.joslim.procedure:run"
    c.model.name, c.model.depth, c.model.mobilenet_kind = name, 18, "large"
    c.data.name, c.data.eval_split = "imagenet2012", "validation"
    c.data.augment, c.data.image_size, c.data.normalization = "imagenet", 224, "imagenet"
    c.data.crop_scale, c.data.crop_ratio = (crop_low, 1.0), (3 / 4, 4 / 3)
    c.data.color_jitter, c.data.lighting = 0.4, 0.1
    c.data.validation_examples, c.data.subset_seed = HELD_OUT, 0
    c.data.batch_size, c.data.eval_batch_size, c.data.num_workers = 1024, 1024, 16
    epoch = common.steps_per_epoch(common.IMAGENET_TRAIN - HELD_OUT, c.data.batch_size)
    c.total_steps = epochs * epoch
    c.label_smoothing = 0.1
    c.optim.name, c.optim.lr, c.optim.momentum = "sgd", 0.125 * 1024 / 256, 0.9
    c.optim.weight_decay, c.optim.weight_decay_exclude = 4e-5, WD_GAMMA[a.wd_gamma]
    c.optim.schedule, c.optim.warmup_steps = "linear", 5 * epoch
    c.log_every, c.eval_every, c.checkpoint_every = 100, 10 * epoch, 2_000
    c.joslim.method, c.joslim.cost = a.method, a.cost
    c.joslim.tau, c.joslim.samples, c.joslim.prior = tau, 2, 20
    c.joslim.recalibration_batches = 2
    c.joslim.surrogate, c.joslim.cost_model, c.joslim.acquisition = "fitted", "gp", "restarts"
    if a.quick:
        common.quick(c, steps=10)
        c.data.augment, c.data.pool = "imagenet", 1
        c.data.lighting = 0.0  # Fashion-MNIST is grey: the jitter runs, PCA lighting cannot
        c.data.image_size = 16 if a.model == "resnet18" else 32  # MobileNets stride by 32
        c.data.train_examples, c.data.eval_examples, c.data.validation_examples = 256, 64, 64
        c.data.batch_size, c.data.eval_batch_size = 16, 64
        c.joslim.recalibration_batches = 1
        c.joslim.tau, c.joslim.prior, c.joslim.samples = 5, 2, 1
        c.progress = False
    return c


def get_sweep(arg=None):
    """Joslim, Slim and TwoStage × the three networks."""
    del arg
    return [dict(model=m, method=k) for m in MODELS for k in ("joslim", "slim", "twostage")]
