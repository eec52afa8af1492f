"""The small-scale data of invariance.md §6: Fashion-MNIST items, 2×2 mean-pooled to 14×14 in
[0, 1], pasted on a 28×28 zero canvas, centred (offset (7, 7)) or at a uniform integer offset in
[0, 14]².

    data.name = "experiments.invariance.shifted:source"

Splits:
- train_centred: the first 10,000 training items, centred;
- train_data: the same items, each at an offset drawn once and kept (variation in the data);
- test_centred: the first 1,000 test items, centred (the invariance measurement);
- test_random: the 10,000 test items at offsets drawn once (top-1 at random positions);
- train_scaled / test_scaled (the spec's Section-2 analogue): the first 3,000 training / the
  10,000 test items (from 28 × 28) resized to a side drawn once in 14..20 px, at a uniform
  position where they fit.

`CanvasJitter` (data.augment = "experiments.invariance.shifted:CanvasJitter") is that
analogue's train augmentation, data.invaug.variant None | T | S | TS: T moves the canvas by
whole pixels uniform in ±data.invaug.canvas_shift (zero fill); S rescales it about its centre
by U(data.invaug.canvas_scale) (bilinear; cropped, or zero-padded, back to 28 × 28); TS is S
then T.

`RandomPosition` (data.augment = "experiments.invariance.shifted:RandomPosition") moves a
centred item to a fresh uniform offset every time the record is drawn (translation
augmentation). Pixels are float32 in [0, 1] (data.normalization='none').
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from lib.config import ConfigError
from lib.data import fashion_mnist, pipeline, preprocess
from lib.data.records import ArrayRecords, Split

SIDE, ITEM, CENTRE = 28, 14, 7
MAX_OFFSET = SIDE - ITEM  # 14: offsets are uniform in 0..14
TRAIN_ITEMS, MEASURE_ITEMS, TEST_ITEMS = 10_000, 1_000, 10_000
SCALED_ITEMS, SCALED_SIDES = 3_000, (14, 20)
SPLITS = ("train_centred", "train_data", "test_centred", "test_random", "train_scaled",
          "test_scaled")
_SEEDS = {"train_data": 1, "test_random": 2, "train_scaled": 3, "test_scaled": 4}  # fixed draws
CANVAS_VARIANTS = ("None", "T", "S", "TS")


def place(items: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """[n, 28, 28, 1] canvases with item i at (row, column) offsets[i]."""
    out = np.zeros((len(items), SIDE, SIDE, 1), np.float32)
    for canvas, item, (r, c) in zip(out, items, offsets):
        canvas[r:r + ITEM, c:c + ITEM, 0] = item
    return out


@functools.lru_cache(maxsize=len(SPLITS))
def build(split: str) -> ArrayRecords:
    """The records of one split (deterministic: the same arrays in every process)."""
    if split not in SPLITS:
        raise ConfigError(f"the shifted-items set has splits {', '.join(SPLITS)}, not "
                          f"{split!r}")
    if split.endswith("_scaled"):
        return _scaled(split)
    count = {"train_centred": TRAIN_ITEMS, "train_data": TRAIN_ITEMS,
             "test_centred": MEASURE_ITEMS, "test_random": TEST_ITEMS}[split]
    items, labels = fashion_mnist.pooled_items(split.partition("_")[0], count)
    if split in _SEEDS:
        offsets = np.random.default_rng(_SEEDS[split]).integers(0, MAX_OFFSET + 1, (count, 2))
    else:
        offsets = np.full((count, 2), CENTRE)
    return ArrayRecords(place(items, offsets), labels)


def _scaled(split: str) -> ArrayRecords:
    """Items from 28 × 28 resized to a side in SCALED_SIDES, at a uniform position."""
    which = split.partition("_")[0]
    count = SCALED_ITEMS if which == "train" else TEST_ITEMS
    items, labels = fashion_mnist.pooled_items(which, count, factor=1)
    rng = np.random.default_rng(_SEEDS[split])
    out = np.zeros((count, SIDE, SIDE, 1), np.float32)
    for canvas, item in zip(out, items):
        side = int(rng.integers(SCALED_SIDES[0], SCALED_SIDES[1] + 1))
        r, c = rng.integers(0, SIDE - side + 1, size=2)
        canvas[r:r + side, c:c + side] = preprocess.resize(item[..., None], (side, side))
    return ArrayRecords(np.clip(out, 0, 1), labels)


def source(data_cfg, split: str) -> Split:
    del data_cfg
    return Split("", build(split), (SIDE, SIDE, 1), 10, 1.0,
                 f"shifted Fashion-MNIST items (invariance.md §6), {split}")


class RandomPosition(pipeline.Augment):
    """The centred 14×14 item moved to a uniform offset in [0, 14]², drawn per record."""

    def transform(self, arrays, rng):
        image = arrays["image"]
        if image.shape[:2] != (SIDE, SIDE):
            raise ValueError(f"RandomPosition moves the item of a {SIDE}×{SIDE} canvas; got "
                             f"an image of {image.shape[:2]} (data.pool must be 1)")
        item = image[CENTRE:CENTRE + ITEM, CENTRE:CENTRE + ITEM]
        out = np.zeros_like(image)
        r, c = rng.integers(0, MAX_OFFSET + 1, size=2)
        out[r:r + ITEM, c:c + ITEM] = item
        return {**arrays, "image": out}


@dataclasses.dataclass(frozen=True)
class CanvasJitter(pipeline.Augment):
    """The Section-2 analogue's augmentation of the whole canvas (module docstring)."""

    def __post_init__(self):
        if self.data_cfg.invaug.variant not in CANVAS_VARIANTS:
            raise ConfigError(f"data.invaug.variant={self.data_cfg.invaug.variant!r}: "
                              f"CanvasJitter knows {', '.join(CANVAS_VARIANTS)}")

    def transform(self, arrays, rng):
        variant, cfg = self.data_cfg.invaug.variant, self.data_cfg.invaug
        image = arrays["image"]
        if "S" in variant:
            image = rescale(image, rng.uniform(*cfg.canvas_scale))
        if "T" in variant:
            dx, dy = rng.integers(-cfg.canvas_shift, cfg.canvas_shift + 1, size=2)
            image = preprocess.shift(image, int(dx), int(dy))
        return {**arrays, "image": image}


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """The HWC canvas scaled by `factor` about its centre, back at its own size (the middle of
    a larger one; a smaller one zero-padded around)."""
    h, w = image.shape[:2]
    side = max(1, round(h * factor))
    scaled = preprocess.resize(image, (side, side))
    if side >= h:
        return preprocess.center_crop(scaled, h)
    out = np.zeros_like(image)
    top, left = (h - side) // 2, (w - side) // 2
    out[top:top + side, left:left + side] = scaled
    return out
