"""Background augmentations over (image, foreground mask), background_aug.md §2.

Pure numpy on one record's arrays in [0, 1] pixels, HWC; the mask is [H, W, 1] with 1 =
foreground. They act on the full image, before any crop (the crop and jitter then act on the
composite), and are drawn independently for each view by `augment.BackgroundViews`.

    bg_rm(x, m, fill)              m⊙x + (1−m)·c
    bg_random(x, m, donor_bg)      m⊙x + (1−m)⊙b
    swap_negative(bg, x_j, m_j)    m_j⊙x_j + (1−m_j)⊙bg: another image's foreground on the
                                   anchor's background (BG_Swaps' hard negative)
    filled_background(x, m, how)   x's background with its foreground hole filled (tile, mean)
"""

from __future__ import annotations

import numpy as np

from lib.data import preprocess

RM_FILLS = ("black", "grey", "random_grey")
HOLE_FILLS = ("tile", "mean", "none")


def foreground_fraction(mask: np.ndarray) -> float:
    return float(np.mean(mask))


def applies(mask: np.ndarray, min_fg: float, max_fg: float) -> bool:
    """The guard for unusable masks: background ops skip an image whose foreground covers
    less than min_fg or more than max_fg of its area (empty or near-full saliency)."""
    return min_fg <= foreground_fraction(mask) <= max_fg


def rm_fill_value(fill: str, rng: np.random.Generator) -> float:
    if fill == "black":
        return 0.0
    if fill == "grey":
        return 0.5
    if fill == "random_grey":
        return float(rng.uniform(0, 1))
    raise ValueError(f"unknown rm_fill {fill!r}; valid choices: {', '.join(RM_FILLS)}")


def composite(foreground: np.ndarray, mask: np.ndarray, background) -> np.ndarray:
    """mask⊙foreground + (1 − mask)⊙background; exactly the foreground where mask = 1."""
    return np.where(mask > 0.5, foreground, background).astype(np.float32)


def bg_rm(image: np.ndarray, mask: np.ndarray, fill: float) -> np.ndarray:
    return composite(image, mask, np.float32(fill))


def bg_random(image: np.ndarray, mask: np.ndarray, donor_background: np.ndarray) -> np.ndarray:
    if donor_background.shape != image.shape:
        donor_background = resize(donor_background, image.shape[:2])
    return composite(image, mask, donor_background)


def swap_negative(anchor_background: np.ndarray, donor_image: np.ndarray,
                  donor_mask: np.ndarray) -> np.ndarray:
    if donor_image.shape != anchor_background.shape:
        donor_image = resize(donor_image, anchor_background.shape[:2])
        donor_mask = (resize(donor_mask, anchor_background.shape[:2]) > 0.5).astype(np.float32)
    return composite(donor_image, donor_mask, anchor_background)


def filled_background(image: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """The image's background with the foreground hole filled, to serve as a donor.

    tile: the widest band of rows or columns outside the foreground's bounding box, repeated
    over the image (ImageNet-9's Only-BG-T idea; where no such band exists, the mean); mean:
    the mean background colour.
    """
    if how not in ("tile", "mean"):
        raise ValueError(f"filled_background: how={how!r}; use tile or mean (none needs the "
                         "clean background stored with the record)")
    background = mask[..., 0] < 0.5
    if not background.any():
        return np.zeros_like(image)
    mean = image[background].mean(axis=0)
    if how == "mean":
        return composite(np.broadcast_to(mean, image.shape), mask, image)
    tiled = _tiled_band(image, mask[..., 0] > 0.5)
    fill = np.broadcast_to(mean, image.shape) if tiled is None else tiled
    return composite(fill, mask, image)


def _tiled_band(image: np.ndarray, fg: np.ndarray):
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    h, w = fg.shape
    if not len(rows):
        return image
    bands = [  # (size, band) above, below, left and right of the bounding box
        (rows[0], image[:rows[0]]), (h - rows[-1] - 1, image[rows[-1] + 1:]),
        (cols[0], image[:, :cols[0]]), (w - cols[-1] - 1, image[:, cols[-1] + 1:])]
    size, band = max(bands, key=lambda b: b[0])
    if size == 0:
        return None
    reps = (-(-h // band.shape[0]), -(-w // band.shape[1]), 1)
    return np.tile(band, reps)[:h, :w]


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A donor resized to the target's (h, w), bilinear, float32."""
    return preprocess.resize(np.asarray(image, np.float32), size)
