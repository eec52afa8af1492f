"""Views of a record with background augmentations: the background op on the full image, per
view, before the view's own augmentation (background_aug.md §2).

    data.augment = "experiments.background_aug.augment:BackgroundViews"   (small scale, §6)
    data.augment = "experiments.background_aug.augment:BackgroundCrops"   (paper scale)

Per view: BG_RM with probability data.bgaug.rm_prob; where it was not drawn, BG_Random with
data.bgaug.random_prob, the donor a uniformly drawn other training record. With
data.bgaug.swap_prob, BG_Swaps: view 1 (the positive) gets a new background, and the record
gains `negative`, another image's foreground on view 0's background, with its own view ops,
and `has_negative` (0 where not drawn). Images whose mask covers less than min_fg or more than
max_fg skip every background op.

BackgroundViews: two views of the native size, then the spec §6 view ops (data.jitter):
reflect-pad + random crop, horizontal flip, brightness ×U, contrast ×U about the image mean,
per-channel gain ×U, grayscale with a probability, clip to [0, 1]. Pixels in [0, 1]
(data.normalization='none').

BackgroundCrops: every view of every group of data.views (SwAV's 2 × 224 + 6 × 96 too) is its
own crop source: background op, then that group's random resized crop and flip
(lib.data.pipeline.Views); the colour ops run on device (ssl.color). The negative is cropped at
the first group's size. uint8 images stay uint8 (BG_RM's fill is scaled to 255).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from experiments.background_aug import background
from lib.data import pipeline, preprocess, sources

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
    before the view ops; views keep the native size (no resampling)."""

    resizes = False

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

    def _background_op(self, image, mask, rng, index, white: float = 1.0):
        cfg = self.data_cfg.bgaug
        if rng.random() < cfg.rm_prob:
            return background.bg_rm(image, mask,
                                    white * background.rm_fill_value(cfg.rm_fill, rng))
        if rng.random() < cfg.random_prob:
            return background.bg_random(image, mask, self._donor_background(
                self._donor(rng, index)))
        return image

    def _new_background(self, image, mask, rng, index):
        """BG_Swaps' positive: the image's foreground on a donor's background."""
        return background.bg_random(image, mask, self._donor_background(self._donor(rng, index)))

    def _negative(self, record, image, mask, rng, index):
        """BG_Swaps' hard negative: a donor's foreground on the image's own background."""
        how = self.data_cfg.bgaug.donor_hole_fill
        donor = self._donor(rng, index)
        anchor_bg = (np.asarray(record["background"], np.float32) if how == "none" else
                     background.filled_background(image, mask, how))
        return background.swap_negative(anchor_bg, np.asarray(donor["image"], np.float32),
                                        np.asarray(donor["fg_mask"], np.float32))

    def _swapped(self, usable: bool, rng) -> bool:
        p = self.data_cfg.bgaug.swap_prob
        return p > 0 and usable and rng.random() < p

    def _rest(self, record, extra, groups) -> dict:
        rest = {k: v for k, v in record.items()
                if k not in ("image", "label", *self.spatial)}
        label = {"label": record["label"]} if "label" in record else {}
        return {**rest, **label, **extra, "views": groups}

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
            swapped = self._swapped(usable, rng)
            negative = np.zeros_like(image)
            if swapped:
                views[1] = self._new_background(image, mask, rng, index)
                negative = jitter(self._negative(record, image, mask, rng, index),
                                  self.data_cfg.jitter, rng)
            extra = {"negative": negative, "has_negative": np.float32(swapped)}
        views = np.stack([jitter(v, self.data_cfg.jitter, rng) for v in views])
        return self._rest(record, extra, [{"image": views}])


@dataclasses.dataclass(frozen=True)
class BackgroundCrops(BackgroundViews):
    """Paper scale: a background op per crop source, then its group's random resized crop
    and flip; any view groups (multi-crop)."""

    resizes = True

    def __call__(self, record, rng):
        cfg = self.data_cfg.bgaug
        raw = np.asarray(record["image"])
        white = 255.0 if raw.dtype == np.uint8 else 1.0
        image = raw.astype(np.float32)
        mask = np.asarray(record["fg_mask"], np.float32)
        index = record.get("index")
        usable = background.applies(mask, cfg.min_fg, cfg.max_fg)
        swapped = self._swapped(usable, rng)
        groups = pipeline.view_groups(self.data_cfg)
        out = []
        for g, (count, side, low, high) in enumerate(groups):
            crops = []
            for v in range(count):
                if swapped and (g, v) == (0, 1):
                    source = self._new_background(image, mask, rng, index)
                elif usable:
                    source = self._background_op(image, mask, rng, index, white)
                else:
                    source = image
                crops.append(_crop(_like(source, raw), side, low, high, rng))
            out.append({"image": np.stack(crops)})
        extra = {}
        if cfg.swap_prob > 0:
            _, side, low, high = groups[0]
            negative = (self._negative(record, image, mask, rng, index) if swapped else image)
            extra = {"negative": _crop(_like(negative, raw), side, low, high, rng),
                     "has_negative": np.float32(swapped)}
        return self._rest(record, extra, out)


def _like(image: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """A float composite back in the record's dtype (uint8: rounded, so crops resize fast)."""
    if raw.dtype == np.uint8:
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image.astype(raw.dtype)


def _crop(image: np.ndarray, side: int, low: float, high: float, rng) -> np.ndarray:
    """One random resized crop of `side` (area fraction in [low, high]), flipped at random."""
    arrays = preprocess.random_resized_crop({"image": image}, rng, side, (low, high))
    return preprocess.flip(arrays, rng)["image"]

