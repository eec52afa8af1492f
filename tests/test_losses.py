"""Loss and metric functions against hand computations."""

import math

import jax.numpy as jnp
import numpy as np

from lib import losses


def test_cross_entropy_known_values():
    # softmax([0, ln 3]) = [1/4, 3/4]
    logits = jnp.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    ce = losses.softmax_cross_entropy(logits, jnp.array([1, 0]))
    np.testing.assert_allclose(ce, [-math.log(0.75), -math.log(0.25)], rtol=1e-6)


def test_cross_entropy_large_logits_finite():
    ce = losses.softmax_cross_entropy(jnp.array([[1000.0, 0.0]]), jnp.array([1]))
    np.testing.assert_allclose(ce, [1000.0], rtol=1e-6)


def test_topk_correct():
    logits = jnp.array([[0.1, 0.5, 0.2, 0.9], [3.0, 2.0, 1.0, 0.0]])
    labels = jnp.array([1, 3])
    np.testing.assert_array_equal(losses.topk_correct(logits, labels, 1), [0.0, 0.0])
    np.testing.assert_array_equal(losses.topk_correct(logits, labels, 2), [1.0, 0.0])
    np.testing.assert_array_equal(losses.topk_correct(logits, labels, 4), [1.0, 1.0])
