"""Joslim's paper-scale surrogates (experiments/joslim/fitted_gp.py, on tinygp) against numpy
and scipy: the kernels, the MAP objective, its maximum, the posterior, the gradient restarts,
and the sampler built on them reaching its cost targets."""

import math

import jax
import numpy as np
import pytest
from scipy import stats

from experiments.joslim import fitted_gp, mobo


def matern(r):
    s = math.sqrt(5) * r
    return (1 + s + s**2 / 3) * np.exp(-s)


def numpy_kernel(kind, hyper, a, b):
    if kind == "ard":
        r = np.sqrt((((a[:, None] - b[None]) / hyper.lengthscale) ** 2).sum(-1))
        return hyper.outputscale * matern(r)
    r = np.abs(a[:, None] - b[None]) / hyper.lengthscale[0]
    return hyper.outputscale * matern(r).sum(-1)


def numpy_log_posterior(kind, hyper, x, y):
    k = numpy_kernel(kind, hyper, x, x) + hyper.noise * np.eye(len(x))
    _, logdet = np.linalg.slogdet(k)
    likelihood = -0.5 * (y @ np.linalg.solve(k, y) + logdet + len(x) * math.log(2 * math.pi))
    prior = (stats.gamma.logpdf(hyper.lengthscale, 3, scale=1 / 6).sum()
             + stats.gamma.logpdf(hyper.outputscale, 2, scale=1 / 0.15)
             + stats.gamma.logpdf(hyper.noise, 1.1, scale=1 / 0.05))
    return likelihood + prior


def data(seed=0, n=30, d=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, d))
    y = np.sin(4 * x[:, 0]) + 0.3 * x[:, 1] + 0.01 * rng.normal(size=n)
    return x, mobo.standardise(y)[0]


@pytest.mark.parametrize("kind", ["ard", "additive"])
def test_log_posterior_equals_numpy(kind):
    x, y = data()
    hyper = fitted_gp.Hyper(np.array([0.3, 0.7, 1.1]) if kind == "ard" else np.array([0.4]),
                            2.5, 0.02)
    with jax.enable_x64(True):
        ours = float(fitted_gp.FittedGP(kind).log_posterior(hyper, x, y))
    assert ours == pytest.approx(numpy_log_posterior(kind, hyper, x, y), rel=1e-9)


@pytest.mark.parametrize("kind", ["ard", "additive"])
def test_fit_finds_a_local_maximum_of_the_map_objective(kind):
    x, y = data()
    gp = fitted_gp.FittedGP(kind)
    hyper = gp.hyperparameters(x, y)
    best = numpy_log_posterior(kind, hyper, x, y)
    start = fitted_gp.Hyper(np.full(hyper.lengthscale.shape, 1 / 3), 1 / 0.15, 2.0)
    assert best > numpy_log_posterior(kind, start, x, y) + 1.0
    for field in ("lengthscale", "outputscale", "noise"):
        for factor in (0.9, 1.1):
            moved = fitted_gp.Hyper(**{**vars(hyper), field: getattr(hyper, field) * factor})
            if moved.noise >= fitted_gp.MIN_NOISE:
                assert numpy_log_posterior(kind, moved, x, y) <= best + 1e-6


def test_ard_lengthscales_tell_relevant_from_irrelevant_dimensions():
    """y depends on x0 fast, on x1 slowly, not on x2: the fitted lengthscales order so."""
    x, y = data(n=60)
    lengthscale = fitted_gp.FittedGP("ard").hyperparameters(x, y).lengthscale
    assert lengthscale[0] < lengthscale[1] < lengthscale[2]


@pytest.mark.parametrize("kind", ["ard", "additive"])
def test_posterior_is_the_latent_closed_form(kind):
    x, y = data()
    posterior = fitted_gp.FittedGP(kind).fit(x, y)
    hyper = posterior.hyper
    z = np.random.default_rng(1).uniform(0, 1, (7, 3))
    k = numpy_kernel(kind, hyper, x, x) + hyper.noise * np.eye(len(x))
    ks = numpy_kernel(kind, hyper, z, x)
    mean = ks @ np.linalg.solve(k, y)
    var = np.diag(numpy_kernel(kind, hyper, z, z)) - np.einsum(
        "ij,ji->i", ks, np.linalg.solve(k, ks.T))
    ours_mean, ours_std = posterior(z)
    assert np.allclose(ours_mean, mean, atol=1e-7)
    assert np.allclose(ours_std**2, var, atol=1e-7)


def test_minimiser_reaches_an_interior_minimum_and_stops_at_the_box():
    centre = np.array([0.3, 0.8, 0.5])
    minimise = fitted_gp.minimiser(lambda z, c: ((z - c) ** 2).sum())
    starts = np.random.default_rng(0).uniform(0, 1, (3, 3))
    assert np.allclose(minimise(starts, centre), centre, atol=1e-5)
    outside = np.array([1.4, -0.2, 0.5])
    assert np.allclose(minimise(starts, outside), [1.0, 0.0, 0.5], atol=1e-5)


def _problem(d=6, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, d)
    cost_of = lambda a: (np.asarray(a) ** 2 @ w) / w.sum()  # noqa: E731
    history = rng.uniform(0.42, 1, (40, d))
    losses = 1 / (0.2 + history.mean(1)) + 0.01 * rng.normal(size=40)
    return history, losses, cost_of(history), cost_of


def _restarts(history, losses, costs):
    scaled = (history - 0.42) / 0.58
    loss_gp, cost_gp = mobo.surrogates("fitted")
    loss_posterior = loss_gp.fit(scaled, mobo.standardise(losses)[0])
    cost_posterior = cost_gp.fit(scaled, mobo.standardise(costs)[0])
    pool = np.random.default_rng(0).uniform(0, 1, (256, history.shape[1]))
    u_loss = mobo.ucb(*loss_posterior(pool), 0.1)
    u_cost = mobo.ucb(*cost_posterior(pool), 0.1)

    def scalarised(z, lam):
        return mobo.tchebyshev(mobo.ucb(*loss_posterior(z[None]), 0.1),
                               mobo.ucb(*cost_posterior(z[None]), 0.1), lam)[0]

    search = mobo.restarts_search(loss_posterior, cost_posterior, u_loss, u_cost, pool, 0.1)
    return search, scalarised, pool


def test_restarts_improve_on_the_best_candidate_and_reach_targets():
    history, losses, costs, cost_of = _problem()
    search, scalarised, pool = _restarts(history, losses, costs)
    for lam in (0.1, 0.5, 0.9):
        refined = search(lam)
        assert np.all((refined >= 0) & (refined <= 1))
        best_candidate = min(float(scalarised(z, lam)) for z in pool)
        assert float(scalarised(refined, lam)) <= best_candidate + 1e-9
    for target in (0.4, 0.6):
        _, r, _ = mobo.search_lambda(lambda lam: 0.42 + 0.58 * search(lam),
                                         lambda a: float(cost_of(a[None])[0]), target)
        assert abs(r - target) <= mobo.TOLERANCE


def test_restarts_sample_is_a_configuration_at_its_exact_cost():
    history, losses, costs, cost_of = _problem()
    out = mobo.sample(history, losses, costs, low=0.42, high=1.0, cost_of=cost_of,
                      lower=float(cost_of(np.full((1, 6), 0.42))[0]),
                      rng=np.random.default_rng(3), cost_model="gp", surrogate="fitted",
                      acquisition="restarts")
    assert np.all((out["alpha"] >= 0.42) & (out["alpha"] <= 1.0))
    assert out["ratio"] == pytest.approx(float(cost_of(out["alpha"][None])[0]))
    assert 1 <= out["steps"] <= mobo.LAMBDA_STEPS


def test_restarts_refuse_the_exact_counter():
    history, losses, costs, cost_of = _problem()
    with pytest.raises(ValueError, match="needs cost_model=gp and surrogate=fitted"):
        mobo.sample(history, losses, costs, low=0.42, high=1.0, cost_of=cost_of, lower=0.2,
                    rng=np.random.default_rng(0), surrogate="fitted", acquisition="restarts")


def test_missing_tinygp_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tinygp", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[gp\]'"):
        mobo.surrogates("fitted")
