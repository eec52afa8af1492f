"""background_aug's own config sections: the background augmentations and the spec §6 view
ops (read by experiments.background_aug.augment:BackgroundViews, so they sit under data), and
the small-scale linear probes. The SSL methods' keys are lib's (configs/base.py: ssl).
Experiment configs start from `get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import at_least, each, greater_than, in_range

PROBABILITY = in_range(0, 1)


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's sections, with their defaults, in `c`."""
    c.data.bgaug = ml_collections.ConfigDict()  # background ops per view, before the view ops (BackgroundViews)
    c.data.bgaug.rm_prob = 0.0       # BG_RM: probability per view of removing the background
    c.data.bgaug.rm_fill = "black"   # BG_RM fill: black (0) | grey (0.5) | random_grey (U(0, 1) per image)
    c.data.bgaug.random_prob = 0.0   # BG_Random: probability per view (where BG_RM was not drawn) of a donor's background
    c.data.bgaug.donor_hole_fill = "tile"  # the donor's own foreground hole: tile | mean | none (synthetic data: the stored clean background)
    c.data.bgaug.swap_prob = 0.0     # BG_Swaps (contrastive methods): the positive on a new background plus a hard negative
    c.data.bgaug.min_fg = 0.01       # masks covering less than this fraction skip background ops
    c.data.bgaug.max_fg = 0.99       # masks covering more than this fraction skip background ops
    c.data.bgaug.masks_dir = ""      # data.name=experiments.background_aug.masks:source: the packed masks (experiments/background_aug/masks.py)
    c.data.bgaug.base_dataset = "imagenet2012"  # that source's TFDS dataset, whose train split gets the masks

    c.data.jitter = ml_collections.ConfigDict()  # the spec §6 view ops after the background ops
    c.data.jitter.pad = 3            # reflect padding before the random crop of the native size
    c.data.jitter.brightness = 0.4   # brightness × U(1 − b, 1 + b)
    c.data.jitter.contrast = 0.4     # contrast × U(1 − c, 1 + c) about the image mean
    c.data.jitter.gain = 0.3         # per-channel gain × U(1 − g, 1 + g)
    c.data.jitter.gray_prob = 0.2    # grayscale probability

    c.linear = ml_collections.ConfigDict()  # paper scale: the linear-evaluation stage after pretraining (procedure.imagenet)
    c.linear.recipe = "moco"         # moco (SGD lr 30, wd 0, ×0.1 at 60 % and 80 %) | swav (SGD lr 0.3 cosine, wd 1e-6)
    c.linear.epochs = 100            # over the train split
    c.linear.steps = 0               # overrides epochs where > 0 (quick runs)
    c.linear.batch_size = 256
    c.linear.augment = "imagenet"    # the stage's train augmentation (imagenet: random resized crop 224 + flip)

    c.finetune = ml_collections.ConfigDict()  # paper scale: limited-label fine-tuning stages after pretraining (procedure.imagenet)
    c.finetune.sets = ("",)          # 'label=dataset' entries, e.g. '1pct=imagenet2012_subset/1pct' ('' ignored)
    c.finetune.epochs = (60,)        # per entry of sets (the last repeats); SimCLR's protocol: 60 for 1 %, 30 for 10 % (recollection)
    c.finetune.steps = 0             # overrides epochs where > 0 (quick runs)
    c.finetune.lr = 0.05             # per 256 images, scaled by batch_size / 256; SGD Nesterov μ 0.9, cosine, no weight decay (SimCLR's, recollection)
    c.finetune.batch_size = 256
    c.finetune.augment = "imagenet"  # the stages' train augmentation

    c.imagenet_sets = ml_collections.ConfigDict()  # paper scale: robustness sets scored after the linear stage (lib.evaluators.imagenet_sets)
    c.imagenet_sets.sets = ("",)     # imagenet9 | imagenet_a | imagenet_r | real ('' ignored)
    c.imagenet_sets.in9_dir = ""     # the unpacked backgrounds_challenge folder (or $IMAGENET9_DIR)
    c.imagenet_sets.in9_variants = ("original", "only_fg", "mixed_same", "mixed_rand", "mixed_next")
    c.imagenet_sets.attack_eps = (0.25, 0.5, 1.0, 2.0)  # adversarial: L∞ ε in 1/255 pixel units (spec §4, reconstructed grid)
    c.imagenet_sets.pgd_steps = 10   # adversarial: PGD steps of 2.5·ε / steps
    c.imagenet_sets.attack_examples = 10_000  # adversarial: a subset of the eval split this large (data.subset_seed's draw; 0 = all)
    c.imagenet_sets.attack_seed = 0  # adversarial: PGD's random starts

    c.probe = ml_collections.ConfigDict()  # linear probes on frozen features (experiments.background_aug.procedure)
    c.probe.steps = 500              # full-batch Adam steps of the softmax regression
    c.probe.lr = 1e-2                # Adam learning rate
    c.probe.l2 = 1e-4                # L2 penalty on the weights: loss = CE + l2·‖W‖²
    c.probe.fg_split = "train_random_bg"  # probe B's training split (the same items on random backgrounds)
    c.probe.knn_k = 200              # kNN on the train split's features: neighbours that vote
    c.probe.knn_temperature = 0.07   # kNN vote weight exp(cosine / temperature)


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's sections."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "data.bgaug.rm_prob": PROBABILITY,
    "data.bgaug.random_prob": PROBABILITY,
    "data.bgaug.swap_prob": PROBABILITY,
    "data.bgaug.min_fg": PROBABILITY,
    "data.bgaug.max_fg": PROBABILITY,
    "data.jitter.pad": at_least(0),
    "data.jitter.brightness": in_range(0, 1),
    "data.jitter.contrast": in_range(0, 1),
    "data.jitter.gain": in_range(0, 1),
    "data.jitter.gray_prob": PROBABILITY,
    "linear.epochs": at_least(1),
    "linear.steps": at_least(0),
    "linear.batch_size": at_least(1),
    "finetune.epochs": each(at_least(1)),
    "finetune.steps": at_least(0),
    "finetune.lr": greater_than(0),
    "finetune.batch_size": at_least(1),
    "imagenet_sets.attack_eps": each(at_least(0)),
    "imagenet_sets.pgd_steps": at_least(1),
    "imagenet_sets.attack_examples": at_least(0),
    "probe.steps": at_least(1),
    "probe.lr": greater_than(0),
    "probe.l2": at_least(0),
    "probe.knn_k": at_least(1),
    "probe.knn_temperature": greater_than(0),
}
