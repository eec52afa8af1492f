"""invariance's own config section: how the invariance score is measured on a finished (or
untrained) model (experiments.invariance.procedure). Experiment configs start from
`get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import at_least, each, greater_than, in_range


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's sections, with their defaults, in `c`."""
    c.data.invaug = ml_collections.ConfigDict()  # the augmentation ablations (experiments.invariance.augment:Ablation)
    c.data.invaug.variant = "HC"     # None | HC | H | C | CC | T | T2 | TS | TSnoAR | CCTSnoAR | TSnoARSQRTInv | noCCTSnoARSQRTInv | R | Cexp | Cbeta
    c.data.invaug.translate = 0.3    # t: translations uniform in ±t of the width and height (whole pixels, zero fill)
    c.data.invaug.crop_size = 224    # R: the random crop's side at image_size 224 (scaled with data.image_size)
    c.data.invaug.exp_rate = 0.5     # Cexp: rate of the exponential in the area fraction 1 / (1 + Exp(rate))
    c.data.invaug.beta = (1.0, 1.0)  # Cbeta: (a, b) of the area fraction low + (1 − low)·Beta(a, b)
    c.data.invaug.inv_scale = (1.0, 1 / 0.28)  # …SQRTInv: the crop side shrinks by 1/U(low, high)
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
    "data.invaug.translate": in_range(0, 1),
    "data.invaug.crop_size": at_least(1),
    "data.invaug.exp_rate": greater_than(0),
    "data.invaug.beta": each(greater_than(0)),
    "invariance.shifts": each(at_least(0)),
    "invariance.perm_seed": at_least(0),
}
