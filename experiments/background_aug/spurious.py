"""The spurious-background set of background_aug.md §6: Fashion-MNIST items on striped
backgrounds whose type follows the label, with exact foreground masks.

    data.name = "experiments.background_aug.spurious:source"

Foregrounds: Fashion-MNIST items (train 0–4095, test 0–1999), 2×2 mean-pooled to 14×14 and
placed at a uniform random offset on a 28×28×3 canvas; mask m = item > 0.15; foreground pixels
are the item's intensity in all three channels. Background type t ∈ 0..9: stripes at angle
tπ/10, 0.18 + 0.08·(t mod 3) cycles/px, random phase, colour 0.5 + 0.5·cos(2π(t/10 + k/3)),
plus N(0, 0.03²) noise. Each record carries its clean `background` (BG_Random needs no hole
filling here) and `bg_type`.

Splits (the ImageNet-9 variants): `train` (type = label with probability 0.9, else uniform),
`train_random_bg` (the same items and offsets on uniformly random types: the fg-probe's
training set), and of the test items `original` (0.9 correlation, like train), `mixed_same`
(type = label, a fresh instance), `mixed_rand` (uniform type), `only_bg` (type = label, no
foreground) and `only_fg` (black background). Pixels are float32 in [0, 1].
"""

from __future__ import annotations

import functools

import numpy as np

from lib.config import ConfigError
from lib.data import fashion_mnist
from lib.data.records import ArrayRecords, Split

TRAIN_ITEMS, TEST_ITEMS = 4096, 2000
SIDE, ITEM_SIDE, TYPES = 28, 14, 10
MASK_THRESHOLD = 0.15
CORRELATION = 0.9
NOISE_STD = 0.03
SPLITS = ("train", "train_random_bg", "original", "mixed_same", "mixed_rand", "only_bg",
          "only_fg")
_SEEDS = {name: i for i, name in enumerate(SPLITS)}  # one stream per split, fixed


def stripe_colour(t: int) -> np.ndarray:
    return 0.5 + 0.5 * np.cos(2 * np.pi * (t / TYPES + np.arange(3) / 3))


def backgrounds(types: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[n, 28, 28, 3] striped backgrounds of the given types, each with its own phase and
    noise."""
    rows, cols = np.mgrid[:SIDE, :SIDE].astype(np.float64)
    theta = types * np.pi / TYPES
    freq = 0.18 + 0.08 * (types % 3)
    phase = rng.uniform(0, 2 * np.pi, size=len(types))
    along = (cols[None] * np.cos(theta)[:, None, None] + rows[None] * np.sin(theta)[:, None, None])
    wave = 0.3 + 0.25 * np.sin(2 * np.pi * freq[:, None, None] * along + phase[:, None, None])
    colour = np.stack([stripe_colour(int(t)) for t in types])  # [n, 3]
    bg = wave[..., None] * (0.4 + 0.6 * colour[:, None, None, :])
    bg = bg + rng.normal(0, NOISE_STD, size=bg.shape)
    return np.clip(bg, 0, 1).astype(np.float32)


def place(items: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(foreground [n, 28, 28, 1], mask [n, 28, 28, 1]) of 14×14 items at random offsets."""
    n = len(items)
    fg = np.zeros((n, SIDE, SIDE, 1), np.float32)
    offsets = rng.integers(0, SIDE - ITEM_SIDE + 1, size=(n, 2))
    for i, (r, c) in enumerate(offsets):
        fg[i, r:r + ITEM_SIDE, c:c + ITEM_SIDE, 0] = items[i]
    return fg, (fg > MASK_THRESHOLD).astype(np.float32)


def _items(which: str) -> tuple[np.ndarray, np.ndarray]:
    """14×14 items in [0, 1] and their labels: the first 4,096 train or 2,000 test items."""
    return fashion_mnist.pooled_items(which, TRAIN_ITEMS if which == "train" else TEST_ITEMS)


def _types(labels, rule: str, rng) -> np.ndarray:
    if rule == "label":
        return labels.copy()
    uniform = rng.integers(0, TYPES, size=len(labels))
    if rule == "uniform":
        return uniform
    return np.where(rng.random(len(labels)) < CORRELATION, labels, uniform)  # correlated


@functools.lru_cache(maxsize=len(SPLITS))
def build(split: str) -> ArrayRecords:
    """The records of one split (deterministic: the same arrays in every process)."""
    if split not in SPLITS:
        raise ConfigError(f"the spurious-background set has splits {', '.join(SPLITS)}, "
                          f"not {split!r}")
    train = split.startswith("train")
    items, labels = _items("train" if train else "test")
    # The items' placement comes from the set's own stream, so 'train' and 'train_random_bg'
    # (and all test variants) share offsets and masks; only the backgrounds differ.
    fg, mask = place(items, np.random.default_rng(100 if train else 200))
    rng = np.random.default_rng(_SEEDS[split])
    rule = {"train": "correlated", "train_random_bg": "uniform", "original": "correlated",
            "mixed_same": "label", "mixed_rand": "uniform", "only_bg": "label",
            "only_fg": "label"}[split]
    types = _types(labels, rule, rng)
    bg = backgrounds(types, rng)
    if split == "only_fg":
        bg = np.zeros_like(bg)
    if split == "only_bg":
        images, mask = bg, np.zeros_like(mask)
    else:
        images = mask * fg + (1 - mask) * bg
    return ArrayRecords(images.astype(np.float32), labels, fg_mask=mask, background=bg,
                        bg_type=types.astype(np.int32), index=np.arange(len(labels)))


def source(data_cfg, split: str) -> Split:
    """data.name = "experiments.background_aug.spurious:source"; data.eval_split names the
    test variant (original, mixed_same, mixed_rand, only_bg, only_fg)."""
    del data_cfg
    return Split("", build(split), (SIDE, SIDE, 3), 10, 1.0,
                 f"spurious-background set (background_aug.md §6), {split}",
                 spatial=("fg_mask", "background"))
