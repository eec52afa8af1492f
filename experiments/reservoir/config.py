"""reservoir's own config section: the reservoir layers' backward rule and the AUCC horizon
(experiments.reservoir.layers, experiments.reservoir.claims). Experiment configs start from
`get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import at_least, greater_than, in_range


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's section, with its defaults, in `c`."""
    c.reservoir = ml_collections.ConfigDict()  # reservoir layers (experiments.reservoir.layers)
    c.reservoir.backskip = "none"    # backward pass through reservoir blocks: none (exact) | identity (dL/dh_in := η·dL/dh_out; reconstructed) | stochastic (identity with probability skip_probability per step and layer)
    c.reservoir.eta = 1.0            # backskip: η, the scale of the gradient passed through
    c.reservoir.skip_probability = 1.0  # backskip=stochastic: probability of skipping (1 = always)
    c.reservoir.conv_kernel = 3      # 'C' reservoirs: width of the light dynamic convolution (odd)
    c.reservoir.layerdrop = 0.2      # 'D' layers (the LayerDrop baseline): probability of skipping the layer in a training step (Fan et al. 2019's rate for 'at matched depth' is not stated: ours)
    c.reservoir.horizon = 1500.0     # T̂ of the AUCC, in seconds of training clock (paper: IWSLT 4 h, WMT 20 h, enwik8 30 h, RoBERTa 60 h)


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's section."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "reservoir.eta": at_least(0),
    "reservoir.skip_probability": in_range(0, 1),
    "reservoir.conv_kernel": at_least(1),
    "reservoir.layerdrop": in_range(0, 1, high_open=True),
    "reservoir.horizon": greater_than(0),
}
