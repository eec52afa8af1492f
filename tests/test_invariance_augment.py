"""The augmentation ablations of invariance.md §2.1 (experiments/invariance/augment.py) and the
shared crop / translate ops under them (lib/data/preprocess.py): the crop parameters'
distributions over many draws against their closed forms, and each variant's output against
what its sequence of ops must give."""

import math

import ml_collections
import numpy as np
import pytest
from scipy import stats

from experiments.invariance import augment
from experiments.invariance import config as paper_config
from lib.config import ConfigError
from lib.data import preprocess

DRAWS = 4000
SIDE = 2000  # large, so that rounding the box's sides moves its area by < 0.1 %
TORCH_SCALE, TORCH_RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def data_cfg(**invaug) -> ml_collections.ConfigDict:
    c = paper_config.get_config().data
    c.crop_scale, c.crop_ratio = TORCH_SCALE, TORCH_RATIO
    c.invaug.update(invaug)
    return c


def boxes(draws=DRAWS, seed=0, **kwargs) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([preprocess.crop_box(SIDE, SIDE, rng, **kwargs) for _ in range(draws)])


def fractions(b):
    return b[:, 2] * b[:, 3] / SIDE**2


def test_uniform_area_and_log_uniform_aspect_at_uniform_positions():
    # (0.08, 0.5) fits every aspect of (3/4, 4/3) in a square, so no draw is retried
    b = boxes(scale=(0.08, 0.5), ratio=TORCH_RATIO)
    assert stats.kstest(fractions(b), stats.uniform(0.08, 0.42).cdf).pvalue > 1e-3
    log_aspect = np.log(b[:, 3] / b[:, 2])
    low, high = np.log(TORCH_RATIO)
    assert stats.kstest(log_aspect, stats.uniform(low, high - low).cdf).pvalue > 1e-3
    top = b[:, 0] / (SIDE - b[:, 2])
    assert stats.kstest(top, stats.uniform(0, 1).cdf).pvalue > 1e-3
    # a uniform area fraction is not log-uniform: the test can tell them apart
    assert stats.kstest(fractions(b), stats.loguniform(0.08, 0.5).cdf).pvalue < 1e-6


def test_centred_crops_sit_in_the_middle():
    b = boxes(scale=(0.08, 0.5), ratio=TORCH_RATIO, centred=True)
    np.testing.assert_array_equal(b[:, 0], (SIDE - b[:, 2]) // 2)
    np.testing.assert_array_equal(b[:, 1], (SIDE - b[:, 3]) // 2)
    assert len(np.unique(b[:, 2])) > 100  # the size still varies


def test_no_aspect_gives_square_boxes():
    b = boxes(scale=TORCH_SCALE, ratio=augment.NO_ASPECT)
    assert np.all(np.abs(b[:, 2] - b[:, 3]) <= 0)


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_exponential_area_rule(rate):
    # fraction = 1 / clip(1 + E, 1, 1/0.08), E ~ Exp(rate): P(fraction <= f) = exp(−rate(1/f − 1))
    # for f >= 0.08, with the clipped mass at 0.08
    rule = augment._area_rule(data_cfg(exp_rate=rate), "exp")
    b = boxes(scale=TORCH_SCALE, ratio=augment.NO_ASPECT, area=rule)
    f = fractions(b)
    for point in (0.1, 0.3, 0.6, 0.9):
        assert abs(np.mean(f <= point) - math.exp(-rate * (1 / point - 1))) < 0.03
    assert f.min() >= 0.08 - 2e-3


def test_beta_area_rule():
    rule = augment._area_rule(data_cfg(beta=(2.0, 5.0)), "beta")
    f = fractions(boxes(scale=TORCH_SCALE, ratio=augment.NO_ASPECT, area=rule))
    assert abs(f.mean() - (0.08 + 0.92 * 2 / 7)) < 0.01  # Beta(2, 5) has mean 2/7
    assert stats.kstest((f - 0.08) / 0.92, stats.beta(2, 5).cdf).pvalue > 1e-3


def test_inverse_scale_area_rule():
    # side shrinks by 1/U(1, 1/0.28): P(fraction <= f) = (high − 1/√f) / (high − 1)
    high = 1 / 0.28
    rule = augment._area_rule(data_cfg(), "sqrt_inv")
    f = fractions(boxes(scale=TORCH_SCALE, ratio=augment.NO_ASPECT, area=rule))
    for point in (0.1, 0.25, 0.5, 0.9):
        expected = (high - 1 / math.sqrt(point)) / (high - 1)
        assert abs(np.mean(f <= point) - max(expected, 0)) < 0.03


def test_translation_is_uniform_whole_pixels_up_to_t():
    image = np.arange(1, 101, dtype=np.float32).reshape(10, 10, 1)
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(500):
        out = preprocess.random_translate({"image": image}, rng, 0.3)["image"]
        # find the shift: where pixel value 45 (row 4, column 4) went, or its absence
        where = np.argwhere(out[..., 0] == 45)
        dy, dx = (where[0] - 4) if len(where) else (None, None)
        np.testing.assert_array_equal(out, preprocess.shift(image, dx, dy))
        seen.add((int(dx), int(dy)))
    assert {dx for dx, _ in seen} == set(range(-3, 4))  # round(U(−3, 3))
    assert {dy for _, dy in seen} == set(range(-3, 4))


def test_shift_by_hand():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    out = preprocess.shift(x, 1, -1)[0, ..., 0]
    np.testing.assert_array_equal(out, [[0, 4, 5, 6], [0, 8, 9, 10], [0, 0, 0, 0]])
    assert not preprocess.shift(x, 4, 0).any()


@pytest.fixture
def photo():
    """A 40 × 52 uint8 image without zero pixels (so a zero marks translation fill)."""
    return np.random.default_rng(3).integers(1, 256, (40, 52, 3), dtype=np.uint8)


def run_variant(name, image, seed=0, size=32, **invaug):
    cfg = data_cfg(variant=name, **invaug)
    return augment.Ablation(cfg, size)({"image": image, "label": 0},
                                       np.random.default_rng(seed))["image"]


@pytest.mark.parametrize("name", list(augment.VARIANTS))
def test_every_variant_gives_the_output_size(name, photo):
    out = run_variant(name, photo)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_none_is_resize_then_centre_crop(photo):
    resized = preprocess.resize(photo, (37, 48))  # R = round(32 · 256/224) = 37, 52·37/40 → 48
    np.testing.assert_array_equal(run_variant("None", photo), resized[2:34, 8:40])
    np.testing.assert_array_equal(run_variant("None", photo, seed=1), run_variant("None", photo))
    np.testing.assert_array_equal(run_variant("None", photo),
                                  preprocess.resize_center_crop(photo, 32))  # = eval


def test_translation_only_moves_the_centre_crop(photo):
    centre = run_variant("None", photo)
    for seed in range(5):
        out = run_variant("T2", photo, seed=seed)
        nonzero = np.argwhere(out.any(-1))
        (top, left), (bottom, right) = nonzero.min(0), nonzero.max(0)
        dy = top if top > 0 else -(31 - bottom)
        dx = left if left > 0 else -(31 - right)
        np.testing.assert_array_equal(out, preprocess.shift(centre, int(dx), int(dy)))


def test_flip_variants_flip_half_the_time(photo):
    centre = run_variant("None", photo)
    flips = [np.array_equal(run_variant("H", photo, seed=s), centre[:, ::-1]) for s in range(40)]
    assert 8 <= sum(flips) <= 32


def test_random_crop_variant_is_a_crop_of_the_resized_image(photo):
    resized = preprocess.resize(photo, (37, 48))
    out = run_variant("R", photo, crop_size=196)  # 196 at 224 → 28 px at 32, resized to 32
    windows = np.lib.stride_tricks.sliding_window_view(resized, (28, 28, 3))[..., :, :, :]
    found = [preprocess.resize(np.ascontiguousarray(windows[i, j, 0]), (32, 32))
             for i in range(windows.shape[0]) for j in range(windows.shape[1])]
    assert any(np.array_equal(out, f) for f in found)


def test_bad_variant_and_ranges_are_refused(photo):
    with pytest.raises(ConfigError, match="valid choices"):
        run_variant("HCX", photo)
    with pytest.raises(ConfigError, match="inv_scale"):
        run_variant("TSnoARSQRTInv", photo, inv_scale=(0.5, 2.0))
    cfg = data_cfg(variant="HC")
    cfg.crop_scale = (0.9, 0.1)
    with pytest.raises(ConfigError, match="crop_scale"):
        augment.Ablation(cfg, 32)
