"""Self-supervised losses and the linear probe against independent computations."""

import numpy as np
import pytest
import scipy.optimize

from lib.evaluators import probe
from lib.ssl import losses


def _nt_xent_numpy(z1, z2, tau, extra=None, on=None):
    """Row by row: −log softmax of the partner among every other view (and the extra)."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    b = len(z1)
    out = []
    for i in range(2 * b):
        partner = (i + b) % (2 * b)
        sims = [z[i] @ z[j] / tau for j in range(2 * b) if j != i]
        pos = z[i] @ z[partner] / tau
        if extra is not None and i < b and on[i]:
            e = extra[i] / np.linalg.norm(extra[i])
            sims.append(z[i] @ e / tau)
        out.append(np.log(np.sum(np.exp(sims))) - pos)
    return np.array(out)


@pytest.mark.parametrize("with_extra", [False, True])
def test_nt_xent_matches_numpy(with_extra):
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5)) * 3  # scale must not matter
    extra = rng.normal(size=(6, 5)) if with_extra else None
    on = np.array([1, 0, 1, 1, 0, 1], np.float32) if with_extra else None
    got = losses.nt_xent(z1.astype(np.float32), z2.astype(np.float32), 0.2,
                         None if extra is None else extra.astype(np.float32), on)
    np.testing.assert_allclose(got, _nt_xent_numpy(z1, z2, 0.2, extra, on), rtol=1e-4)


def test_nt_xent_extra_negative_only_raises_the_anchor_rows():
    rng = np.random.default_rng(1)
    z1, z2 = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(2))
    plain = np.asarray(losses.nt_xent(z1, z2, 0.5))
    with_neg = np.asarray(losses.nt_xent(z1, z2, 0.5, z1.copy(), np.ones(4)))  # neg = anchor
    assert np.all(with_neg[:4] > plain[:4]) and np.array_equal(with_neg[4:], plain[4:])


def test_probe_reaches_the_objectives_optimum():
    """Adam's full-batch fit against scipy's L-BFGS on the same objective, written in numpy."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 3))).argmax(1)
    y = np.where(rng.random(200) < 0.2, (y + 1) % 3, y)  # 20 % label noise: a finite optimum
    l2 = 1e-2

    def numpy_objective(flat):
        w, b = flat[:12].reshape(4, 3), flat[12:]
        logits = x @ w + b
        logits = logits - logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -logp[np.arange(200), y].mean() + l2 * np.sum(w ** 2)

    best = scipy.optimize.minimize(numpy_objective, np.zeros(15), method="L-BFGS-B").fun
    params = probe.fit_softmax(x, y, 3, steps=3000, lr=1e-2, l2=l2)
    ours = numpy_objective(np.concatenate([params["w"].ravel(), params["b"]]))
    assert ours == pytest.approx(best, abs=1e-4)
    logits = x @ params["w"] + params["b"]
    assert probe.accuracy(params, x, y) == np.mean(logits.argmax(1) == y)


def test_standardizer_uses_the_fit_statistics():
    train = np.array([[0.0, 10.0], [2.0, 10.0]])
    scale = probe.Standardizer.fit(train)
    np.testing.assert_allclose(scale(np.array([[1.0, 10.0], [3.0, 11.0]])),
                               [[0.0, 0.0], [2.0, 1e6]], rtol=1e-6)
