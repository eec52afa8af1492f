"""lib/slim/sandwich.py against numpy: the distillation loss, and one sandwich step's loss on
a two-layer masked network written out by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from lib.slim import sandwich


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_distillation_is_the_cross_entropy_to_the_teachers_softmax():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(2, 5, 4))
    p = np.exp(_log_softmax(teacher))
    expected = -np.mean(np.sum(p * _log_softmax(student), -1))
    got = float(sandwich.distillation(jnp.asarray(teacher), jnp.asarray(student)))
    assert got == pytest.approx(expected, rel=1e-6)
    # at student = teacher it is the teacher's entropy
    entropy = -np.mean(np.sum(p * np.log(p), -1))
    assert float(sandwich.distillation(jnp.asarray(teacher), jnp.asarray(teacher))) == \
        pytest.approx(entropy, rel=1e-6)


class TwoLayer:
    """x → relu(x·W1) masked by dim 'h' → ·W2: a slimmable net in the models' interface."""

    channels = {"h": 3}

    def __init__(self, w1, w2):
        self.w1, self.w2 = jnp.asarray(w1), jnp.asarray(w2)

    def dims(self):
        return ["h"]

    def __call__(self, x, *, train, masks=None):
        h = jnp.maximum(x @ self.w1, 0)
        if masks is not None:
            h = h * masks["h"]
        return h @ self.w2


def test_sandwich_loss_is_the_full_cross_entropy_plus_each_rows_distillation():
    rng = np.random.default_rng(1)
    w1, w2, x = rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=(6, 2))
    y = np.array([0, 1, 2, 3, 0, 1])
    rows = np.array([[2], [1]])
    total, metrics = sandwich.sandwich_loss(TwoLayer(w1, w2), {
        "image": jnp.asarray(x), "label": jnp.asarray(y)}, jnp.asarray(rows), 0.1)

    hidden = np.maximum(x @ w1, 0)
    full = hidden @ w2
    target = np.full((6, 4), 0.1 / 4) + 0.9 * np.eye(4)[y]  # smoothing 0.1 over 4 classes
    ce = -np.mean(np.sum(target * _log_softmax(full), -1))
    p = np.exp(_log_softmax(full))
    kds = [-np.mean(np.sum(p * _log_softmax((hidden * (np.arange(3) < k)) @ w2), -1))
           for k in rows[:, 0]]
    assert float(metrics["loss_full"]) == pytest.approx(ce, rel=1e-5)
    assert float(metrics["kd_0"]) == pytest.approx(kds[0], rel=1e-5)
    assert float(metrics["loss_smallest"]) == pytest.approx(kds[1], rel=1e-5)
    assert float(total) == pytest.approx(ce + sum(kds), rel=1e-5)
    assert float(metrics["accuracy"]) == pytest.approx(np.mean(full.argmax(-1) == y))
