"""Corruptions: range, shape, determinism at every size, monotone severity, hand-checked
blur, fog and elastic cases, frost and bad names."""

import numpy as np
import pytest
from scipy import ndimage

from lib.evaluators import corruptions


def _image(channels=3, size=16, seed=0):
    rng = np.random.default_rng(seed)
    base = np.linspace(0.2, 0.8, size)[None, :, None] * np.ones((size, size, channels))
    return np.clip(base + 0.1 * rng.normal(size=base.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("name", corruptions.NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_range_shape_and_determinism(name, channels):
    x = _image(channels)
    for severity in corruptions.SEVERITIES:
        a = corruptions.corrupt(x, name, severity, np.random.default_rng(3))
        b = corruptions.corrupt(x, name, severity, np.random.default_rng(3))
        assert a.shape == x.shape and a.dtype == np.float32
        assert a.min() >= 0 and a.max() <= 1
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", corruptions.NAMES)
@pytest.mark.parametrize("shape", [(2, 2, 1), (8, 8, 3), (12, 20, 1), (28, 28, 1), (64, 64, 3)])
def test_every_size(name, shape):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    for severity in (1, 5):
        out = corruptions.corrupt(x, name, severity, np.random.default_rng(1))
        assert out.shape == shape and out.min() >= 0 and out.max() <= 1


def _change(name, severity, channels=3):
    x = _image(channels)
    changes = [np.mean((corruptions.corrupt(x, name, severity, np.random.default_rng(s))
                        - x) ** 2) for s in range(4)]
    return float(np.mean(changes))


# glass_blur, spatter and elastic_transform are not monotone in mean squared change, so they
# have their own measures below. Glass blur's second blur smooths away part of what its shuffle
# moved: on this image the change is 0.0161 at severities 1 and 3 (σ far below a pixel at
# 16 px), 0.0190 at 5; on 32 px 0.0168, 0.0125, 0.0137. Spatter switches from water to mud at
# severity 4. elastic_transform's affine part shrinks from 0.08 to 0.03 of the side while its
# elastic part grows (0.0114, 0.0087, 0.0054).
@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise",
                                  "speckle_noise", "gaussian_blur", "defocus_blur",
                                  "motion_blur", "zoom_blur", "snow", "fog", "brightness",
                                  "contrast", "pixelate", "jpeg_compression"])
def test_severity_moves_the_image_further(name):
    changes = [_change(name, s) for s in (1, 3, 5)]
    assert changes[0] < changes[1] < changes[2], changes


def test_spatter_severity_within_each_liquid():
    water = [_change("spatter", s) for s in (1, 2, 3)]
    mud = [_change("spatter", s) for s in (4, 5)]
    assert water[0] < water[1] < water[2] and mud[0] < mud[1], (water, mud)


def _dot_spread(name, severity, seed, size=32, cell=8):
    """Mean squared distance (px²) of the intensity of isolated dots from where they were."""
    x = np.zeros((size, size, 1), np.float32)
    x[cell // 2::cell, cell // 2::cell] = 1
    y = corruptions.corrupt(x, name, severity, np.random.default_rng(seed))[..., 0]
    cells = y.reshape(size // cell, cell, size // cell, cell).sum((0, 2))
    offset = np.arange(cell) - cell // 2
    return np.sum(cells * (offset[:, None] ** 2 + offset[None, :] ** 2)) / cells.sum()


def test_glass_blur_spreads_dots_further():
    spreads = [np.mean([_dot_spread("glass_blur", s, seed) for seed in range(4)])
               for s in (1, 3, 5)]
    assert spreads[0] < spreads[1] < spreads[2], spreads
    order = corruptions._glass_order(9, 7, 1, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(np.sort(order), np.arange(63))  # a shuffle, nothing lost


def _ramp(size=32):
    rows, cols = np.mgrid[:size, :size] / (size - 1)
    return (0.2 + 0.35 * rows + 0.25 * cols)[..., None].astype(np.float32)


def _curvature(image, margin=8):
    """|discrete Laplacian| inside the margin: 0 for a plane, so for an affine warp of one."""
    y = image[..., 0].astype(np.float64)
    lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1]
    return np.abs(lap[margin - 1:-margin + 1, margin - 1:-margin + 1])


def test_elastic_transform_is_affine_then_bends_further():
    flat = np.full((16, 16, 3), 0.4, np.float32)
    warped = corruptions.corrupt(flat, "elastic_transform", 1, np.random.default_rng(0))
    np.testing.assert_allclose(warped, flat, atol=1e-6)
    x = _ramp()
    first = corruptions.corrupt(x, "elastic_transform", 1, np.random.default_rng(0))
    assert np.abs(first - x).max() > 0.01  # moved, yet still a plane: a pure affine warp
    assert _curvature(first).max() < 1e-5
    bends = [np.mean([_curvature(corruptions.corrupt(x, "elastic_transform", s,
                                                     np.random.default_rng(seed))).mean()
                      for seed in range(4)]) for s in (1, 3, 5)]
    assert bends[0] < bends[1] < bends[2], bends


def test_zoom_blur_keeps_a_constant_image():
    flat = np.full((28, 28, 1), 0.3, np.float32)
    for severity in corruptions.SEVERITIES:
        out = corruptions.corrupt(flat, "zoom_blur", severity, np.random.default_rng(0))
        np.testing.assert_allclose(out, flat, atol=1e-6)


def test_motion_kernel_is_one_sided_and_sums_to_one():
    for angle in (-45, -10, 0, 30, 45):
        kernel = corruptions._motion_kernel(10, 2, angle)
        half = kernel.shape[0] // 2
        assert kernel.sum() == pytest.approx(1)
        assert not kernel[:, :half].any()  # nothing behind the centre
        assert np.unravel_index(kernel.argmax(), kernel.shape) == (half, half)
    kernel = corruptions._motion_kernel(10, 2, 0)
    weights = np.exp(-np.arange(11) ** 2 / 8)
    np.testing.assert_allclose(kernel[half, half:half + 11], weights / weights.sum(), atol=1e-12)
    assert kernel.sum() == pytest.approx(kernel[half].sum())  # a horizontal line
    x = _image(3, 16)
    for kernel in (corruptions._motion_kernel(6, 2, 37), corruptions._disk(1.5, 0.1)):
        by_scipy = np.stack([ndimage.convolve(x[..., c], kernel, mode="nearest")
                             for c in range(3)], -1)
        np.testing.assert_allclose(corruptions._convolve(x, kernel), by_scipy, atol=1e-6)


@pytest.mark.parametrize("shape", [(16, 16, 3), (28, 20, 1)])
def test_fog_by_hand(shape):
    x = _image(shape[-1], shape[0])[:, :shape[1]]
    strength, decay = corruptions.CONSTANTS["cifar10"]["fog"][2]
    fog = corruptions._plasma(32 if max(shape) > 16 else 16, decay, np.random.default_rng(5))
    assert fog.min() == 0 and fog.max() == 1
    by_hand = (x + strength * fog[:shape[0], :shape[1], None]) * x.max() / (x.max() + strength)
    out = corruptions.corrupt(x, "fog", 3, np.random.default_rng(5))
    np.testing.assert_allclose(out, np.clip(by_hand, 0, 1), atol=1e-6)


def test_frost_needs_the_released_sets():
    assert "frost" in corruptions.RELEASED_ONLY and "frost" not in corruptions.NAMES
    with pytest.raises(ValueError, match="frost photographs.*corruption_source='released'"):
        corruptions.corrupt(_image(), "frost", 1, np.random.default_rng(0))


def test_noise_variance_and_contrast_by_hand():
    x = np.full((64, 64, 1), 0.5, np.float32)
    noisy = corruptions.corrupt(x, "gaussian_noise", 5, np.random.default_rng(0))
    assert np.std(noisy) == pytest.approx(0.10, rel=0.05)  # CIFAR-10-C σ at severity 5
    noisy = corruptions.corrupt(x, "gaussian_noise", 5, np.random.default_rng(0), "imagenet")
    draw = np.random.default_rng(0).normal(0.0, 0.38, x.shape)  # ImageNet-C σ, then clipped
    np.testing.assert_allclose(noisy, np.clip(0.5 + draw, 0, 1), atol=1e-6)
    y = _image(1)
    low = corruptions.corrupt(y, "contrast", 5, np.random.default_rng(0))
    np.testing.assert_allclose(low, (y - y.mean()) * 0.15 + y.mean(), atol=1e-6)


def test_bad_names_and_severities():
    x = _image()
    with pytest.raises(ValueError, match="unknown corruption 'fig'; valid choices: gaussian"):
        corruptions.corrupt(x, "fig", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="severity 6 must be one of 1, 2, 3, 4, 5"):
        corruptions.corrupt(x, "contrast", 6, np.random.default_rng(0))
    batch = corruptions.corrupt_batch(np.stack([x, x]), "gaussian_noise", 2, seed=1)
    assert not np.array_equal(batch[0], batch[1])  # each image its own draw


def test_corrupted_batches_are_kept_for_equal_inputs(monkeypatch):
    """A second model evaluated on the same images gets the same corrupted batch without
    recomputing it; other images, seeds or severities are computed afresh."""
    monkeypatch.setattr(corruptions, "_kept", corruptions.collections.OrderedDict())
    images = np.stack([_image(), _image()[::-1]])
    first = corruptions.corrupt_batch(images, "gaussian_noise", 2, seed=(0, 1))
    calls = []
    real = corruptions.corrupt
    monkeypatch.setattr(corruptions, "corrupt", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert corruptions.corrupt_batch(images.copy(), "gaussian_noise", 2, seed=(0, 1)) is first
    assert not calls and not first.flags.writeable
    other = corruptions.corrupt_batch(images, "gaussian_noise", 2, seed=(0, 2))
    assert len(calls) == 2 and not np.array_equal(other, first)
    np.testing.assert_array_equal(  # what was kept is what a fresh computation gives
        first, np.stack([real(im, "gaussian_noise", 2, np.random.default_rng([0, 1, i]))
                         for i, im in enumerate(images)]))


def test_kept_batches_stay_under_the_byte_limit(monkeypatch):
    monkeypatch.setattr(corruptions, "_kept", corruptions.collections.OrderedDict())
    images = np.stack([_image()] * 3)
    one = corruptions.corrupt_batch(images, "contrast", 1, seed=0).nbytes
    monkeypatch.setattr(corruptions, "KEPT_BYTES", 2 * one)
    for s in range(4):
        corruptions.corrupt_batch(images, "contrast", 1, seed=s)
    assert [k[5] for k in corruptions._kept] == [(2,), (3,)]  # the two most recent
