"""class_selectivity's own config section: the class-selectivity regulariser (read by this
folder's task). The robustness evaluation's keys are lib's (configs/base.py: robustness).
Experiment configs start from `get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import STEPS, finite, greater_than


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's sections, with their defaults, in `c`."""
    c.selectivity = ml_collections.ConfigDict()  # read by experiments.class_selectivity.task:SelectivityRegularized
    c.selectivity.alpha = 0.0        # loss = CE − α·mean SI: α < 0 penalises class selectivity, α > 0 rewards it
    c.selectivity.layers = ("",)     # feature names (model features=True) whose units are regularised and measured
    c.selectivity.eps = 1e-7         # ε in SI = (μ_max − μ_−max)/(μ_max + μ_−max + ε)
    c.selectivity.alpha_warmup_steps = 0  # α rises linearly from 0 over these steps (paper: ≈ 5 epochs, uncertain; 0 = off)


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's sections."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "selectivity.alpha": finite,
    "selectivity.eps": greater_than(0),
    "selectivity.alpha_warmup_steps": STEPS,
}
