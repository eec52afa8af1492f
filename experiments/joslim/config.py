"""joslim's own config section: the sampling rounds, the MOBO sampler, the baselines and the
front evaluation (experiments.joslim.task, experiments.joslim.procedure). Experiment configs
start from `get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import at_least, in_range


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's section, with its defaults, in `c`."""
    c.joslim = ml_collections.ConfigDict()  # Joslim and its baselines (experiments.joslim.task)
    c.joslim.method = "joslim"       # joslim (MOBO widths) | slim (one multiplier per round) | twostage (random layer-wise widths, searched after training)
    c.joslim.tau = 50                # steps per sampling round (τ)
    c.joslim.samples = 2             # configurations sampled per round (M), besides the smallest
    c.joslim.prior = 10              # uniform-width configurations before the full width and MOBO (P)
    c.joslim.low = 0.42              # width multiplier bounds [l, u]
    c.joslim.high = 1.0
    c.joslim.beta = 0.1              # UCB: mean + √β·std
    c.joslim.cost = "macs"           # the cost C(α): macs (conv MACs, lib.slim.cost) | memory (weights + activations: our reading)
    c.joslim.cost_model = "exact"    # exact (the counter) | gp (a GP surrogate, as the paper's code)
    c.joslim.surrogate = "fixed"     # fixed (spec §6: Matérn-5/2, lengthscale 0.5, no fitting) | fitted (spec §2: priors, MAP, additive cost kernel; tinygp, the [gp] extra)
    c.joslim.ard = True              # fitted loss GP: one lengthscale per dimension (BoTorch's SingleTaskGP; the spec is silent)
    c.joslim.acquisition = "candidates"  # candidates (T_λ minimised over mobo.candidates) | restarts (then L-BFGS-B from the 5 best, BoTorch's way; needs cost_model=gp, surrogate=fitted)
    c.joslim.target = "uniform"      # cost targets: uniform over linspace(lower, 1, 50) | area (PareCO's area-weighted histogram)
    c.joslim.eval_grid = 10          # slim: uniform widths evaluated after training (linspace(l, u, this))
    c.joslim.recalibration_batches = 0  # BN recalibration before evaluating a sub-network: train batches (0 = the whole train split; ImageNet: 2 of 1,024)


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's section."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "joslim.tau": at_least(1),
    "joslim.samples": at_least(1),
    "joslim.prior": at_least(0),
    "joslim.low": in_range(0, 1, low_open=True),
    "joslim.high": in_range(0, 1, low_open=True),
    "joslim.beta": at_least(0),
    "joslim.eval_grid": at_least(2),
    "joslim.recalibration_batches": at_least(0),
}
