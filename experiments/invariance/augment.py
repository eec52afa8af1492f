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

import numpy as np

from lib.config import ConfigError
from lib.data import pipeline, preprocess

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


@dataclasses.dataclass(frozen=True)
class Ablation(pipeline.Augment):
    """The train transform data.invaug.variant (see the module docstring)."""

    resizes = True

    def __post_init__(self):
        check(self.data_cfg)

    def transform(self, arrays, rng):
        return VARIANTS[self.data_cfg.invaug.variant](arrays, rng, self.data_cfg, self.size)
