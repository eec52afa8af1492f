"""Correlation statistics against hand computations and scipy."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lib import stats


def test_pearson_worked_example():
    # x̄ = 2.5, ȳ = 3; deviations (-1.5,-.5,.5,1.5)·(-2,-1,1,2) sum to 7; √(5·10) = √50.
    assert stats.pearson([1, 2, 3, 4], [1, 2, 4, 5]) == pytest.approx(7 / math.sqrt(50))


def test_kendall_worked_example_with_ties():
    # pairs of (1,1),(2,3),(3,2),(4,4),(4,5): 8 concordant, 1 discordant, one tie in x.
    x, y = [1, 2, 3, 4, 4], [1, 3, 2, 4, 5]
    assert stats.kendall_tau(x, y) == pytest.approx(7 / math.sqrt(9 * 10))
    assert stats.kendall_tau(x, y) == pytest.approx(scipy_stats.kendalltau(x, y).statistic)


def test_spearman_by_hand_and_ties():
    # ranks of x: 1, 2, 3, 4; of y (ties 2 and 2 → 1.5, 1.5): 3, 1.5, 1.5, 4
    assert stats.spearman([1, 2, 3, 4], [5, 2, 2, 9]) == pytest.approx(
        np.corrcoef([1, 2, 3, 4], [3, 1.5, 1.5, 4])[0, 1])
    np.testing.assert_array_equal(stats.ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])


def test_against_scipy_on_random_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = -0.6 * x + rng.normal(size=30)
    assert stats.spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    assert stats.pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y).statistic)
    assert stats.kendall_tau(x, y) == pytest.approx(scipy_stats.kendalltau(x, y).statistic)


def test_fisher_interval_by_hand():
    # r = 0.5, n = 28: z = atanh(0.5) = 0.549306, se = 1/5, z ± 1.959964·0.2.
    low, high = stats.fisher_interval(0.5, 28)
    assert low == pytest.approx(math.tanh(0.549306 - 0.391993), abs=1e-5)
    assert high == pytest.approx(math.tanh(0.549306 + 0.391993), abs=1e-5)
    assert low == pytest.approx(0.1560, abs=1e-4) and high == pytest.approx(0.7358, abs=1e-4)


def test_constant_side_gives_nan_and_short_input_is_refused():
    assert math.isnan(stats.pearson([1, 1, 1, 1], [1, 2, 3, 4]))
    with pytest.raises(ValueError, match="length ≥ 3"):
        stats.pearson([1, 2], [1, 2])
    with pytest.raises(ValueError, match="more than 3 runs"):
        stats.fisher_interval(0.2, 3)
    out = stats.correlations([1, 2, 3], [3, 2, 1])
    assert out["pearson"] == pytest.approx(-1.0) and math.isnan(out["pearson_low"])
