"""Loss and metric functions against hand computations."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from lib import losses


def test_cross_entropy_known_values():
    # softmax([0, ln 3]) = [1/4, 3/4]
    logits = jnp.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    ce = losses.softmax_cross_entropy(logits, jnp.array([1, 0]))
    np.testing.assert_allclose(ce, [-math.log(0.75), -math.log(0.25)], rtol=1e-6)


def test_cross_entropy_large_logits_finite():
    ce = losses.softmax_cross_entropy(jnp.array([[1000.0, 0.0]]), jnp.array([1]))
    np.testing.assert_allclose(ce, [1000.0], rtol=1e-6)


def test_smoothed_cross_entropy_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]; ε = 0.2 over K = 2: targets 0.9 / 0.1
    logits = jnp.array([[0.0, math.log(3.0)]])
    got = losses.smoothed_cross_entropy(logits, jnp.array([1]), 0.2)
    np.testing.assert_allclose(got, [-(0.9 * math.log(0.75) + 0.1 * math.log(0.25))], rtol=1e-6)
    np.testing.assert_allclose(losses.smoothed_cross_entropy(logits, jnp.array([1]), 0.0),
                               losses.softmax_cross_entropy(logits, jnp.array([1])), rtol=1e-6)


def test_topk_correct():
    logits = jnp.array([[0.1, 0.5, 0.2, 0.9], [3.0, 2.0, 1.0, 0.0]])
    labels = jnp.array([1, 3])
    np.testing.assert_array_equal(losses.topk_correct(logits, labels, 1), [0.0, 0.0])
    np.testing.assert_array_equal(losses.topk_correct(logits, labels, 2), [1.0, 0.0])
    np.testing.assert_array_equal(losses.topk_correct(logits, labels, 4), [1.0, 1.0])


def test_token_cross_entropy_with_padding_and_label_smoothing_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7)).astype(np.float32)  # [batch, tokens, vocab]
    targets = rng.integers(0, 7, size=(2, 5))
    weights = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)  # padding 0
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    eps, vocab = 0.1, 7
    q = np.full(logits.shape, eps / (vocab - 1))  # fairseq: 1 − ε on the target, ε/(V−1) else
    np.put_along_axis(q, targets[..., None], 1 - eps, axis=-1)
    by_hand = -(q * log_p).sum(-1)
    got = losses.token_cross_entropy(jnp.asarray(logits), jnp.asarray(targets), eps)
    np.testing.assert_allclose(got, by_hand, rtol=1e-5)
    np.testing.assert_allclose(losses.token_cross_entropy(logits, targets),
                               -np.take_along_axis(log_p, targets[..., None], -1)[..., 0],
                               rtol=1e-5)
    mean = losses.masked_mean(got, jnp.asarray(weights))
    np.testing.assert_allclose(mean, (by_hand * weights).sum() / 8, rtol=1e-5)
    assert float(losses.masked_mean(got, jnp.zeros_like(weights))) == 0.0


def test_sigmoid_bce_against_numpy():
    z = np.array([-30.0, -2.0, 0.0, 0.5, 40.0])
    y = np.array([1.0, 0.0, 1.0, 0.3, 0.0])
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    with np.errstate(divide="ignore"):
        direct = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    direct[-1] = 40.0  # log(1 − σ(40)) underflows in float64: the exact value is −40
    direct[0] = 30.0 + np.log1p(np.exp(-30.0))
    np.testing.assert_allclose(losses.sigmoid_binary_cross_entropy(jnp.array(z), jnp.array(y)),
                               direct, rtol=1e-6)


def test_smooth_l1_and_squared_error_by_hand():
    p = jnp.array([0.0, 0.5, 3.0, -2.0])
    t = jnp.array([0.0, 0.0, 1.0, 0.0])
    # |d| = 0, 0.5, 2, 2 with β = 1: 0, 0.125, 1.5, 1.5
    np.testing.assert_allclose(losses.smooth_l1(p, t), [0.0, 0.125, 1.5, 1.5])
    # β = 4: all quadratic, d²/8
    np.testing.assert_allclose(losses.smooth_l1(p, t, beta=4.0), [0.0, 0.03125, 0.5, 0.5])
    np.testing.assert_allclose(losses.squared_error(p, t), [0.0, 0.25, 4.0, 4.0])


def test_gaussian_kl_closed_form_and_monte_carlo():
    mean = np.array([[0.0, 0.0], [1.0, -2.0]])
    log_var = np.array([[0.0, 0.0], [np.log(4.0), np.log(0.25)]])
    # per dimension: ½(σ² + μ² − 1 − ln σ²): (4 + 1 − 1 − ln 4)/2 + (0.25 + 4 − 1 + ln 4)/2
    expected = [0.0, (4.0 - np.log(4.0)) / 2 + (3.25 + np.log(4.0)) / 2]
    np.testing.assert_allclose(losses.gaussian_kl(jnp.array(mean), jnp.array(log_var)),
                               expected, rtol=1e-6)
    rng = np.random.default_rng(0)
    z = mean[1] + np.exp(0.5 * log_var[1]) * rng.normal(size=(200_000, 2))
    log_q = -0.5 * np.sum((z - mean[1]) ** 2 / np.exp(log_var[1]) + log_var[1], -1)
    log_p = -0.5 * np.sum(z**2, -1)
    assert np.mean(log_q - log_p) == pytest.approx(expected[1], rel=0.01)
