"""Joslim's MOBO (experiments/joslim/mobo.py) against hand computations: the Matérn-5/2 GP,
the augmented Tchebyshev scalarisation, the λ binary search, and target sampling."""

import math

import numpy as np
import pytest

from experiments.joslim import mobo


def test_matern_kernel_and_posterior_by_hand():
    gp = mobo.Matern52GP(lengthscale=0.5, outputscale=2.0, noise=0.1)
    # r = 0.5: s = √5, k = 2 (1 + √5 + 5/3) e^{−√5}
    k = gp.kernel(np.zeros((1, 1)), np.full((1, 1), 0.5))[0, 0]
    assert k == pytest.approx(2 * (1 + math.sqrt(5) + 5 / 3) * math.exp(-math.sqrt(5)))
    # one observation y at x: mean at x = k(x,x)/(k(x,x)+noise)·y, var = s − s²/(s+noise)
    posterior = gp.fit(np.zeros((1, 2)), np.array([3.0]))
    mean, std = posterior(np.zeros((1, 2)))
    assert mean[0] == pytest.approx(2 / 2.1 * 3)
    assert std[0] ** 2 == pytest.approx(2 - 4 / 2.1)
    # far away: the prior
    mean, std = posterior(np.full((1, 2), 50.0))
    assert mean[0] == pytest.approx(0, abs=1e-12) and std[0] ** 2 == pytest.approx(2)


def test_tchebyshev_by_hand():
    # λ = 0.25, L = 1, C = −1: a = 0.75·4 = 3, c = 0.25·2 = 0.5 → 3 + 1e-6·3.5
    assert mobo.tchebyshev(1.0, -1.0, 0.25) == pytest.approx(3 + 3.5e-6)
    # λ = 1 weighs only the cost
    assert mobo.tchebyshev(np.array([5.0, -2.0]), np.array([0.0, 0.0]), 1.0).tolist() == \
        pytest.approx([3 + 1e-6 * 3, 3 + 1e-6 * 3])


def test_lambda_search_walks_toward_the_target():
    """Candidates on a line: cost ratio c, loss −c. λ near 0 picks the largest, near 1 the
    smallest; the search must reach any target within 0.02 in ≤ 10 steps."""
    c = np.linspace(0.15, 1.0, 200)
    loss, _, _ = mobo.standardise(-c)
    cost, _, _ = mobo.standardise(c)
    for target in (0.2, 0.5, 0.83, 0.99):
        best, r, steps = mobo.search_lambda(
            lambda lam: int(np.argmin(mobo.tchebyshev(loss, cost, lam))),
            lambda i: float(c[i]), target)
        assert abs(r - target) <= 0.02 and steps <= 10 and c[best] == r
    # a target no candidate reaches: the search stops after its 10 steps
    _, _, steps = mobo.search_lambda(lambda lam: 0, lambda i: 0.15, 0.9)
    assert steps == 10


def test_area_target_favours_the_segment_with_the_most_area():
    losses, costs = np.array([3.0, 1.0]), np.array([0.3, 0.5])
    # padded front (0.2, 8), (0.3, 3), (0.5, 1), (1, 0.9): areas 0.5, 0.4, 0.05
    rng = np.random.default_rng(0)
    draws = np.array([mobo.area_target(losses, costs, 0.2, 0.9, rng) for _ in range(2000)])
    assert draws.min() >= 0.2 - 0.02 and draws.max() <= 0.99
    shares = [np.mean((draws >= a) & (draws < b)) for a, b in ((0.2, 0.3), (0.3, 0.5),
                                                                (0.5, 1.0))]
    assert shares[0] > shares[1] > shares[2] > 0
    assert shares[0] == pytest.approx(0.5 / 0.95, abs=0.05)


def test_candidates_stay_in_bounds_and_include_uniform_widths():
    rng = np.random.default_rng(1)
    history = rng.uniform(0.42, 1, (10, 4))
    pool = mobo.candidates(history, rng.normal(size=10), rng.uniform(size=10), 0.42, 1.0, rng)
    assert pool.shape == (1024 + 64 + 256, 4)
    assert pool.min() >= 0.42 and pool.max() <= 1.0
    assert np.any(np.all(pool == 1.0, axis=1)) and np.any(np.all(pool == 0.42, axis=1))
