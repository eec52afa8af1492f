"""The ImageNet recipes' colour jitter and PCA lighting (lib.data.preprocess.color_jitter,
pca_lighting; data.color_jitter and data.lighting after the imagenet crop), against PIL's
enhancer formulas written in numpy and AlexNet's lighting computed by hand."""

import types

import numpy as np
import pytest

from configs import base
from lib.config import ConfigError
from lib.data import pipeline, preprocess


def image(seed=0, size=24, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (size, size, channels), np.uint8)


def luma(x):
    """PIL's RGB → L: (299 R + 587 G + 114 B) / 1000, rounded."""
    x = x.astype(np.int64)
    return (x[..., 0] * 299 + x[..., 1] * 587 + x[..., 2] * 114 + 500) // 1000


def blend(degenerate, x, factor):
    return np.clip(degenerate + factor * (x.astype(np.float64) - degenerate), 0, 255)


OPS = [  # brightness (black), contrast (the mean grey level), saturation (the grey image)
    lambda x, f: blend(0.0, x, f),
    lambda x, f: blend(float(int(luma(x).mean() + 0.5)), x, f),
    lambda x, f: blend(luma(x)[..., None].astype(np.float64), x, f),
]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_each_jitter_op_is_the_pil_blend_with_its_drawn_factor(which):
    x = image()
    strengths = [0.0, 0.0, 0.0]
    strengths[which] = 0.4
    out = preprocess.color_jitter(x, np.random.default_rng(5), *strengths)
    replay = np.random.default_rng(5)
    replay.permutation(3)
    factor = replay.uniform(0.6, 1.4)
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert np.abs(out.astype(np.float64) - OPS[which](x, factor)).max() <= 1.0


def test_the_three_ops_run_in_a_random_order_with_their_own_factors():
    x = image(1)
    orders = set()
    for seed in range(12):
        out = preprocess.color_jitter(x, np.random.default_rng(seed), 0.4, 0.4, 0.4)
        replay = np.random.default_rng(seed)
        order = replay.permutation(3)
        orders.add(tuple(order))
        expected = x.astype(np.float64)
        for i in order:
            expected = np.floor(OPS[i](np.rint(expected).astype(np.uint8),
                                       replay.uniform(0.6, 1.4)))
        assert np.abs(out.astype(np.float64) - expected).max() <= 2.0
    assert len(orders) > 3


def test_jitter_on_a_grey_image_keeps_one_channel_and_skips_saturation():
    x = image(2, channels=1)
    out = preprocess.color_jitter(x, np.random.default_rng(0), 0.0, 0.0, 0.4)
    assert out.shape == x.shape and np.array_equal(out, x)


def test_pca_lighting_adds_alexnets_offset_by_hand():
    x = image(3)
    out = preprocess.pca_lighting(x, np.random.default_rng(7), 0.1)
    alpha = np.random.default_rng(7).normal(0, 0.1, 3)
    eigval = [0.2175, 0.0188, 0.0045]
    eigvec = [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
              [-0.5836, -0.6948, 0.4203]]
    offset = [255 * sum(eigvec[c][j] * alpha[j] * eigval[j] for j in range(3))
              for c in range(3)]
    assert out.dtype == np.float32
    assert np.allclose(out - x, np.broadcast_to(offset, x.shape), atol=1e-3)


def test_pca_lighting_offsets_have_the_pca_covariance():
    rng = np.random.default_rng(0)
    zero = np.zeros((1, 1, 3), np.uint8)
    offsets = np.array([preprocess.pca_lighting(zero, rng, 0.1)[0, 0] for _ in range(20_000)])
    v, lam = preprocess.LIGHTING_EIGVEC, preprocess.LIGHTING_EIGVAL
    expected = (255 * 0.1) ** 2 * v @ np.diag(lam**2) @ v.T
    assert np.allclose(np.cov(offsets.T), expected, rtol=0.05, atol=0.02 * expected.max())
    with pytest.raises(ValueError, match="needs RGB"):
        preprocess.pca_lighting(np.zeros((4, 4, 1), np.uint8), rng, 0.1)


def _data_cfg(**overrides):
    cfg = base.get_config().data
    cfg.augment, cfg.image_size = "imagenet", 16
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def test_the_imagenet_crop_applies_jitter_then_lighting_only_when_set():
    record = {"image": image(4, size=40)}
    plain = pipeline.InceptionCrop(_data_cfg(), 16)(record, np.random.default_rng(0))
    assert plain["image"].dtype == np.uint8 and plain["image"].shape == (16, 16, 3)
    coloured = pipeline.InceptionCrop(_data_cfg(color_jitter=0.4, lighting=0.1), 16)(
        record, np.random.default_rng(0))
    assert coloured["image"].dtype == np.float32 and coloured["image"].shape == (16, 16, 3)
    assert not np.allclose(coloured["image"], plain["image"])


@pytest.mark.parametrize("overrides, split, message", [
    ({"augment": "flip", "color_jitter": 0.4}, (255, 3), "follow the imagenet crop"),
    ({"lighting": 0.1}, (255, 1), "needs RGB images"),
    ({"color_jitter": 0.4}, (16, 1), "need 8-bit pixels"),
])
def test_colour_settings_the_data_cannot_take_are_refused(overrides, split, message):
    stub = types.SimpleNamespace(max_value=split[0], image_shape=(8, 8, split[1]))
    with pytest.raises(ConfigError, match=message):
        pipeline._check_color(_data_cfg(**overrides), stub)
