"""invariance's own config section: how the invariance score is measured on a finished (or
untrained) model (experiments.invariance.procedure). Experiment configs start from
`get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import at_least, each


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's section, with its defaults, in `c`."""
    c.invariance = ml_collections.ConfigDict()  # the invariance measurement (procedure.measure)
    c.invariance.untrained = False   # measure the model at its seeded initialisation, no training
    c.invariance.split = "test_centred"  # the images measured (of data.name)
    c.invariance.shifts = tuple(range(0, 20, 2))  # translateX magnitudes in pixels (shift right, zero fill)
    c.invariance.distance = "cosine"  # cosine | l2 (metric.DISTANCES)
    c.invariance.perm_seed = 0       # the seeded baseline permutation π (no fixed points)
    c.invariance.feature = "pool"    # the embedding: the model's features=True output of this name


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's section."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "invariance.shifts": each(at_least(0)),
    "invariance.perm_seed": at_least(0),
}
