"""Self-supervised losses, the linear probe and the shared SSL view path against independent
computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from flax import nnx
from helpers import digits_config

from configs import base
from lib import config as config_lib
from lib import train
from lib.data import device_augment
from lib.evaluators import probe
from lib.models import layers
from lib.ssl import losses, simclr


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


# The shared view path of lib/ssl/simclr.py: projector BatchNorm, input normalisation, and
# which colour recipe each view gets.

def test_projector_batchnorm_matches_numpy():
    x = np.random.default_rng(2).normal(size=(8, 5)).astype(np.float32) * 2 + 1
    head = simclr.Projector(5, (6, 3), batchnorm=layers.LayerSpec(bn_init="fixed"),
                            rngs=nnx.Rngs(0))
    w1, b1 = (np.asarray(v[...], np.float64) for v in (head.layers[0].kernel,
                                                          head.layers[0].bias))
    w2, b2 = (np.asarray(v[...], np.float64) for v in (head.layers[1].kernel,
                                                          head.layers[1].bias))
    h = x.astype(np.float64) @ w1 + b1
    h = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5)  # γ 1, β 0, biased batch variance
    expected = np.maximum(h, 0) @ w2 + b2
    np.testing.assert_allclose(head(jnp.asarray(x), train=True), expected, rtol=1e-4,
                               atol=1e-5)
    plain = simclr.Projector(5, (6, 3), rngs=nnx.Rngs(0))
    assert len(plain.norms) == 0 and len(head.norms) == 1


class _Sum(nnx.Module):
    """An 'encoder' whose representation is the per-channel mean of its input."""

    def __call__(self, x, *, train=False):
        return x.mean(axis=(1, 2))


def test_input_normalisation_happens_inside_the_network():
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 2.0)
    net = simclr.Contrastive(_Sum(), simclr.Projector(3, (2,), rngs=nnx.Rngs(0)),
                             (mean, std))
    x = np.random.default_rng(3).uniform(size=(4, 2, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(net.represent(jnp.asarray(x)),
                               ((x - np.array(mean)) / np.array(std)).mean(axis=(1, 2)),
                               rtol=1e-5)


def _ssl_config(**ssl):
    c = config_lib.updated(base.get_config(), {"data.normalization": "none"})
    c.ssl.update(ssl)
    return c


def test_each_view_gets_its_recipe_and_the_last_repeats(monkeypatch):
    """Recipes that mark their view: view 0 gets the first, every later view (over all
    groups) and BG_Swaps' negative (a positive-side image) the second."""
    monkeypatch.setitem(device_augment.RECIPES, "marks", (lambda k, x: x + 1,
                                                           lambda k, x: x * 0 + 7))
    task = simclr.SimCLR(_ssl_config(color="marks"))
    groups = [{"image": jnp.zeros((3, 2, 4, 4, 1))}, {"image": jnp.zeros((3, 3, 2, 2, 1))}]
    out = task.view_images({"views": groups}, jax.random.key(0))
    np.testing.assert_array_equal(out[0][:, 0], 1)
    np.testing.assert_array_equal(out[0][:, 1], 7)
    np.testing.assert_array_equal(out[1], 7)
    negative = task.negative_image({"negative": jnp.zeros((3, 4, 4, 1))}, jax.random.key(1))
    np.testing.assert_array_equal(negative, 7)
    assert simclr.SimCLR(_ssl_config()).view_images({"views": groups}, None)[0] is \
        groups[0]["image"]


def test_byol_views_differ_in_blur_and_solarisation_as_published():
    first, second = device_augment.RECIPES["byol"]
    assert (first.p_blur, first.p_solarize, second.p_blur, second.p_solarize) == (
        1.0, 0.0, 0.1, 0.2)
    assert first.jitter == second.jitter == (0.4, 0.4, 0.2, 0.1)


@pytest.mark.parametrize("overrides, message", [
    ({"ssl.color": "strong"}, "ssl.color='strong'; valid choices: '' \\(none\\), simclr"),
    ({"ssl.color": "simclr", "data.normalization": "dataset"},
     "ssl.color='simclr' colours \\[0, 1\\] pixels on device, but data.normalization='dataset'"),
    ({"ssl.input_normalization": "imagenet", "data.normalization": "none"},
     "ssl.input_normalization='imagenet' has 3 channels but digits images have 1"),
    ({"ssl.input_normalization": "imgnet", "data.normalization": "none"},
     "ssl.input_normalization='imgnet'; valid choices: none, imagenet"),
])
def test_bad_view_settings_are_refused_before_anything_is_written(tmp_path, overrides,
                                                                   message):
    config = digits_config(steps=2, **{"task": "lib.ssl.simclr:SimCLR", "data.augment": "views",
                                       "data.views": (2,), "data.view_sizes": (8,),
                                       "ssl.projector_widths": (8,), **overrides})
    with pytest.raises(config_lib.ConfigError, match=message):
        train.run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
