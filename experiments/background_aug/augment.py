"""Two views of a record with background augmentations, then the spec §6 view ops.

    data.augment = "experiments.background_aug.augment:BackgroundViews"

Per view, on the full image (background_aug.md §2): BG_RM with probability data.bgaug.rm_prob;
where it was not drawn, BG_Random with data.bgaug.random_prob, the donor a uniformly drawn
other training record. With data.bgaug.swap_prob, BG_Swaps: view 1 (the positive) gets a new
background, and the record gains `negative`, another image's foreground on view 0's background,
with its own view ops, and `has_negative` (0 where not drawn). Images whose mask covers less
than min_fg or more than max_fg skip every background op.

View ops (spec §6, data.jitter): reflect-pad + random crop of the native size, horizontal flip,
brightness ×U, contrast ×U about the image mean, per-channel gain ×U, grayscale with a
probability, clip to [0, 1]. Pixels must be in [0, 1] (data.normalization='none').
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from experiments.background_aug import background
from lib.data import pipeline, sources

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def jitter(image: np.ndarray, cfg, rng: np.random.Generator) -> np.ndarray:
    """The spec's view ops on one HWC image in [0, 1]."""
    pad = cfg.pad
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    top, left = rng.integers(0, 2 * pad + 1, size=2)
    h, w, c = image.shape
    x = padded[top:top + h, left:left + w]
    if rng.random() < 0.5:
        x = x[:, ::-1]
    x = x * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    x = x * rng.uniform(1 - cfg.gain, 1 + cfg.gain, size=c)
    if c == 3 and rng.random() < cfg.gray_prob:
        x = np.repeat((x @ LUMA)[..., None], 3, axis=-1)
    return np.clip(x, 0, 1).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class BackgroundViews(pipeline.Views):
    """Two views per record (data.views=(2,), checked by procedure.check), background ops
    before the view ops."""

    @functools.cached_property
    def _donors(self):
        return sources.open_split(self.data_cfg, "train").records

    def _donor(self, rng: np.random.Generator, index) -> dict:
        n = len(self._donors)
        j = int(rng.integers(0, n - 1)) if n > 1 else 0
        if index is not None and n > 1 and j >= int(index):
            j += 1  # uniform over the other records
        return self._donors[j]

    def _donor_background(self, donor: dict) -> np.ndarray:
        how = self.data_cfg.bgaug.donor_hole_fill
        if how == "none":
            return np.asarray(donor["background"], np.float32)
        return background.filled_background(np.asarray(donor["image"], np.float32),
                                            np.asarray(donor["fg_mask"], np.float32), how)

    def _background_op(self, image, mask, rng, index):
        cfg = self.data_cfg.bgaug
        if rng.random() < cfg.rm_prob:
            return background.bg_rm(image, mask, background.rm_fill_value(cfg.rm_fill, rng))
        if rng.random() < cfg.random_prob:
            return background.bg_random(image, mask, self._donor_background(
                self._donor(rng, index)))
        return image

    def __call__(self, record, rng):
        cfg = self.data_cfg.bgaug
        image = np.asarray(record["image"], np.float32)
        mask = np.asarray(record["fg_mask"], np.float32)
        index = record.get("index")
        usable = background.applies(mask, cfg.min_fg, cfg.max_fg)
        views = [self._background_op(image, mask, rng, index) if usable else image
                 for _ in range(2)]
        extra = {}
        if cfg.swap_prob > 0:
            swapped = usable and rng.random() < cfg.swap_prob
            negative = np.zeros_like(image)
            if swapped:
                views[1] = background.bg_random(image, mask, self._donor_background(
                    self._donor(rng, index)))
                donor = self._donor(rng, index)
                anchor_bg = (np.asarray(record["background"], np.float32)
                             if cfg.donor_hole_fill == "none" else
                             background.filled_background(image, mask, cfg.donor_hole_fill))
                negative = jitter(background.swap_negative(
                    anchor_bg, np.asarray(donor["image"], np.float32),
                    np.asarray(donor["fg_mask"], np.float32)), self.data_cfg.jitter, rng)
            extra = {"negative": negative, "has_negative": np.float32(swapped)}
        views = np.stack([jitter(v, self.data_cfg.jitter, rng) for v in views])
        rest = {k: v for k, v in record.items()
                if k not in ("image", "label", *self.spatial)}
        label = {"label": record["label"]} if "label" in record else {}
        return {**rest, **label, **extra, "views": [{"image": views}]}

