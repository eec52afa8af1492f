"""early_phase's own config sections: pretraining before IMP, the early-phase statistics and
the perturbations of the rewound weights (read by this folder's procedure, task, pretrain and
perturb modules). Experiment configs start from `get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import SEED, STEPS, at_least, greater_than, in_range


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's sections, with their defaults, in `c`."""
    c.pretrain = ml_collections.ConfigDict()  # read by experiments.early_phase.procedure:run
    c.pretrain.variant = ""          # '' (none) | random_labels | rotation | blur | subsample | no_augment: P steps before IMP
    c.pretrain.steps = 0             # P: pretraining steps; the dense run and IMP levels then start from that state at step P
    c.pretrain.blur = 4              # blur: down/up-sampling factor b (value uncertain in the spec)
    c.pretrain.fraction = 0.1        # subsample: share of the training set kept (stratified)

    c.early_stats = ml_collections.ConfigDict()  # read by experiments.early_phase.task:EarlyPhaseStatistics
    c.early_stats.until = 4000       # last step of the statistics grid (1..10, every 10 to 100, 50 to 1,000, 250 beyond)
    c.early_stats.bins = 20          # histogram of |W| over all kernels: equal bins on [0, hist_max]
    c.early_stats.hist_max = 0.5     # upper edge (larger |W| counted in the last bin)

    c.perturb = ml_collections.ConfigDict()  # read by experiments.early_phase.perturb:transform
    c.perturb.name = "rewind"        # rewind | reinit | reinit_keep_sign | shuffle_layer | shuffle_layer_keep_sign | gaussian_noise
    c.perturb.epsilon = 1.0          # gaussian_noise: noise std as a multiple of the reference std
    c.perturb.noise_ref = "init_std"  # init_std (√(2/fan_in)) | rewound_std (std of the rewound unpruned weights)
    c.perturb.seed = 0               # draws of reinit, shuffles and noise
    c.perturb.names = ("",)          # experiments.early_phase.procedure:run: perturbations trained at the last IMP level ('' ignored)


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's sections."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "pretrain.steps": STEPS,
    "pretrain.blur": at_least(1),
    "pretrain.fraction": in_range(0, 1, low_open=True),
    "early_stats.until": at_least(1),
    "early_stats.bins": at_least(1),
    "early_stats.hist_max": greater_than(0),
    "perturb.epsilon": at_least(0),
    "perturb.seed": SEED,
}
