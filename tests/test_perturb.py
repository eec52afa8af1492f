"""The perturbation registry (lib/perturb.py) against PIL and numpy references: exact rotations
by 90° and 180°, bilinear shifts, shears and zooms of a linear ramp (exact for bilinear), and
posterize / solarize / brightness / contrast against PIL, each at two magnitudes."""

import jax
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from lib import perturb

RNG = np.random.default_rng(0)
SIDE = 16


def _images(n=3, c=3):
    return RNG.uniform(0.0, 0.99, size=(n, SIDE, SIDE, c)).astype(np.float32)


def _ramp():
    """[1, 16, 16, 1]: value = column / 16 (linear, so bilinear sampling is exact)."""
    cols = np.tile(np.arange(SIDE, dtype=np.float32), (SIDE, 1)) / SIDE
    return cols[None, :, :, None]


@pytest.mark.parametrize("kind", perturb.KINDS)
def test_magnitude_zero_is_the_identity(kind):
    x = _images()
    np.testing.assert_allclose(perturb.perturb(x, kind, 0), x, atol=1e-6 if kind != "posterize"
                               else 0.5 / 255)


def test_rotations_by_90_and_180_degrees_equal_numpy():
    x = _images(2, 1)
    np.testing.assert_allclose(perturb.perturb(x, "rotate", 5), np.rot90(x, 1, axes=(1, 2)),
                               atol=1e-5)  # +90°: counter-clockwise as displayed
    np.testing.assert_allclose(perturb.perturb(x, "rotate", 9), np.rot90(x, 2, axes=(1, 2)),
                               atol=1e-5)


@pytest.mark.parametrize("k", [1, 4])
def test_translate_x_moves_a_ramp_by_its_fraction_of_the_width(k):
    shift = perturb.magnitude("translateX", k) * SIDE  # 1.78 and 7.11 px: between pixels
    out = np.asarray(perturb.perturb(_ramp(), "translateX", k))[0, :, :, 0]
    cols = np.arange(SIDE)
    inside = cols >= np.ceil(shift)
    np.testing.assert_allclose(out[:, inside], np.tile((cols[inside] - shift) / SIDE,
                                                       (SIDE, 1)), atol=1e-5)
    np.testing.assert_array_equal(out[:, cols < np.floor(shift)], 0)  # filled with 0
    ty = np.asarray(perturb.perturb(np.swapaxes(_ramp(), 1, 2), "translateY", k))
    np.testing.assert_allclose(np.swapaxes(ty, 1, 2)[0, :, :, 0], out, atol=1e-6)


@pytest.mark.parametrize("kind, k", [("shearX", 1), ("shearX", 2), ("zoom_in", 3),
                                     ("zoom_in", 9), ("zoom_out", 2)])
def test_shears_and_zooms_of_a_ramp_by_hand(kind, k):
    m = perturb.magnitude(kind, k)
    out = np.asarray(perturb.perturb(_ramp(), kind, k))[0, :, :, 0]
    c = (SIDE - 1) / 2
    rows, cols = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    if kind == "shearX":  # x' = x + tan φ (y − c): the source column is x' − tan φ (y − c)
        src = cols - np.tan(np.radians(m)) * (rows - c)
    else:  # the source of x' is c + (x' − c) / s
        src = c + (cols - c) / m
    inside = (src >= 0) & (src <= SIDE - 1)
    if kind != "shearX":
        inside &= (c + (rows - c) / m >= 0) & (c + (rows - c) / m <= SIDE - 1)
    assert inside.sum() > 20
    np.testing.assert_allclose(out[inside], src[inside] / SIDE, atol=1e-5)


def _pil(x):
    return Image.fromarray(np.round(x[0] * 255).astype(np.uint8))


def _u8_images():
    return (RNG.integers(0, 256, size=(1, SIDE, SIDE, 3)) / 255).astype(np.float32)


@pytest.mark.parametrize("k", [3, 8])
def test_posterize_and_solarize_equal_pil(k):
    x = _u8_images()
    bits = perturb.MAGNITUDES["posterize"][k]
    np.testing.assert_array_equal(
        np.round(np.asarray(perturb.perturb(x, "posterize", k))[0] * 255),
        np.asarray(ImageOps.posterize(_pil(x), bits)) if bits else np.zeros_like(x[0]))
    t = perturb.magnitude("solarize", k)  # PIL inverts the uint8 levels ≥ its threshold:
    level = next(u for u in range(257) if u == 256 or np.float32(u / 255) >= t)  # the first
    np.testing.assert_allclose(
        np.asarray(perturb.perturb(x, "solarize", k))[0] * 255,
        np.asarray(ImageOps.solarize(_pil(x), level)), atol=1e-3)


@pytest.mark.parametrize("kind, k", [("brightness_decrease", 3), ("brightness_increase", 6),
                                     ("contrast_decrease", 4), ("contrast_increase", 7)])
def test_brightness_and_contrast_match_pil_to_a_level(kind, k):
    """PIL rounds each blend to uint8 and its contrast uses the rounded mean luma: within
    one level of 255."""
    x = _u8_images()
    f = perturb.magnitude(kind, k)
    enhance = ImageEnhance.Brightness if kind.startswith("brightness") else ImageEnhance.Contrast
    expected = np.asarray(enhance(_pil(x)).enhance(f), np.float64)
    np.testing.assert_allclose(np.asarray(perturb.perturb(x, kind, k))[0] * 255, expected,
                               atol=1.0 + abs(1 - f) * 0.5)


def test_normalized_space_keeps_the_codes_quirks():
    x = np.array([-1.2, -0.3, 0.4, 1.7], np.float32).reshape(1, 1, 4, 1)
    # posterize ×100 → uint8 (trunc, wrap mod 256) → 4 bits → /100
    expected = (np.mod(np.trunc(x * 100), 256).astype(np.uint8) & 0xF0) / 100
    np.testing.assert_allclose(perturb.perturb(x, "posterize", 4, "normalized"), expected,
                               atol=1e-6)
    np.testing.assert_allclose(perturb.perturb(x, "brightness_increase", 9, "normalized"),
                               np.clip(2 * x, 0, 1), atol=1e-6)  # clips normalised values


@pytest.mark.parametrize("args, message", [
    (("blur", 1), "unknown transformation 'blur'; valid choices: translateX"),
    (("rotate", 10), "magnitude index 10 for rotate: it must be an integer in 0–9"),
    (("rotate", 1, "lab"), "unknown space 'lab'; valid choices: pixel, normalized"),
])
def test_bad_requests_say_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        perturb.perturb(_images(1), *args)


def test_every_transformation_runs_under_jit_as_eagerly():
    x = _images(2)
    for kind in perturb.KINDS:
        jitted = jax.jit(lambda v, kind=kind: perturb.perturb(v, kind, 6))
        np.testing.assert_allclose(jitted(x), perturb.perturb(x, kind, 6), atol=1e-6)
