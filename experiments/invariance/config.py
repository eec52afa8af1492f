"""invariance's own config section: how the invariance score is measured on a finished (or
untrained) model (experiments.invariance.procedure). Experiment configs start from
`get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import at_least, each, equal_to, greater_than, in_range


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's sections, with their defaults, in `c`."""
    c.data.invaug = ml_collections.ConfigDict()  # the augmentation ablations (experiments.invariance.augment:Ablation)
    c.data.invaug.variant = "HC"     # None | HC | H | C | CC | T | T2 | TS | TSnoAR | CCTSnoAR | TSnoARSQRTInv | noCCTSnoARSQRTInv | R | Cexp | Cbeta
    c.data.invaug.translate = 0.3    # t: translations uniform in ±t of the width and height (whole pixels, zero fill)
    c.data.invaug.crop_size = 224    # R: the random crop's side at image_size 224 (scaled with data.image_size)
    c.data.invaug.exp_rate = 0.5     # Cexp: rate of the exponential in the area fraction 1 / (1 + Exp(rate))
    c.data.invaug.beta = (1.0, 1.0)  # Cbeta: (a, b) of the area fraction low + (1 − low)·Beta(a, b)
    c.data.invaug.inv_scale = (1.0, 1 / 0.28)  # …SQRTInv: the crop side shrinks by 1/U(low, high)
    c.data.invaug.canvas_shift = 4   # small scale (shifted:CanvasJitter T): whole-pixel shifts uniform in ±this
    c.data.invaug.canvas_scale = (0.8, 1.25)  # small scale (shifted:CanvasJitter S): centred rescale by U(low, high)
    c.invariance = ml_collections.ConfigDict()  # the invariance measurement (experiments.invariance.procedure)
    c.invariance.train = True        # train first; False: measure the starting state (the seeded init, or init.workdir's weights, e.g. converted ones)
    c.invariance.split = "test_centred"  # the images measured (of data.name), at the eval preprocessing
    c.invariance.examples = 0        # a seeded (data.subset_seed), stratified subset of the split this large (0 = all; paper: 9,600 ResNet, 3,200 ViT)
    c.invariance.batch_size = 0      # images per measurement batch (0 = data.eval_batch_size)
    c.invariance.shifts = tuple(range(0, 20, 2))  # whole-pixel translateX magnitudes (shift right, zero fill; spec §6)
    c.invariance.kinds = ("",)       # lib.perturb transformations measured at invariance.magnitudes ('' ignored; spec §2.3: all 13)
    c.invariance.magnitudes = tuple(range(10))  # their magnitude indices 0–9
    c.invariance.space = "pixel"     # pixel (transform in [0, 1], then normalise) | normalized (the code's quirk: transform normalised tensors)
    c.invariance.distances = ("cosine", "l2")  # metric.DISTANCES; the first gives the inv/ keys, the others inv_<name>/
    c.invariance.perm_seed = 0       # the seeded baseline permutation π (no fixed points)
    c.invariance.feature = "pool"    # the embedding: the model's features=True output of this name (ResNet GAP 'pool', ViT CLS after the final LayerNorm 'pre_logits')
    c.invariance.chunk = 1           # transformed batches per model call on device (more: faster, more memory)
    c.invariance.untrained_reference = False  # also measure the model at its seeded init (untrained_seed) and report the invariance gap per kind
    c.invariance.equivariance_examples = 0  # the first this many measured images also give the equivariance alignment per transform (spec §2.5: 10,000; 0 = off; holds T × N × D floats)
    c.invariance.untrained_seed = 0  # the untrained reference's init seed
    c.data.invaug.per_class_search = ""  # PerClass (experiments.invariance.augment:PerClass): a search.json of experiments.invariance.search_procedure whose per-class ranking picks the ops
    c.data.invaug.per_class_top = 25  # PerClass: each class's top this many candidates by proportion_boosted (spec §2.6 and the paper's code: 25)
    c.data.invaug.per_class_min_boost = 0.4  # PerClass: a top candidate is kept if its proportion_boosted ≥ this (spec §2.6: 0.4)
    c.data.invaug.per_class_strict = False  # PerClass: keep only proportion_boosted > per_class_min_boost (the paper's code); False: ≥ (the spec)
    c.data.invaug.per_class_change_filter = False  # PerClass: also drop candidates whose avg_percent_similarity_change < 0 (the paper's code); False: no such filter (the spec)
    c.data.invaug.per_class_prob = "uniform"  # PerClass: each kept op applies with probability uniform (1/n, n kept for the class: spec and code) | fixed (per_class_fixed_prob) | weighted_boost (softmax of weighted_boost; 0.5 if one: the code's other option)
    c.data.invaug.per_class_fixed_prob = 0.1  # PerClass: the probability of per_class_prob=fixed (spec §2.6: 0.1)
    c.data.invaug.per_class_sample_magnitude = True  # PerClass: magnitude index uniform in [0, searched index] per application (the paper's code); False: the searched index
    c.search = ml_collections.ConfigDict()  # the similarity search of spec §2.4 (experiments.invariance.search_procedure)
    c.search.train = False  # train first (workdir/train); False: embed with the starting state (init.workdir's weights, e.g. converted ones, or the seeded init)
    c.search.split = ""  # the split (of data.name) whose same-class pairs are searched, whole and in split order ('' = data.train_split)
    c.search.classes = ()  # the class labels searched (() = every class)
    c.search.pairs_per_class = 1000  # at most this many pairs per class (spec: 1,000)
    c.search.pair_batch = 32  # per class, its images in split order in batches of this many (a partial last one dropped); first half vs second half: pair_batch/2 pairs each
    c.search.whole_batches = False  # take whole batches until ≥ pairs_per_class (the paper's code: 1,008 for 1,000); False: exactly pairs_per_class at most (the spec)
    c.search.candidates_per_index = True  # magnitude-free ops (AutoContrast, Equalize, Invert) once per index they appear with: 63 candidates (the paper's code); False: once each, 50
    c.search.feature = "pool"  # the embedding: the model's features=True output of this name (ResNet GAP 'pool', ViT 'pre_logits')
    c.search.seed = 0  # the signs of signed ops: pair n of class c under candidate t gets default_rng([seed, c, t]).choice([-1, 1], n_pairs)[n]
    c.search.rank_by = ("proportion_boosted", "mean_delta")  # a class's candidates ranked by these statistics, largest first (ties: name order)
    c.search.top_k = 5  # the top-k factors of variation per class behind appearance_share_top{k} and distinct_top{k}_sets (claim I8: 5)
    c.search.batch_size = 256  # images per embedding call (global; a multiple of the device count)
    c.search.workers = 8  # host threads that read images and apply the candidates (PIL)
    c.search.plot_classes = 16  # search_factors.png shows the first this many classes (0: no plot)

def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's section."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "data.invaug.translate": in_range(0, 1),
    "data.invaug.crop_size": at_least(1),
    "data.invaug.canvas_shift": at_least(0),
    "data.invaug.canvas_scale": each(greater_than(0)),
    "data.invaug.exp_rate": greater_than(0),
    "data.invaug.beta": each(greater_than(0)),
    "invariance.shifts": each(at_least(0)),
    "invariance.magnitudes": each(in_range(0, 9)),
    "invariance.perm_seed": at_least(0),
    "invariance.examples": equal_to(0) | at_least(2),
    "invariance.batch_size": at_least(0),
    "invariance.chunk": at_least(1),
    "invariance.equivariance_examples": at_least(0),
    "invariance.untrained_seed": at_least(0),
    "data.invaug.per_class_top": at_least(1),
    "data.invaug.per_class_min_boost": in_range(0, 1),
    "data.invaug.per_class_fixed_prob": in_range(0, 1),
    "search.classes": each(at_least(0)),
    "search.pairs_per_class": at_least(1),
    "search.pair_batch": at_least(2),
    "search.seed": at_least(0),
    "search.top_k": at_least(1),
    "search.batch_size": at_least(1),
    "search.workers": at_least(1),
    "search.plot_classes": at_least(0),
}
