"""The augmentation ablations of invariance.md §2.1, one training recipe with the train
transform as a variant (data.augment = "experiments.invariance.augment:Ablation",
data.invaug.variant = …). S = data.image_size (224), R = round(S · 256/224) (256), t =
data.invaug.translate (0.3), crop area and aspect ranges data.crop_scale / data.crop_ratio
(torchvision's (0.08, 1) and (3/4, 4/3) in the configs):

| variant | transform |
|---|---|
| None | resize R → centre crop S (the eval transform) |
| HC | random resized crop S + flip (the standard recipe) |
| H / C | None + flip / random resized crop S alone |
| CC | the random resized crop's size and aspect, always centred, resized to S (scale only) |
| T | resize R → translate ±t → centre crop S (translation only) |
| T2 | resize R → centre crop S → translate ±t |
| TS / TSnoAR | translate ±t on the full image → centred random-size crop S, aspect jitter / 1 |
| CCTSnoAR | resize R → centre crop S → translate ±t → centred random-size crop S, aspect 1 |
| TSnoARSQRTInv | CCTSnoAR, the crop side shrunk by 1/U(data.invaug.inv_scale) |
| noCCTSnoARSQRTInv | TSnoAR, the crop side shrunk likewise |
| R | resize R → random crop data.invaug.crop_size (at S = 224; scaled with S) → resize S |
| Cexp | random resized crop S, area fraction 1 / clip(1 + Exp(rate), 1, 1/low) |
| Cbeta | random resized crop S, area fraction low + (1 − low) · Beta(a, b) |

Translations are whole pixels, uniform in ±t of the current width and height, zero fill
(torchvision's RandomAffine rounds them). `low` is data.crop_scale's lower bound (0.08).
The sequences, TS's translation of the full image and the heavy-tailed / exponential / beta
area rules follow the paper's code (a4facc0); the parameters' defaults are its config's:
t = 0.3, crop_size 224, rate 0.5, Beta(1, 1), inverse scale in (1, 1/0.28).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from experiments.invariance import search
from lib import files
from lib.config import ConfigError
from lib.data import autoaugment, pipeline, preprocess, sources

NO_ASPECT = (1.0, 1.0)


def _area_rule(cfg, kind: str):
    """The area-fraction sampler of the heavy-tailed crops (None: uniform over crop_scale)."""
    low = cfg.crop_scale[0]
    if kind == "sqrt_inv":
        inv = cfg.invaug.inv_scale
        return lambda rng: (1.0 / rng.uniform(*inv)) ** 2
    if kind == "exp":
        rate = cfg.invaug.exp_rate
        return lambda rng: 1.0 / float(np.clip(1.0 + rng.exponential(1.0 / rate), 1.0, 1.0 / low))
    if kind == "beta":
        a, b = cfg.invaug.beta
        return lambda rng: low + (1.0 - low) * rng.beta(a, b)
    return None


def _crop(arrays, rng, cfg, size, *, centred=False, aspect=True, area=None):
    scale, ratio = pipeline.crop_ranges(cfg)
    return preprocess.random_resized_crop(arrays, rng, size, scale,
                                          ratio if aspect else NO_ASPECT, centred=centred,
                                          area=_area_rule(cfg, area))


def _each(fn, arrays):
    return {k: fn(v) for k, v in arrays.items()}


def _resized(arrays, size):
    return _each(lambda v: preprocess.resize_shorter(v, round(size * preprocess.EVAL_RESIZE_RATIO)),
                 arrays)


def _centre(arrays, size):
    return _each(lambda v: preprocess.center_crop(v, size), _resized(arrays, size))


def _translate(arrays, rng, cfg):
    return preprocess.random_translate(arrays, rng, cfg.invaug.translate)


def _random_crop(arrays, rng, cfg, size):
    side = round(cfg.invaug.crop_size * size / 224)
    cropped = preprocess.random_crop(_resized(arrays, size), rng, side)
    return _each(lambda v: preprocess.resize(v, (size, size)), cropped)


# variant -> (arrays, rng, data_cfg, size) -> arrays
VARIANTS = {
    "None": lambda a, rng, cfg, s: _centre(a, s),
    "HC": lambda a, rng, cfg, s: preprocess.flip(_crop(a, rng, cfg, s), rng),
    "H": lambda a, rng, cfg, s: preprocess.flip(_centre(a, s), rng),
    "C": lambda a, rng, cfg, s: _crop(a, rng, cfg, s),
    "CC": lambda a, rng, cfg, s: _crop(a, rng, cfg, s, centred=True),
    "T": lambda a, rng, cfg, s: _each(lambda v: preprocess.center_crop(v, s),
                                      _translate(_resized(a, s), rng, cfg)),
    "T2": lambda a, rng, cfg, s: _translate(_centre(a, s), rng, cfg),
    "TS": lambda a, rng, cfg, s: _crop(_translate(a, rng, cfg), rng, cfg, s, centred=True),
    "TSnoAR": lambda a, rng, cfg, s: _crop(_translate(a, rng, cfg), rng, cfg, s, centred=True,
                                           aspect=False),
    "CCTSnoAR": lambda a, rng, cfg, s: _crop(_translate(_centre(a, s), rng, cfg), rng, cfg, s,
                                             centred=True, aspect=False),
    "TSnoARSQRTInv": lambda a, rng, cfg, s: _crop(_translate(_centre(a, s), rng, cfg), rng,
                                                  cfg, s, centred=True, aspect=False,
                                                  area="sqrt_inv"),
    "noCCTSnoARSQRTInv": lambda a, rng, cfg, s: _crop(_translate(a, rng, cfg), rng, cfg, s,
                                                      centred=True, aspect=False,
                                                      area="sqrt_inv"),
    "R": lambda a, rng, cfg, s: _random_crop(a, rng, cfg, s),
    "Cexp": lambda a, rng, cfg, s: _crop(a, rng, cfg, s, area="exp"),
    "Cbeta": lambda a, rng, cfg, s: _crop(a, rng, cfg, s, area="beta"),
}


def check(data_cfg) -> None:
    """A clear error for an unknown variant or parameters the variants cannot use."""
    cfg = data_cfg.invaug
    if cfg.variant not in VARIANTS:
        raise ConfigError(f"data.invaug.variant={cfg.variant!r}; valid choices: "
                          f"{', '.join(VARIANTS)}")
    low, high = cfg.inv_scale
    if not 1.0 <= low <= high:
        raise ConfigError(f"data.invaug.inv_scale={tuple(cfg.inv_scale)}: give (low, high) "
                          "with 1 <= low <= high (the crop side shrinks by 1/U(low, high))")
    pipeline.crop_ranges(data_cfg)
    if cfg.variant == "R" and cfg.crop_size > 256:
        raise ConfigError(f"data.invaug.crop_size={cfg.crop_size}: R crops from the image "
                          "resized to 256 (at image_size 224), so at most 256")


@dataclasses.dataclass(frozen=True)
class Ablation(pipeline.Augment):
    """The train transform data.invaug.variant (see the module docstring)."""

    resizes = True

    def __post_init__(self):
        check(self.data_cfg)

    def transform(self, arrays, rng):
        return VARIANTS[self.data_cfg.invaug.variant](arrays, rng, self.data_cfg, self.size)


# Per-class augmentation (invariance.md §2.6): data.augment = "experiments.invariance.augment:
# PerClass", data.invaug.per_class_* (experiments/invariance/config.py).

PROBABILITIES = ("uniform", "fixed", "weighted_boost")


def parse_candidate(name: str) -> tuple[str, int | None]:
    """(op, index) of a candidate name; ValueError for one that names no AutoAugment op at a
    magnitude index 0..9."""
    op, _, index = name.rpartition("_")
    if not op:
        op, index = name, None
    elif not index.isdigit():
        raise ValueError(f"candidate {name!r}: expected OP_INDEX (e.g. ShearX_5) or a "
                         f"magnitude-free op ({', '.join(autoaugment.MAGNITUDE_FREE)})")
    else:
        index = int(index)
    try:
        autoaugment.value(op, index)
    except ValueError as e:
        raise ValueError(f"candidate {name!r}: {e}") from e
    return op, index


def to_uint8(image: np.ndarray, max_value: float) -> np.ndarray:
    """Raw pixels of full intensity `max_value` as uint8 0..255 (unchanged for uint8 at 255)."""
    if image.dtype == np.uint8 and max_value == 255:
        return image
    scaled = np.round(np.asarray(image, np.float64) * (255.0 / max_value))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def read_search(path) -> dict:
    """{class: {candidate: statistics}} of a search.json (experiments.invariance.
    search_procedure: {"settings", "values": {"stats", …}}; a bare {"stats": …} is read too)."""
    where = f"data.invaug.per_class_search={str(path)!r}"
    how = ("run the similarity search first (python -m lib.main --config=experiments/invariance/"
           "configs/search.py …) and give its workdir's search.json")
    if not path:
        raise ConfigError(f"data.augment PerClass needs data.invaug.per_class_search: {how}")
    file = files.as_path(path)
    if not file.is_file():
        raise ConfigError(f"{where}: no such file; {how}")
    try:
        doc = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where} is not a JSON file ({e}); {how}") from e
    stats = doc.get("values", doc).get("stats") if isinstance(doc, dict) else None
    if not isinstance(stats, dict) or not stats:
        raise ConfigError(f"{where} has no per-class 'stats' (values.stats of a search.json); "
                          f"{how}")
    return stats


def per_class_ops(stats: dict, cfg, num_classes: int, where: str = "the search"
                  ) -> dict[int, tuple[tuple[str, int | None, float], ...]]:
    """{class: ((op, index, probability), …)} for every class 0..num_classes − 1: its top
    cfg.per_class_top candidates by proportion_boosted (ties: name order), kept where
    proportion_boosted ≥ cfg.per_class_min_boost (> with per_class_strict) and, with
    per_class_change_filter, avg_percent_similarity_change ≥ 0; best first."""
    if cfg.per_class_prob not in PROBABILITIES:
        raise ConfigError(f"data.invaug.per_class_prob={cfg.per_class_prob!r}; valid choices: "
                          f"{', '.join(PROBABILITIES)}")
    missing = [c for c in range(num_classes) if str(c) not in stats]
    if missing:
        raise ConfigError(f"{where} has no candidates for classes {missing[:10]}"
                          f"{' …' if len(missing) > 10 else ''} of the {num_classes}: search "
                          "every class (search.classes=()) of the training data")
    out = {}
    for c in range(num_classes):
        per = stats[str(c)]
        for name, values in per.items():
            try:
                parse_candidate(name)
            except ValueError as e:
                raise ConfigError(f"{where}, class {c}: {e}") from e
            if not {"proportion_boosted", "avg_percent_similarity_change",
                    "weighted_boost"} <= set(values):
                raise ConfigError(f"{where}, class {c}, {name}: the statistics lack "
                                  "proportion_boosted, avg_percent_similarity_change or "
                                  "weighted_boost")
        kept = []
        for name in search.rank(per, ("proportion_boosted",))[:cfg.per_class_top]:
            boost = per[name]["proportion_boosted"]
            high = boost > cfg.per_class_min_boost if cfg.per_class_strict else \
                boost >= cfg.per_class_min_boost
            if high and (not cfg.per_class_change_filter
                         or per[name]["avg_percent_similarity_change"] >= 0):
                kept.append(name)
        out[c] = tuple((*parse_candidate(name), p)
                       for name, p in zip(kept, _probabilities(kept, per, cfg)))
    return out


def _probabilities(kept: list[str], per: dict, cfg) -> list[float]:
    if not kept:
        return []
    if cfg.per_class_prob == "uniform":
        return [1.0 / len(kept)] * len(kept)
    if cfg.per_class_prob == "fixed":
        return [cfg.per_class_fixed_prob] * len(kept)
    if len(kept) == 1:
        return [0.5]
    w = np.array([per[n]["weighted_boost"] for n in kept], np.float64)
    e = np.exp(w - w.max())
    return (e / e.sum()).tolist()


def _sampled_index(op: str, index: int, rng: np.random.Generator) -> int:
    if op == "Rescale":
        zoom_in = autoaugment.RESCALE_LEVELS[index] > 1
        side = [i for i in range(index + 1)
                if i == 0 or (autoaugment.RESCALE_LEVELS[i] > 1) == zoom_in]
        return side[int(rng.integers(len(side)))]
    return int(rng.integers(index + 1))


def apply_ops(image: np.ndarray, ops, rng: np.random.Generator, sample_magnitude: bool,
              max_value: float) -> np.ndarray:
    """Each (op, index, p) of `ops` in turn with probability p (the sign of a signed op drawn
    from rng); with sample_magnitude the index is uniform in [0, index] at each use (the
    paper's code), except that Rescale draws among the levels on its own side of 1 (the
    identity at 0 included): its table zooms out at 1–5 and in at 6–9, so the code's draw
    would turn a searched zoom-in into a zoom-out 5 times in 8. The ops act on uint8 pixels
    (raw values of full intensity max_value scaled to 255 and back)."""
    pixels = None
    for op, index, p in ops:
        if rng.random() < p:
            if index is not None and sample_magnitude:
                index = _sampled_index(op, index, rng)
            if pixels is None:
                pixels = to_uint8(image, max_value)
            pixels = autoaugment.apply(pixels, op, index, rng=rng)
    if pixels is None:
        return image
    if image.dtype == np.uint8 and max_value == 255:
        return pixels
    back = pixels.astype(np.float64) * (max_value / 255.0)
    return (np.round(back) if image.dtype == np.uint8 else back).astype(image.dtype)


@dataclasses.dataclass(frozen=True)
class PerClass(pipeline.Augment):
    """The standard transform (HC: random resized crop + flip), then the ops that a similarity
    search found for the record's class (spec §2.6), each with its probability, in ranked
    order (data.blur, where set, comes between the two). Defaults follow the spec: top 25 by
    proportion_boosted, kept if ≥ 0.4, probability 1/n each; the paper's code
    (per_class_augmentation/augmentations.py, config/config.yaml) differs in keeping only
    > 0.4 (per_class_strict) with avg_percent_similarity_change ≥ 0 (per_class_change_filter);
    like it, the magnitude index is drawn uniformly in [0, searched index] at each use."""

    resizes = True

    def __post_init__(self):
        cfg = self.data_cfg.invaug
        pipeline.crop_ranges(self.data_cfg)
        if self.spatial:
            raise ConfigError(f"data.augment PerClass moves only the image; {self.data_cfg.name}"
                              f" has the spatial keys {self.spatial}")
        split = sources.source(self.data_cfg.name)(self.data_cfg, self.data_cfg.train_split)
        if not split.num_classes:
            raise ConfigError(f"data.augment PerClass needs class labels; {self.data_cfg.name} "
                              "has none")
        where = f"data.invaug.per_class_search={cfg.per_class_search!r}"
        ops = per_class_ops(read_search(cfg.per_class_search), cfg, split.num_classes, where)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "max_value", split.max_value)

    def transform(self, arrays, rng):
        return VARIANTS["HC"](arrays, rng, self.data_cfg, self.size)

    def __call__(self, record, rng):
        out = super().__call__(record, rng)
        out["image"] = apply_ops(out["image"], self.ops[int(record["label"])], rng,
                                 self.data_cfg.invaug.per_class_sample_magnitude,
                                 self.max_value)
        return out
