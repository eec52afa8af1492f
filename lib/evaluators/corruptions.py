"""Common image corruptions at severities 1–5, applied on the fly (class_selectivity.md §2, §7).

Images are float arrays [H, W, C] in [0, 1]; every function returns the same shape in [0, 1]
and draws its randomness from the generator it is given, so a (seed, image) pair always gives
the same corrupted image. The severity constants are those of the released corruption sets
(CIFAR-10-C by default; `table="imagenet"` switches the noise σ to ImageNet-C's 0.08–0.38); for
paper-faithful numbers read the released arrays (TFDS `cifar10_corrupted`) instead, since the
exact pipelines (e.g. the colour spaces of brightness and saturation) differ in detail.
Colour operations act on RGB; on grayscale images `saturate` is the identity.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

SEVERITIES = (1, 2, 3, 4, 5)
CONSTANTS = {
    "cifar10": {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot_noise": (500, 250, 100, 75, 50),
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
        "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
        "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
        "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
        "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
        "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
        "jpeg_compression": (80, 65, 58, 50, 40),
    },
}
CONSTANTS["imagenet"] = {**CONSTANTS["cifar10"],
                         "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38)}
FAMILIES = {"noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
            "blur": ("gaussian_blur", "defocus_blur"),
            "weather": ("brightness",),
            "digital": ("contrast", "saturate", "pixelate", "jpeg_compression")}
NAMES = tuple(n for names in FAMILIES.values() for n in names)


def _per_channel(image: np.ndarray, fn) -> np.ndarray:
    return np.stack([fn(image[..., c]) for c in range(image.shape[-1])], axis=-1)


def _disk(radius: float, alias_sigma: float) -> np.ndarray:
    """A normalised disk kernel of the given radius, smoothed by a Gaussian."""
    size = max(3, int(np.ceil(radius)) * 2 + 3)
    grid = np.arange(size) - size // 2
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    kernel = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    kernel = ndimage.gaussian_filter(kernel / kernel.sum(), alias_sigma)
    return kernel / kernel.sum()


def _to_uint8(image: np.ndarray) -> Image.Image:
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def _from_pil(pil: Image.Image, channels: int) -> np.ndarray:
    out = np.asarray(pil, np.float32) / 255.0
    return out[..., None] if channels == 1 and out.ndim == 2 else out


def _apply(name: str, x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    if name == "gaussian_noise":
        return x + rng.normal(0.0, c, x.shape)
    if name == "shot_noise":
        return rng.poisson(x * c) / c
    if name == "impulse_noise":  # salt and pepper on a share c of the values
        out = x.copy()
        hit = rng.random(x.shape) < c
        out[hit] = rng.random(int(hit.sum())) < 0.5
        return out
    if name == "speckle_noise":
        return x + x * rng.normal(0.0, c, x.shape)
    if name == "gaussian_blur":
        return _per_channel(x, lambda ch: ndimage.gaussian_filter(ch, c, mode="nearest"))
    if name == "defocus_blur":
        kernel = _disk(*c)
        return _per_channel(x, lambda ch: ndimage.convolve(ch, kernel, mode="nearest"))
    if name == "contrast":
        mean = x.mean()
        return (x - mean) * c + mean
    if name == "brightness":  # HSV value + c, i.e. every channel raised towards the maximum
        value = x.max(-1, keepdims=True)
        new = np.clip(value + c, 0, 1)
        return x * np.where(value > 0, new / np.where(value > 0, value, 1), 0) + np.where(
            value > 0, 0, new)
    if name == "saturate":  # HSV saturation · c[0] + c[1]
        if x.shape[-1] == 1:
            return x
        value = x.max(-1, keepdims=True)
        low = x.min(-1, keepdims=True)
        sat = np.where(value > 0, (value - low) / np.where(value > 0, value, 1), 0)
        new_sat = np.clip(sat * c[0] + c[1], 0, 1)
        # move each channel towards or away from the value keeping hue: x' = v − (v − x)·s'/s
        scale = np.where(sat > 0, new_sat / np.where(sat > 0, sat, 1), 0)
        return value - (value - x) * scale
    if name == "pixelate":
        h, w, ch = x.shape
        small = (max(1, int(w * c)), max(1, int(h * c)))
        pil = _to_uint8(x).resize(small, Image.Resampling.BOX).resize((w, h),
                                                                      Image.Resampling.BOX)
        return _from_pil(pil, ch)
    if name == "jpeg_compression":
        buffer = io.BytesIO()
        _to_uint8(x).save(buffer, "JPEG", quality=int(c))
        return _from_pil(Image.open(io.BytesIO(buffer.getvalue())), x.shape[-1])
    raise AssertionError(name)


def corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.Generator,
            table: str = "cifar10") -> np.ndarray:
    """`image` ([H, W, C] in [0, 1]) with corruption `name` at `severity` (1–5)."""
    if name not in NAMES:
        raise ValueError(f"unknown corruption {name!r}; valid choices: {', '.join(NAMES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"corruption severity {severity!r} must be one of 1, 2, 3, 4, 5")
    if table not in CONSTANTS:
        raise ValueError(f"unknown corruption constants {table!r}; valid: {', '.join(CONSTANTS)}")
    x = np.asarray(image, np.float64)
    out = _apply(name, x, CONSTANTS[table][name][severity - 1], rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def corrupt_batch(images: np.ndarray, name: str, severity: int, seed, table: str = "cifar10"
                  ) -> np.ndarray:
    """Every image of [B, H, W, C] corrupted, image i drawing from default_rng([*seed, i])
    (seed: an int or a sequence of ints)."""
    seed = list(np.atleast_1d(seed))
    return np.stack([corrupt(im, name, severity, np.random.default_rng([*seed, i]), table)
                     for i, im in enumerate(np.asarray(images))])
