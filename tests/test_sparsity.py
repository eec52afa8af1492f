"""lib.sparsity against hand computations and the spec's worked examples."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import base
from lib import models, optim, sparsity

A = np.array([[0.5, -0.1], [0.3, 0.2]], np.float32)
B = np.array([0.05, -0.4, 0.25], np.float32)
PARAMS = {"a": A, "b": B}
ONES = {"a": np.ones_like(A), "b": np.ones_like(B)}


def test_global_magnitude_removes_ceil_p_r_smallest_jointly():
    # R = 7, n = ceil(0.4·7) = 3: |0.05|, |-0.1|, |0.2| go
    masks = sparsity.magnitude_prune(PARAMS, ONES, 0.4)
    np.testing.assert_array_equal(masks["a"], [[1, 0], [1, 0]])
    np.testing.assert_array_equal(masks["b"], [0, 1, 1])
    assert masks["a"].dtype == np.float32


def test_layerwise_magnitude_prunes_each_tensor_alone():
    # a: n = ceil(0.4·4) = 2 (0.1, 0.2); b: n = ceil(0.4·3) = 2 (0.05, 0.25)
    masks = sparsity.magnitude_prune(PARAMS, ONES, 0.4, scope="layerwise")
    np.testing.assert_array_equal(masks["a"], [[1, 0], [1, 0]])
    np.testing.assert_array_equal(masks["b"], [0, 1, 0])


def test_ties_go_by_flat_index_and_openlth_threshold_removes_one_more():
    params = {"w": np.array([0.3, 0.1, 0.1, 0.1, 0.5], np.float32)}
    ones = {"w": np.ones(5, np.float32)}
    # n = ceil(0.4·5) = 2: the first two of the tied 0.1s
    np.testing.assert_array_equal(sparsity.magnitude_prune(params, ones, 0.4)["w"],
                                  [1, 0, 0, 1, 1])
    distinct = {"w": np.array([0.3, 0.1, 0.2, 0.4, 0.5], np.float32)}
    # open_lth: threshold = sorted value at index n = 2 (0.3), keeps > 0.3: removes n + 1
    np.testing.assert_array_equal(
        sparsity.magnitude_prune(distinct, ones, 0.4, openlth_threshold=True)["w"],
        [0, 0, 0, 1, 1])


def test_pruned_weights_stay_pruned_and_levels_follow_the_remaining_count():
    rng = np.random.default_rng(0)
    params = {"x": rng.normal(size=(40, 30)).astype(np.float32),
              "y": rng.normal(size=(7, 11)).astype(np.float32)}
    masks = {k: np.ones_like(v) for k, v in params.items()}
    remaining = 40 * 30 + 7 * 11
    for _ in range(6):
        new = sparsity.magnitude_prune(params, masks, 0.2)
        for k in masks:
            assert np.all(new[k] <= masks[k])  # nothing revived
        remaining -= math.ceil(0.2 * remaining)
        assert sum(int(m.sum()) for m in new.values()) == remaining
        masks = new
    assert sparsity.sparsity(masks) == pytest.approx(1 - remaining / (40 * 30 + 7 * 11))
    # the survivors are exactly the largest |w| overall
    values = np.concatenate([np.abs(params[k]).ravel() for k in sorted(params)])
    kept = np.concatenate([masks[k].ravel() for k in sorted(params)]) > 0
    assert values[kept].min() > values[~kept].max()


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5])
def test_fraction_outside_unit_interval(fraction):
    with pytest.raises(ValueError, match=rf"pruning fraction={fraction} must lie in \[0, 1\)"):
        sparsity.magnitude_prune(PARAMS, ONES, fraction)


def test_unknown_scope_names_the_choices():
    with pytest.raises(ValueError, match="valid choices: global, layerwise"):
        sparsity.magnitude_prune(PARAMS, ONES, 0.2, scope="per_layer")


def test_random_like_keeps_counts_per_layer_or_in_total():
    masks = sparsity.magnitude_prune(PARAMS, ONES, 0.4)
    layer = sparsity.random_like(masks, np.random.default_rng(1))
    for k in masks:
        assert layer[k].shape == masks[k].shape and layer[k].sum() == masks[k].sum()
    total = sparsity.random_like(masks, np.random.default_rng(1), scope="global")
    assert sum(m.sum() for m in total.values()) == sum(m.sum() for m in masks.values())
    again = sparsity.random_like(masks, np.random.default_rng(1), scope="global")
    jax.tree.map(np.testing.assert_array_equal, total, again)  # seeded


def test_apply_zeroes_exactly_the_masked_entries():
    masks = sparsity.magnitude_prune(PARAMS, ONES, 0.4)
    out = sparsity.apply({**PARAMS, "bias": np.ones(2)}, masks)
    np.testing.assert_array_equal(out["a"], np.array([[0.5, 0.0], [0.3, 0.0]], np.float32))
    np.testing.assert_array_equal(out["bias"], np.ones(2))  # not masked, untouched


def test_prunable_names_are_conv_and_linear_kernels_only():
    c = base.get_config()
    c.model.depth = 8
    model = models.build(c.model, num_classes=10, in_channels=1, rngs=nnx.Rngs(0))
    roles = models.param_roles(model)
    names = sparsity.prunable_names(roles)
    assert "head/kernel" in names and "stem/conv/kernel" in names
    assert not any(n.endswith("bias") or "bn" in n for n in names)
    without_head = [n for n in names if n != "head/kernel"]
    assert sparsity.prunable_names(roles, exclude="^head/") == without_head
    assert sparsity.prunable_names(roles, include="stage1") == [n for n in names if "stage1" in n]
    with pytest.raises(ValueError, match="layer pattern 'stage9' matches no prunable kernel"):
        sparsity.prunable_names(roles, include="stage9")


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_masked_weights_stay_zero_through_momentum_decay_and_adam(name):
    c = base.get_config().optim
    c.name, c.lr, c.weight_decay, c.schedule = name, 0.1, 1e-2, "constant"
    masks = sparsity.magnitude_prune(PARAMS, ONES, 0.5)
    params = {k: jnp.asarray(v) for k, v in sparsity.apply(PARAMS, masks).items()}
    tx, _ = optim.build(c, 100, masks)
    state = tx.init(params)
    key = jax.random.key(0)
    for _ in range(5):
        key, sub = jax.random.split(key)
        grads = {k: jax.random.normal(jax.random.fold_in(sub, i), v.shape)
                 for i, (k, v) in enumerate(sorted(params.items()))}
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    for k in params:
        assert np.all(np.asarray(params[k])[masks[k] == 0] == 0.0), k
        assert np.all(np.asarray(params[k])[masks[k] == 1] != PARAMS[k][masks[k] == 1]), k


# --- filter pruning ------------------------------------------------------------------------


def test_filter_norms_by_hand():
    kernel = np.zeros((1, 2, 1, 3), np.float32)  # two taps, three filters
    kernel[0, :, 0, 0] = [3.0, 4.0]
    kernel[0, :, 0, 1] = [-1.0, 1.0]
    np.testing.assert_allclose(sparsity.filter_norms(kernel), [5.0, math.sqrt(2), 0.0])
    np.testing.assert_allclose(sparsity.filter_norms(kernel, "L1"), [7.0, 2.0, 0.0])


@pytest.mark.parametrize("gamma, beta", [(1.0, 0.0), (0.5, 0.3), (2.0, -1.0), (-0.7, 0.2),
                                         (0.3, -2.0)])
def test_expected_bn_output_against_numerical_integration(gamma, beta):
    z = np.linspace(-12, 12, 400_001)
    density = np.exp(-z**2 / 2) / math.sqrt(2 * math.pi)
    expected = np.trapezoid(np.maximum(gamma * z + beta, 0.0) * density, z)
    got = sparsity.expected_bn_output(np.array([gamma]), np.array([beta]))[0]
    assert got == pytest.approx(expected, abs=1e-7)


def test_expected_bn_output_limits_and_alt_variant():
    out = sparsity.expected_bn_output(np.array([0.0, 0.0]), np.array([0.4, -0.4]))
    np.testing.assert_allclose(out, [0.4, 0.0])  # γ = 0: max(β, 0)
    # EBN_alt: γ in place of |γ|; γ = -1, β = 0 gives φ(0)·(-1)
    alt = sparsity.expected_bn_output(np.array([-1.0, 1.0]), np.array([0.0, 0.0]), use_abs=False)
    np.testing.assert_allclose(alt, [-1 / math.sqrt(2 * math.pi), 1 / math.sqrt(2 * math.pi)])
    # γ = −2, β = 1: α = −β/γ = 0.5, E_alt = (1 − Φ(0.5))·1 + φ(0.5)·(−2) = 0.308538 − 0.704131
    alt = sparsity.expected_bn_output(np.array([-2.0]), np.array([1.0]), use_abs=False)
    np.testing.assert_allclose(alt, [0.3085375 - 2 * 0.3520653], atol=1e-6)


def test_select_filters_targets():
    scores = np.array([0.5, 0.1, 0.9, 0.1, 0.7])
    alive = np.array([True, True, True, True, False])
    np.testing.assert_array_equal(sparsity.select_filters(scores, alive, 2, "S"), [1, 3])
    np.testing.assert_array_equal(sparsity.select_filters(scores, alive, 2, "L"), [0, 2])
    chosen = sparsity.select_filters(scores, alive, 3, "R", np.random.default_rng(0))
    assert len(set(chosen)) == 3 and 4 not in chosen
    with pytest.raises(ValueError, match="cannot prune 5 filters: only 4 are unpruned"):
        sparsity.select_filters(scores, alive, 5, "S")
    with pytest.raises(ValueError, match="valid choices: S, L, R"):
        sparsity.select_filters(scores, alive, 1, "largest")


@pytest.mark.parametrize("filters, fraction, start, end, period, epochs, kept", [
    (512, 0.3, 3, 150, 40, [3, 43, 83, 123], [474, 436, 398, 359]),
    (512, 0.9, 6, 275, 40, [6, 46, 86, 126, 166, 206, 246], [447, 381, 315, 250, 184, 118, 52]),
    (16, 0.1, 40, 100, 30, [40, 70, 100], [16, 16, 15]),  # the first event removes nothing
])
def test_filter_schedule_worked_examples(filters, fraction, start, end, period, epochs, kept):
    """pruning_stability.md §2's test values."""
    schedule = sparsity.filter_schedule(filters, fraction, start, end, period)
    assert [e for e, _ in schedule] == epochs
    assert list(filters - np.cumsum([n for _, n in schedule])) == kept


@pytest.mark.parametrize("period, rate", [(40, 12.9), (4, 1.3)])
def test_iterative_pruning_rate(period, rate):
    """VGG-11 at f = 0.9 from epoch 6 to 275: rate = f / N."""
    events = sparsity.event_epochs(6, 275, period)
    assert round(100 * 0.9 / len(events), 1) == rate
