"""The perturbation registry (invariance.md §2.3): 13 transformations at 10 magnitudes each, on
batches of images, jit-able, for invariance measurements.

    perturb(x, kind, k, space="pixel") -> x'     x: [N, H, W, C] float

Magnitude index k = 0 … 9 picks the value from MAGNITUDES (k = 0 is the identity, except
solarize at threshold 1.0, which inverts pixels that are exactly 1, as torchvision does).

Geometric (bilinear, fill 0, about the image centre): translateX / translateY by
linspace(0, 1, 10) of the width / height (the spec's linspace(0, 224, 10) px on 224 images);
rotate (degrees, counter-clockwise as displayed); shearX / shearY (degrees: x' = x + tan φ ·
(y − centre) for shearX); zoom_out / zoom_in (scale; < 1 shrinks the content).
Appearance, with torchvision's float semantics: posterize (bits, on the image rounded to
uint8), brightness_decrease / brightness_increase (x · f, clipped to [0, 1]), contrast_decrease
/ contrast_increase (f · x + (1 − f) · mean luma, clipped), solarize (1 − x where x ≥ t).

space 'pixel' (default): x in [0, 1] before normalisation. 'normalized' reproduces the code's
quirk: x is already normalised, so fill 0 is the mean colour, brightness / contrast / solarize
act on (and clip) normalised values, and posterize first multiplies by 100 and casts to uint8
(truncation, then wrapping modulo 256 as PyTorch's cast does on x86), dividing by 100 after.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

MAGNITUDES = {
    "translateX": tuple(np.linspace(0, 1, 10)),
    "translateY": tuple(np.linspace(0, 1, 10)),
    "rotate": (0, -27, 45, -54, -81, 90, -108, -135, 135, 180),
    "shearX": (0, -17.8, 22.75, -35.6, 45.5, -53.4, 68.25, -71.2, -89, 91),
    "shearY": (0, -17.8, 22.75, -35.6, 45.5, -53.4, 68.25, -71.2, -89, 91),
    "zoom_out": tuple(np.linspace(1.0, 0.28, 10)),
    "zoom_in": tuple(np.linspace(1.0, 3.5, 10)),
    "posterize": (8, 7, 6, 5, 4, 4, 3, 2, 1, 0),
    "brightness_decrease": tuple(np.linspace(1, 0, 10)),
    "brightness_increase": tuple(np.linspace(1, 2, 10)),
    "contrast_decrease": tuple(np.linspace(1, 0, 10)),
    "contrast_increase": tuple(np.linspace(1, 2, 10)),
    "solarize": tuple(np.linspace(1.0, 0, 10)),
}
KINDS = tuple(MAGNITUDES)
GEOMETRIC = ("shearX", "shearY", "translateX", "translateY", "rotate", "zoom_in", "zoom_out")
SPACES = ("pixel", "normalized")
LUMA = (0.299, 0.587, 0.114)


def check(kind: str, k: int, space: str = "pixel") -> None:
    """A clear error for an unknown kind or space, or a magnitude index outside 0–9."""
    if kind not in MAGNITUDES:
        raise ValueError(f"unknown transformation {kind!r}; valid choices: {', '.join(KINDS)}")
    if not (isinstance(k, (int, np.integer)) and 0 <= k <= 9):
        raise ValueError(f"magnitude index {k!r} for {kind}: it must be an integer in 0–9")
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}; valid choices: {', '.join(SPACES)}")


def magnitude(kind: str, k: int) -> float:
    check(kind, k)
    return float(MAGNITUDES[kind][k])


def _affine(x: jax.Array, matrix: np.ndarray, shift: tuple[float, float]) -> jax.Array:
    """out(p) = in(M⁻¹ (p − c − shift) + c) for p = (column, row), c the centre; bilinear,
    fill 0."""
    n, h, w, c = x.shape
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    inverse = np.linalg.inv(np.asarray(matrix, np.float64))
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out_points = np.stack([cols.ravel(), rows.ravel()]) - (centre + np.asarray(shift))[:, None]
    src = inverse @ out_points + centre[:, None]
    coords = jnp.asarray(np.stack([src[1], src[0]]), x.dtype)  # (row, column)

    def one(channel):  # [H, W]
        return jax.scipy.ndimage.map_coordinates(channel, list(coords), order=1,
                                                 mode="constant", cval=0.0).reshape(h, w)

    flat = jnp.moveaxis(x, -1, 1).reshape(n * c, h, w)
    return jnp.moveaxis(jax.vmap(one)(flat).reshape(n, c, h, w), 1, -1)


def _geometric(x: jax.Array, kind: str, m: float) -> jax.Array:
    h, w = x.shape[1:3]
    if kind == "translateX":
        return _affine(x, np.eye(2), (m * w, 0.0))
    if kind == "translateY":
        return _affine(x, np.eye(2), (0.0, m * h))
    if kind == "rotate":  # counter-clockwise as displayed (rows grow downwards)
        t = math.radians(m)
        return _affine(x, np.array([[math.cos(t), math.sin(t)],
                                    [-math.sin(t), math.cos(t)]]), (0.0, 0.0))
    if kind == "shearX":
        return _affine(x, np.array([[1.0, math.tan(math.radians(m))], [0.0, 1.0]]), (0.0, 0.0))
    if kind == "shearY":
        return _affine(x, np.array([[1.0, 0.0], [math.tan(math.radians(m)), 1.0]]), (0.0, 0.0))
    return _affine(x, np.eye(2) * m, (0.0, 0.0))  # zoom_in / zoom_out


def _luma_mean(x: jax.Array) -> jax.Array:
    gray = x[..., 0] if x.shape[-1] == 1 else jnp.tensordot(x, jnp.asarray(LUMA, x.dtype), 1)
    return jnp.mean(gray, axis=(1, 2))[:, None, None, None]


def _posterize(x: jax.Array, bits: int, space: str) -> jax.Array:
    if space == "pixel":
        values, scale = jnp.clip(jnp.round(x * 255), 0, 255), 255.0
    else:  # the code's cast of normalised values ×100 to uint8
        values, scale = jnp.mod(jnp.trunc(x * 100), 256), 100.0
    mask = (0xFF << (8 - bits)) & 0xFF
    return jnp.bitwise_and(values.astype(jnp.uint8), jnp.uint8(mask)).astype(x.dtype) / scale


def perturb(x: jax.Array, kind: str, k: int, space: str = "pixel") -> jax.Array:
    """x transformed by `kind` at magnitude index k (see the module docstring)."""
    check(kind, k, space)
    x = jnp.asarray(x)
    m = MAGNITUDES[kind][k]
    if kind in GEOMETRIC:
        return _geometric(x, kind, float(m))
    if kind == "posterize":
        return _posterize(x, int(m), space)
    if kind.startswith("brightness"):
        return jnp.clip(x * m, 0.0, 1.0)
    if kind.startswith("contrast"):
        return jnp.clip(m * x + (1 - m) * _luma_mean(x), 0.0, 1.0)
    return jnp.where(x >= m, 1.0 - x, x)  # solarize
