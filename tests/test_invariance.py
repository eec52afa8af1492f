"""invariance (experiments/invariance) against hand computations: the invariance score (the
4-sample example of spec §6, identity and constant transforms, the seeded baseline
permutation, percentiles, the gap), the shifted-items set and its augmentation, and the
measurement procedure with its bad input."""

import json

import numpy as np
import pytest

from experiments.invariance import claims, metric, procedure, search, shifted
from lib import config as config_lib
from lib.data import fashion_mnist
from tests.helpers import REPO

CONFIG = REPO / "experiments/invariance/configs/shifted.py"

R2 = np.sqrt(2.0)


def test_the_hand_computed_four_sample_example():
    z = np.array([[1, 0], [0, 1], [1, 1], [1, -1]], float)
    z_t = np.array([[1, 0], [1, 1], [-1, -1], [1, -1]], float)
    perm = np.array([1, 0, 3, 2])  # z_t[perm] = (1,1), (1,0), (1,-1), (-1,-1)
    # cosine: d = 0, 1 − 1/√2, 2, 0;  b = 1 − 1/√2, 1, 1, 1
    d = np.array([0, 1 - 1 / R2, 2, 0])
    b = np.array([1 - 1 / R2, 1, 1, 1])
    inv = metric.scores(z, z_t, perm)
    np.testing.assert_allclose(inv, (b - d) / (b + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(inv, [1, 1 / R2, -1, 1], atol=1e-7)
    assert metric.summary(inv)["median"] == pytest.approx((1 / R2 + 1) / 2, abs=1e-7)
    # L2: d = 0, 1, 2√2, 0;  b = 1, √2, 2, 2
    np.testing.assert_allclose(metric.scores(z, z_t, perm, "l2"),
                               [1 / (1 + 1e-8), (R2 - 1) / (R2 + 1e-8),
                                (2 - 2 * R2) / (2 + 1e-8), 2 / (2 + 1e-8)], rtol=1e-12)


def test_identity_transform_gives_one_for_every_sample():
    x = np.random.default_rng(0).normal(size=(200, 7))
    perm = metric.permutation(200, seed=3)
    for kind in metric.DISTANCES:
        np.testing.assert_allclose(metric.scores(x, x, perm, kind), 1, atol=1e-6)


def test_a_constant_transform_gives_a_median_below_one_half():
    z = np.random.default_rng(1).uniform(size=(100, 5))
    z_t = np.tile(np.random.default_rng(2).uniform(size=(1, 5)), (100, 1))  # f(t(x)) = c
    inv = metric.scores(z, z_t, metric.permutation(100, 0))
    assert metric.summary(inv)["median"] < 0.5
    np.testing.assert_allclose(inv, 0, atol=1e-6)  # d_i = b_i for every i


def test_the_permutation_is_seeded_and_has_no_fixed_point():
    a, b, c = (metric.permutation(50, s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for seed in range(30):
        p = metric.permutation(5, seed)
        assert sorted(p) == list(range(5)) and not np.any(p == np.arange(5))


def test_percentiles_and_the_gap_by_hand():
    s = metric.summary(np.arange(101) / 100)
    assert s["median"] == 0.5 and len(s["percentiles"]) == 100
    np.testing.assert_allclose(s["percentiles"], np.arange(100) / 100, atol=1e-12)
    trained = {k: 0.1 * k for k in range(10)}
    untrained = {k: 0.05 * k for k in range(10)}
    assert metric.invariance_gap(trained, untrained) == pytest.approx(0.05 * 5)  # mean k = 5
    with pytest.raises(ValueError, match="missing \\[7\\]"):
        metric.invariance_gap({k: 0 for k in range(7)}, untrained)


def test_bad_inputs_say_what_is_wrong():
    z = np.zeros((3, 2))
    with pytest.raises(ValueError, match="distance 'manhattan'; valid choices: cosine, l2"):
        metric.scores(z, z, np.array([1, 2, 0]), "manhattan")
    with pytest.raises(ValueError, match="perm must be a permutation of 0..2"):
        metric.scores(z, z, np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="two \\[N, D\\] arrays of one shape"):
        metric.scores(z, np.zeros((3, 3)), np.array([1, 2, 0]))


# The small-scale experiment's pieces: the shifted-items set, the shift, the procedure.

def test_items_sit_centred_or_at_fixed_offsets_in_range():
    centred = shifted.build("train_centred").images
    items, _ = fashion_mnist.pooled_items("train", 5)
    np.testing.assert_array_equal(centred[:5, 7:21, 7:21, 0], items)
    assert centred[:5].sum() == pytest.approx(items.sum(), rel=1e-6)  # nothing outside
    data = shifted.build("train_data").images
    for i in range(50):  # each item somewhere in 0..14², intact
        rows, cols = np.nonzero(data[i, :, :, 0])
        assert rows.min() >= 0 and rows.max() <= 27 and cols.max() <= 27
        assert data[i].sum() == pytest.approx(centred[i].sum(), rel=1e-6)
    assert not np.array_equal(data[:50], centred[:50])
    np.testing.assert_array_equal(data, shifted.build.__wrapped__("train_data").images)


def test_random_position_moves_the_item_uniformly():
    image = shifted.build("train_centred").images[0]
    augment = shifted.RandomPosition(None, 28)
    rng = np.random.default_rng(0)
    item = image[7:21, 7:21]
    offsets = []
    for _ in range(600):
        out = augment.transform({"image": image}, rng)["image"]
        assert out.sum() == pytest.approx(image.sum(), rel=1e-6)
        hit = [(r, c) for r in range(15) for c in range(15)
               if np.array_equal(out[r:r + 14, c:c + 14], item)]
        offsets.append(hit[0])
    rows = np.array([r for r, _ in offsets])
    assert rows.min() == 0 and rows.max() == 14  # the whole range occurs
    assert abs(rows.mean() - 7) < 3 * np.sqrt((15**2 - 1) / 12 / 600)


def test_translate_shifts_by_whole_pixels_with_zero_fill():
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4, 1).astype(np.float32) + 1
    out = procedure.translate(x, 1)
    np.testing.assert_array_equal(out[:, :, 0], 0)
    np.testing.assert_array_equal(out[:, :, 1:], x[:, :, :3])
    np.testing.assert_array_equal(procedure.translate(x, 0), x)
    left_up = procedure.translate(x, -2, -1)  # by hand: out[r, c] = x[r + 1, c + 2]
    expected = np.zeros_like(x)
    expected[:, :2, :2] = x[:, 1:, 2:]
    np.testing.assert_array_equal(left_up, expected)


def _config(variant, **overrides):
    return config_lib.updated(config_lib.load_file(CONFIG, f"variant={variant},quick=True"),
                              overrides)


def test_untrained_model_measures_b_over_b_plus_eps_at_k_zero_and_less_elsewhere(tmp_path):
    """At k = 0, d_i = 0, so inv_i = b_i / (b_i + 1e-8): the smallest b_i bounds the minimum."""
    results = procedure.run(_config("untrained"), tmp_path / "run")
    assert not (tmp_path / "run" / "train").exists()
    b = results["inv/baseline_min_k0"]
    assert results["inv/min_k0"] == pytest.approx(b / (b + 1e-8), abs=1e-7)
    assert results["inv/max_k0"] <= 1
    assert results["inv/median_k2"] < 1
    saved = json.loads((tmp_path / "run" / "invariance.json").read_text())
    assert saved["values"]["inv/median_k2"] == results["inv/median_k2"]


@pytest.mark.parametrize("overrides, message", [
    ({"invariance.distance": "cos"}, "invariance.distance='cos'; valid choices: cosine, l2"),
    ({"invariance.feature": "gap"}, "invariance.feature='gap': the model has the features "
                                    "conv0, conv1, conv2, pool"),
    ({"invariance.shifts": (0, 28)}, "reach past the images' width 28"),
])
def test_bad_measurement_settings_are_refused_before_anything_is_written(tmp_path, overrides,
                                                                         message):
    with pytest.raises(config_lib.ConfigError, match=message):
        procedure.run(_config("data", **overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# The similarity search (experiments/invariance/search.py).

def test_search_statistics_by_hand():
    base = np.array([0.5, 0.8, 0.4, 0.5])
    moved = np.array([0.6, 0.6, 0.5, 0.5])  # Δ = +0.1, −0.2, +0.1, 0
    stats = search.statistics(base, moved)
    assert stats["proportion_boosted"] == 0.5
    assert stats["mean_delta"] == pytest.approx(0.0)
    assert stats["std_delta"] == pytest.approx(np.std([0.1, -0.2, 0.1, 0.0]))
    assert stats["mean_positive_delta"] == pytest.approx(0.1)
    assert stats["mean_negative_delta"] == pytest.approx(-0.2)
    percent = [0.1 / 0.5, -0.2 / 0.8, 0.1 / 0.4, 0.0]
    assert stats["avg_percent_similarity_change"] == pytest.approx(np.mean(percent))
    assert stats["avg_percent_boost"] == pytest.approx(np.mean([0.2, 0.25]))
    assert stats["weighted_boost"] == pytest.approx(0.225 * 0.5)
    assert search.statistics(base, base)["mean_positive_delta"] == 0.0  # none boosted


def test_the_exact_search_test_of_spec_section_6():
    """f = flattened pixels; pairs (x, x shifted right 3 px): shifting back is the one
    candidate that restores every pair exactly."""
    outcome = claims.search_test()
    assert outcome["first"] == "translateX-3" and outcome["proportion_boosted"] == 1.0
    assert outcome["order"].index("translateX-3") == 0 and len(outcome["order"]) == 16
