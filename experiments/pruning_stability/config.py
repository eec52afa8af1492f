"""pruning_stability's own config sections: filter pruning during training and the flatness
measurements after it (read by this folder's task, noise, flatness and procedure modules).
Experiment configs start from `get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import FRACTION, SEED, STEPS, at_least, each, greater_than


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's sections, with their defaults, in `c`."""
    c.filter_pruning = ml_collections.ConfigDict()  # read by experiments.pruning_stability.task:FilterPruning
    c.filter_pruning.layers = ("",)  # conv kernel paths pruned during training, in forward order ('' ignored)
    c.filter_pruning.fractions = (0.0,)  # per layer: final pruned fraction of its filters
    c.filter_pruning.starts = (0,)   # per layer: first epoch (0-based) after which it is pruned
    c.filter_pruning.ends = (0,)     # per layer: last epoch after which it may be pruned
    c.filter_pruning.period = 40     # r: epochs between a layer's pruning events
    c.filter_pruning.score = "L2"    # L2 | L1 (kernel norms) | EBN | EBN_alt (expected BN output; EBN_alt leaves kernels unmasked)
    c.filter_pruning.target = "L"    # S (smallest) | L (largest; the public code's default) | R (random) | scratch (final masks at init, S) | none
    c.filter_pruning.steps_per_epoch = 0  # optimizer steps per epoch: epoch t's events follow step (t+1)·this
    c.filter_pruning.seed = 0        # draws of the R target
    c.filter_pruning.mask_bn = True  # mask the following BN's γ, β with the filter (False: the noise study's L baseline)
    c.filter_pruning.noise = "none"  # none | zero | gauss | zero_restore: perturb Prune_L's targets instead of pruning them (Figure 5, D.2)
    c.filter_pruning.noise_steps = 0  # X: training steps the perturbation lasts (zero_restore: restored after X steps)

    c.flatness = ml_collections.ConfigDict()  # read by experiments.pruning_stability.procedure:run after training
    c.flatness.examples = 0          # first N eval images the Hessian and gradients use (paper: 512; 0 = not measured)
    c.flatness.eigenvalues = 100     # top Hessian eigenvalues summed
    c.flatness.method = "power"      # power (deflated, the paper's) | lanczos
    c.flatness.iterations = 20       # power: Hessian-vector products per eigenvalue at most
    c.flatness.tolerance = 1e-4      # power: relative change of the eigenvalue that stops it
    c.flatness.step = 0              # the checkpoint measured (0 = the final state; keep_steps must keep it)
    c.flatness.curve_vectors = 0     # accuracy/loss curves along the top eigenvectors (paper: 10; full test set each)
    c.flatness.curve_epsilons = 81   # ε values evenly spaced on [−0.4, 0.4]


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's sections."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "filter_pruning.fractions": each(FRACTION),
    "filter_pruning.starts": each(at_least(0)),
    "filter_pruning.ends": each(at_least(0)),
    "filter_pruning.period": at_least(1),
    "filter_pruning.steps_per_epoch": at_least(0),
    "filter_pruning.seed": SEED,
    "filter_pruning.noise_steps": STEPS,
    "flatness.examples": at_least(0),
    "flatness.eigenvalues": at_least(1),
    "flatness.iterations": at_least(1),
    "flatness.tolerance": greater_than(0),
    "flatness.step": STEPS,
    "flatness.curve_vectors": at_least(0),
    "flatness.curve_epsilons": at_least(1),
}
