"""Corruptions: range, shape, determinism, monotone severity, bad names."""

import numpy as np
import pytest

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


def _change(name, severity, channels=3):
    x = _image(channels)
    changes = [np.mean((corruptions.corrupt(x, name, severity, np.random.default_rng(s))
                        - x) ** 2) for s in range(4)]
    return float(np.mean(changes))


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise",
                                  "speckle_noise", "gaussian_blur", "defocus_blur",
                                  "contrast", "brightness", "pixelate", "jpeg_compression"])
def test_severity_moves_the_image_further(name):
    changes = [_change(name, s) for s in (1, 3, 5)]
    assert changes[0] < changes[1] < changes[2], changes


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
    with pytest.raises(ValueError, match="unknown corruption 'fog'; valid choices: gaussian"):
        corruptions.corrupt(x, "fog", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="severity 6 must be one of 1, 2, 3, 4, 5"):
        corruptions.corrupt(x, "contrast", 6, np.random.default_rng(0))
    batch = corruptions.corrupt_batch(np.stack([x, x]), "gaussian_noise", 2, seed=1)
    assert not np.array_equal(batch[0], batch[1])  # each image its own draw
