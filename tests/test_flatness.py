"""Hessian eigenvalues and the gradient second moment against numpy on small problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.pruning_stability import flatness


def _quadratic(seed=0, dim=12):
    """½ xᵀAx over a dict of two tensors, with A symmetric and spectrum known by numpy."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    spectrum = np.array([9.0, 7.0, 5.0, 3.0] + list(np.linspace(1.0, -1.0, dim - 4)))
    a = (q * spectrum) @ q.T
    params = {"a": jnp.zeros((3, 2)), "b": jnp.zeros((dim - 6,))}

    def loss(p):
        x, _ = jax.flatten_util.ravel_pytree(p)
        return 0.5 * x @ jnp.asarray(a, jnp.float32) @ x + jnp.sum(x) * 0.0

    return loss, params, a


def test_hvp_is_the_hessian_times_v():
    loss, params, a = _quadratic()
    hvp, dim = flatness.hvp_fn(loss, params)
    v = np.random.default_rng(1).normal(size=dim).astype(np.float32)
    np.testing.assert_allclose(hvp(jnp.asarray(v)), a @ v, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", flatness.METHODS)
def test_top_eigenvalues_match_numpy(method):
    loss, params, a = _quadratic()
    hvp, dim = flatness.hvp_fn(loss, params)
    expected = np.sort(np.linalg.eigvalsh(a))[::-1][:3]
    if method == "power":
        values, vectors = flatness.power_top(hvp, dim, 3, iterations=500, tolerance=1e-9)
        np.testing.assert_allclose(np.abs(vectors @ vectors.T), np.eye(3), atol=1e-3)
    else:
        values, vectors = flatness.lanczos_top(hvp, dim, 3)
    np.testing.assert_allclose(values, expected, rtol=1e-3)
    np.testing.assert_allclose(vectors @ a, values[:, None] * vectors, atol=2e-3)  # A v = λ v


def test_power_stops_after_the_iteration_budget():
    loss, params, a = _quadratic()
    calls = {"n": 0}
    hvp, dim = flatness.hvp_fn(loss, params)

    def counted(v):
        calls["n"] += 1
        return hvp(v)

    flatness.power_top(counted, dim, 2, iterations=5, tolerance=0.0)
    assert calls["n"] == 10


def test_gradient_second_moment_by_hand():
    # ℓ_i(w) = ½ (w·x_i − y_i)²: ∇ = (w·x_i − y_i) x_i, so ‖∇‖² = r_i² ‖x_i‖².
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = rng.normal(size=10).astype(np.float32)
    w = rng.normal(size=4).astype(np.float32)

    def example_loss(params, images, labels):
        return jnp.mean(0.5 * (images @ params["w"] - labels) ** 2)

    got = flatness.gradient_second_moment(example_loss, {"w": jnp.asarray(w)},
                                          {"image": x, "label": y}, chunk=3)
    expected = np.mean((x @ w - y) ** 2 * (x**2).sum(1))
    assert got == pytest.approx(expected, rel=1e-5)


def test_eigenvector_curves_move_along_each_vector():
    params = {"w": jnp.array([1.0, 2.0])}
    seen = []

    def evaluate(p):
        seen.append(np.asarray(p["w"]))
        return {"eval/accuracy": float(p["w"][0]), "eval/loss": float(p["w"][1])}

    vectors = np.array([[1.0, 0.0], [0.0, 1.0]])
    curves = flatness.eigenvector_curves(evaluate, params, vectors, [-0.4, 0.0, 0.4])
    assert curves["accuracy"][0] == pytest.approx([0.6, 1.0, 1.4])
    assert curves["loss"][1] == pytest.approx([1.6, 2.0, 2.4])
    assert len(seen) == 6
