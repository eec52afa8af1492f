"""The small-scale class-selectivity experiment of class_selectivity.md §6.

Fashion-MNIST (60,000 train / 10,000 test, pixels in [0, 1], flattened), MLP 784→256→256→10
with ReLU, the selectivity regularizer on both hidden layers (loss = CE − α·mean SI); Adam 1e-3,
batch 256, 8 epochs. After training: test accuracy, mean SI per layer, accuracy under Gaussian
noise (σ 0.2, 0.4), ten common corruptions at severities 1, 3, 5 (CIFAR-10-C constants) and
FGSM (ε 0.01, 0.03, 0.05), PCA-95 dimensionality per layer (clean and of each perturbation's
change), and the input-gradient variability of 32 units per layer.
data=digits: the spec's fast variant (sklearn digits, 70/30 split, MLP 64→128→128→10, 60
epochs).

Command:
    python -m lib.main --config=experiments/class_selectivity/configs/fashion_mnist.py:alpha=-2 \
      --workdir=/tmp/si_fm_a-2_s0
Hardware: a 2-core CPU. Expected wall time: about 30 s per run (digits: about 10 s).
Reference (spec §6, 3 seeds): mean SI L1 0.07 / 0.59 / 0.81 for α = −2 / 0 / +2; top-1
0.82–0.85 / 0.88 / 0.88; FGSM accuracy at ε 0.05: 0.17–0.23 / 0.33–0.36 / 0.41–0.43.
Args: alpha, seed, data (fashion_mnist | digits), quick.
"""

from configs import common
from experiments.class_selectivity import config as paper_config
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, quick=False, alpha=0.0, seed=0, data="fashion_mnist")
    c = paper_config.get_config()
    c.seed = a.seed
    c.procedure = "experiments.class_selectivity.procedure:run"
    c.task = "experiments.class_selectivity.task:SelectivityRegularized"
    c.model.name = "mlp"
    c.model.kernel_init = "torch_default"
    c.data.normalization = "none"  # pixels in [0, 1]: noise and ε are in pixel units
    c.data.batch_size = 256
    if a.data == "fashion_mnist":
        c.model.widths = (256, 256)
        c.data.name, c.data.eval_batch_size = "fashion_mnist", 1000
        train_examples, epochs = 60_000, 8
    elif a.data == "digits":
        c.model.widths = (128, 128)
        c.data.name, c.data.test_fraction, c.data.eval_batch_size = "digits", 0.3, 544
        train_examples, epochs = 1_258, 60
    else:
        raise ValueError(f"data={a.data!r}; valid choices: fashion_mnist, digits")
    c.optim.name, c.optim.lr, c.optim.weight_decay = "adam", 1e-3, 0.0
    c.optim.schedule = "constant"
    c.total_steps = epochs * common.steps_per_epoch(train_examples, c.data.batch_size)
    c.log_every = 100
    c.checkpoint_every = 1000
    c.progress = False
    c.selectivity.alpha = a.alpha
    c.selectivity.layers = ("dense0", "dense1")
    # the four families on the fly (CIFAR-10-C constants), severities 1, 3, 5
    c.robustness.corruptions = ("gaussian_noise", "shot_noise", "impulse_noise",
                                "gaussian_blur", "defocus_blur", "motion_blur", "fog",
                                "contrast", "pixelate", "jpeg_compression")
    c.robustness.severities = (1, 3, 5)
    c.robustness.gradient_units = 32
    c.eval.top_k = 0
    if a.quick:
        c.data.train_examples, c.data.eval_examples = 2_000, 500
        c.data.eval_batch_size = 504
        c.total_steps = 40
        c.data.name = "fashion_mnist"
        c.model.widths = (32, 32)
        c.robustness.corruptions, c.robustness.severities = ("gaussian_noise", "contrast"), (1, 5)
    return c


def get_sweep(arg=None):
    """α ∈ {−2, 0, +2} × seeds (spec §6)."""
    a = parse_arg(arg, seeds=3, data="fashion_mnist")
    return [dict(alpha=al, seed=s, data=a.data) for al in (-2.0, 0.0, 2.0)
            for s in range(a.seeds)]
