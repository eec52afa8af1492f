"""Class selectivity, FGSM/PGD, PCA dimensionality and kNN against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.evaluators import adversarial, dimensionality, knn, selectivity


def test_selectivity_by_hand():
    # 3 classes, 2 examples each; unit 0: class means 4, 1, 1 → (4 − 1)/(4 + 1) = 0.6;
    # unit 1: class means 2, 2, 2 → 0; unit 2 dead → 0 (no NaN).
    acts = jnp.array([[3.0, 2, 0], [5, 2, 0], [1, 1, 0], [1, 3, 0], [0, 2, 0], [2, 2, 0]])
    labels = jnp.array([0, 0, 1, 1, 2, 2])
    si = selectivity.selectivity(acts, labels, 3, eps=0.0)
    np.testing.assert_allclose(si, [0.6, 0.0, 0.0], atol=1e-7)
    assert not np.any(np.isnan(np.asarray(selectivity.selectivity(acts, labels, 3))))


def test_one_class_unit_and_absent_classes():
    acts = jnp.array([[2.0], [0.0], [0.0], [0.0]])
    labels = jnp.array([0, 1, 2, 2])
    # only class 0 drives the unit: SI = 2 / (2 + ε)
    assert float(selectivity.selectivity(acts, labels, 5)[0]) == pytest.approx(
        2 / (2 + 1e-7), rel=1e-7)
    # classes 3 and 4 are absent: μ_−max is the mean over classes 1 and 2 only
    acts = jnp.array([[4.0], [2.0], [0.0], [0.0]])
    assert float(selectivity.selectivity(acts, labels, 5, eps=0)[0]) == pytest.approx(
        (4 - 1) / (4 + 1))
    # one class present: defined as 0, not NaN
    assert float(selectivity.selectivity(acts, jnp.zeros(4, int), 5)[0]) == 0.0


def test_spatial_mean_and_layer_names():
    maps = jnp.ones((2, 3, 3, 4)) * jnp.arange(4.0)
    np.testing.assert_allclose(selectivity.unit_activations(maps), [[0, 1, 2, 3]] * 2)
    with pytest.raises(ValueError, match=r"\['blok1'\] match no layer; the model's layers: a, b"):
        selectivity.select_layers({"a": maps, "b": maps}, ["blok1"])


@pytest.mark.parametrize("alpha", [-1.0, 1.0])
def test_a_regularizer_step_moves_selectivity_with_the_sign_of_alpha(alpha):
    """loss = −α·μ̄_SI of relu(xW): one gradient step on W lowers SI for α < 0, raises it for
    α > 0."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(60, 5)), jnp.float32)
    labels = jnp.asarray(np.repeat(np.arange(3), 20))
    x = x + jax.nn.one_hot(labels, 5)  # some class structure
    w = jnp.asarray(rng.normal(size=(5, 8)), jnp.float32)

    def si(w):
        return selectivity.mean_selectivity({"h": jax.nn.relu(x @ w)}, labels, 3)

    grad = jax.grad(lambda w: -alpha * si(w))(w)
    after = si(w - 0.05 * grad)
    assert (after < si(w)) if alpha < 0 else (after > si(w))


def _linear_loss(w, b):
    def loss(x, y):
        logits = x @ w + b
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
    return loss


def test_fgsm_against_the_hand_derived_step():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    x = rng.uniform(0.2, 0.8, size=(5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(3)[y]) @ w.T / 5  # ∂ mean CE / ∂x
    expected = np.clip(x + 0.1 * np.sign(grad), 0, 1)
    got = adversarial.fgsm(_linear_loss(jnp.asarray(w), jnp.asarray(b)), jnp.asarray(x),
                           jnp.asarray(y), 0.1)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="ε=-0.1 must be ≥ 0"):
        adversarial.fgsm(_linear_loss(w, b), x, y, -0.1)


@pytest.fixture(scope="module")
def trained_linear():
    """Logistic regression on 2 separable Gaussian blobs in [0, 1]^6, trained by GD."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    x = np.clip(0.5 + 0.15 * (2 * y[:, None] - 1) + 0.05 * rng.normal(size=(200, 6)), 0, 1)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y)
    w, b = jnp.zeros((6, 2)), jnp.zeros(2)
    for _ in range(300):
        gw, gb = jax.grad(lambda w, b: _linear_loss(w, b)(x, y), argnums=(0, 1))(w, b)
        w, b = w - 2.0 * gw, b - 2.0 * gb
    return x, y, w, b


@pytest.mark.parametrize("norm, eps", [("linf", 0.15), ("l2", 0.4)])
def test_pgd_stays_in_the_ball_and_lowers_accuracy(trained_linear, norm, eps):
    x, y, w, b = trained_linear
    loss = _linear_loss(w, b)

    def accuracy(x):
        return float(jnp.mean(jnp.argmax(x @ w + b, 1) == y))

    assert accuracy(x) > 0.95
    x_adv = jax.jit(lambda x: adversarial.pgd(loss, x, y, eps, 10, eps / 4, norm,
                                              key=jax.random.key(0)))(x)
    delta = np.asarray(x_adv - x)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert np.all(size <= eps + 1e-5)
    assert np.all((np.asarray(x_adv) >= 0) & (np.asarray(x_adv) <= 1))
    assert accuracy(x_adv) < accuracy(x) - 0.3


def test_pca_dimension_of_a_known_rank():
    rng = np.random.default_rng(0)
    low = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 20))  # rank 3 after centring
    assert dimensionality.pca_dimension(low, 0.999999) == 3
    # against numpy: variances 9, 4, 1 (+ nothing): 95 % needs 3 components, 60 % one
    x = np.zeros((4, 3))
    x[:, 0], x[:, 1], x[:, 2] = [3, -3, 3, -3], [2, 2, -2, -2], [1, -1, -1, 1]
    assert dimensionality.pca_dimension(x, 0.6) == 1
    assert dimensionality.pca_dimension(x, 0.9) == 2  # (9 + 4)/14 = 0.93
    assert dimensionality.pca_dimension(x, 0.95) == 3
    assert dimensionality.pca_dimension(np.ones((5, 2))) == 0


def test_pca_dimension_of_summed_batch_moments():
    """The covariance from moments summed over padded batches gives the known spectrum."""
    x = np.zeros((4, 3))
    x[:, 0], x[:, 1], x[:, 2] = [3, -3, 3, -3], [2, 2, -2, -2], [1, -1, -1, 1]
    x = x + 100.0  # an offset the centring must remove
    padded = np.concatenate([x, np.full((2, 3), 7.0)])  # two padding rows, weight 0
    weights = np.array([1, 1, 1, 1, 0, 0], np.float32)
    parts = [dimensionality.moments(jnp.asarray(padded[i:i + 3], jnp.float32),
                                    jnp.asarray(weights[i:i + 3])) for i in (0, 3)]
    total = [np.sum([np.asarray(p[k], np.float64) for p in parts], 0) for k in range(3)]
    assert total[0] == 4
    for threshold, expected in ((0.6, 1), (0.9, 2), (0.95, 3)):
        assert dimensionality.pca_dimension_of_moments(*total, threshold) == expected
    rng = np.random.default_rng(1)
    low = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 30))
    m = dimensionality.moments(jnp.asarray(low, jnp.float32), jnp.ones(300))
    assert dimensionality.pca_dimension_of_moments(*m, 0.999) == \
        dimensionality.pca_dimension(low, 0.999) == 4
    assert dimensionality.pca_dimension_of_moments(0, np.zeros(3), np.zeros((3, 3))) == 0


def test_released_corruption_sets_pair_up_only_when_aligned(caplog):
    """robustness.evaluate on a linear model: a released copy in the clean order gives Δ
    dimensionalities; one whose second batch is in another order (labels differ) is still
    scored, without Δ; one of another length is refused before any work."""
    from configs.base import get_config
    from lib.evaluators import robustness

    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)

    def apply(x):
        hidden = jax.nn.relu(x.reshape(len(x), -1) @ w)
        return hidden, {"hidden": hidden}

    def batch(images, labels):
        return {"image": jnp.asarray(images, jnp.float32), "label": jnp.asarray(labels),
                "mask": jnp.ones(len(labels))}

    images = rng.uniform(size=(2, 8, 1, 6, 1))
    labels = rng.integers(0, 3, size=(2, 8))
    clean = [batch(images[i], labels[i]) for i in range(2)]
    darker = [batch(images[i] / 2, labels[i]) for i in range(2)]
    shuffled = [clean[0], batch(images[1][::-1], labels[1][::-1])]
    assert not np.array_equal(labels[1], labels[1][::-1])
    sets = {"dark_1": darker, "shuffled_1": shuffled, "short_1": darker[:1]}
    cfg = get_config().robustness
    cfg.update({"corruption_source": "released", "corruptions": ("dark", "shuffled"),
                "severities": (1,), "fgsm_eps": (), "noise_sigmas": ()})
    out = robustness.evaluate(apply, clean, cfg, ("hidden",), 3,
                              released=lambda name, s: sets[f"{name}_{s}"])
    by_hand = np.mean(np.argmax(np.maximum(images.reshape(16, 6) / 2 @ np.asarray(w), 0), -1)
                      == labels.reshape(16))
    assert out["accuracy/corruption/dark_1"] == pytest.approx(by_hand)
    assert "pca_dim_change/corruption_dark_1/hidden" in out
    assert out["accuracy/corruption/shuffled_1"] == pytest.approx(out["clean_accuracy"])
    assert "pca_dim_change/corruption_shuffled_1/hidden" not in out
    assert "do not pair up" in caplog.text
    cfg.corruptions = ("short",)
    with pytest.raises(ValueError, match="short_1 has 1 batches, the clean split 2"):
        robustness.evaluate(apply, clean, cfg, ("hidden",), 3,
                            released=lambda name, s: sets[f"{name}_{s}"])


def test_perturbations_of_the_shared_registry_by_hand():
    """robustness.perturbations: accuracy on lib.perturb's transforms; a brightness of 0 (k = 9
    of brightness_decrease) makes every image black, so a linear model predicts its bias."""
    from configs.base import get_config
    from lib.evaluators import robustness

    rng = np.random.default_rng(0)
    w, b = jnp.asarray(rng.normal(size=(6, 3))), jnp.asarray([0.0, 1.0, 0.0])

    def apply(x):
        logits = x.reshape(len(x), -1) @ w + b
        return logits, {"logits": logits}

    images = rng.uniform(size=(8, 1, 6, 1))
    labels = rng.integers(0, 3, size=8)
    batch = {"image": jnp.asarray(images, jnp.float32), "label": jnp.asarray(labels),
             "mask": jnp.ones(8)}
    cfg = get_config().robustness
    cfg.update({"fgsm_eps": (), "noise_sigmas": (),
                "perturbations": ("brightness_decrease:9", "translateX:0")})
    out = robustness.evaluate(apply, [batch], cfg, ("logits",), 3)
    assert out["accuracy/brightness_decrease_k9"] == pytest.approx(np.mean(labels == 1))
    assert out["accuracy/translateX_k0"] == pytest.approx(out["clean_accuracy"])
    for bad, message in (("rotate", "write 'kind:k'"), ("blur:2", "unknown transformation"),
                         ("rotate:12", "magnitude index 12")):
        cfg.perturbations = (bad,)
        with pytest.raises(ValueError, match=message):
            robustness.evaluate(apply, [batch], cfg, ("logits",), 3)


def test_unit_gradient_norms_and_variability_by_hand():
    """a_u(x) = relu(x·w_u): ∂a_u/∂x = w_u where x·w_u > 0, else 0, so the norms are ‖w_u‖ or 0
    per example; their coefficient of variation over units and real examples by numpy."""
    from lib.evaluators import gradients

    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 4))
    x = rng.normal(size=(6, 5))
    mask = np.array([1, 1, 1, 1, 1, 0], np.float32)
    units = gradients.chosen_units(4, 3)
    np.testing.assert_array_equal(units, [0, 2, 3])
    np.testing.assert_array_equal(gradients.chosen_units(4, 9), [0, 1, 2, 3])
    norms = gradients.unit_gradient_norms(
        lambda v: jax.nn.relu(v @ jnp.asarray(w, jnp.float32)), jnp.asarray(x, jnp.float32),
        units)
    expected = (x @ w > 0).T[units] * np.linalg.norm(w, axis=0)[units, None]
    np.testing.assert_allclose(norms, expected, rtol=1e-5)
    mean, cv = gradients.variability(*gradients.moments(norms, jnp.asarray(mask)))
    real = expected[:, :5]
    assert mean == pytest.approx(real.mean(), rel=1e-5)
    assert cv == pytest.approx(real.std() / real.mean(), rel=1e-4)
    assert gradients.variability(3, 0.0, 0.0) == (0.0, 0.0)


def test_knn_temperature_decides_between_one_close_and_two_far_neighbours():
    # the test point (1, 0); train: class 1 at cos 0.9, class 0 twice at cos 0.6 (k = 3)
    train = np.array([[0.9, np.sqrt(1 - 0.81)], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0]])
    labels = np.array([1, 0, 0, 1])
    test = np.array([[2.0, 0.0]])  # not unit length: kNN normalises
    # weights exp(0.9/T) vs 2·exp(0.6/T): class 1 wins iff T < 0.3 / ln 2 ≈ 0.433
    assert knn.predict(train, labels, test, 2, k=3, temperature=0.07)[0] == 1
    assert knn.predict(train, labels, test, 2, k=3, temperature=1.0)[0] == 0
    # k = 1: the nearest neighbour alone
    assert knn.predict(train, labels, test, 2, k=1, temperature=1.0)[0] == 1


def test_knn_matches_a_numpy_loop():
    rng = np.random.default_rng(0)
    train, labels = rng.normal(size=(300, 8)), rng.integers(0, 5, 300)
    test, test_labels = rng.normal(size=(70, 8)), rng.integers(0, 5, 70)
    k, t = 20, 0.1
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    expected = []
    for x in test:
        sim = unit @ (x / np.linalg.norm(x))
        top = np.argsort(-sim)[:k]
        votes = np.zeros(5)
        for j in top:
            votes[labels[j]] += np.exp(sim[j] / t)
        expected.append(np.argmax(votes))
    got = knn.predict(train, labels, test, 5, k=k, temperature=t, chunk=32)  # chunks: 32, 32, 6
    np.testing.assert_array_equal(got, expected)
    assert knn.accuracy(train, labels, test, test_labels, 5, k=k, temperature=t) == \
        pytest.approx(np.mean(np.array(expected) == test_labels))
    with pytest.raises(ValueError, match="k ≥ 1 and temperature > 0"):
        knn.predict(train, labels, test, 5, k=0)
