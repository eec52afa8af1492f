"""Schedules, optimizer updates and trainable subsets against hand computations."""

import numpy as np
import pytest
from flax import nnx

from configs import base
from lib import models, optim
from lib.config import ConfigError


def _optim_cfg(**kw):
    c = base.get_config().optim
    for k, v in kw.items():
        c[k] = v
    return c


def test_step_schedule_with_warmup():
    cfg = _optim_cfg(lr=0.4, milestones=(10, 20), decay_factor=0.1, warmup_steps=4)
    lr = optim.learning_rate_schedule(cfg, 30)
    expected = {0: 0.0, 2: 0.2, 4: 0.4, 9: 0.4, 10: 0.04, 19: 0.04, 20: 0.004, 29: 0.004}
    for t, v in expected.items():
        assert float(lr(t)) == pytest.approx(v, rel=1e-6), t


def test_cosine_schedule():
    cfg = _optim_cfg(lr=1.0, schedule="cosine", cosine_final_fraction=0.0)
    lr = optim.learning_rate_schedule(cfg, 100)
    assert float(lr(0)) == pytest.approx(1.0)
    assert float(lr(50)) == pytest.approx(0.5, abs=1e-6)
    assert float(lr(100)) == pytest.approx(0.0, abs=1e-6)


def _run(tx, w, grads):
    state = tx.init(w)
    for g in grads:
        updates, state = tx.update(g, state, w)
        w = {k: w[k] + updates[k] for k in w}
    return w


def test_sgd_momentum_coupled_weight_decay_matches_pytorch_form():
    # PyTorch SGD: g += wd·w; buf = μ·buf + g; w -= lr·buf
    tx, _ = optim.build(_optim_cfg(lr=0.1, momentum=0.9, weight_decay=0.1, schedule="constant"), 10)
    grads = [{"w": np.array([0.5])}, {"w": np.array([-0.2])}]
    w_hand, buf = 1.0, 0.0
    for g in (0.5, -0.2):
        buf = 0.9 * buf + g + 0.1 * w_hand
        w_hand -= 0.1 * buf
    out = _run(tx, {"w": np.array([1.0])}, grads)
    np.testing.assert_allclose(out["w"], [w_hand], rtol=1e-6)


def test_nesterov_matches_pytorch_form():
    # PyTorch nesterov: buf = μ·buf + g; w -= lr·(g + μ·buf)
    tx, _ = optim.build(_optim_cfg(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0,
                                   schedule="constant"), 10)
    w_hand, buf = 1.0, 0.0
    for g in (0.5, -0.2):
        buf = 0.9 * buf + g
        w_hand -= 0.1 * (g + 0.9 * buf)
    out = _run(tx, {"w": np.array([1.0])}, [{"w": np.array([0.5])}, {"w": np.array([-0.2])}])
    np.testing.assert_allclose(out["w"], [w_hand], rtol=1e-6)


def test_cosine_schedule_with_warmup():
    cfg = _optim_cfg(lr=1.0, schedule="cosine", warmup_steps=10, cosine_final_fraction=0.1)
    lr = optim.learning_rate_schedule(cfg, 110)
    assert float(lr(5)) == pytest.approx(0.5)
    assert float(lr(10)) == pytest.approx(1.0)
    # halfway through the 100 cosine steps: 0.1 + 0.9 · (1 + cos(π/2)) / 2 = 0.55
    assert float(lr(60)) == pytest.approx(0.55, abs=1e-6)
    assert float(lr(110)) == pytest.approx(0.1, abs=1e-6)


def test_weight_decay_exclude_regex():
    tx, _ = optim.build(_optim_cfg(lr=0.1, momentum=0.0, weight_decay=0.5,
                                   weight_decay_exclude="bn/", schedule="constant"), 10)
    zero = {"conv/kernel": np.zeros(1, np.float32), "bn/scale": np.zeros(1, np.float32)}
    out = _run(tx, {"conv/kernel": np.ones(1, np.float32), "bn/scale": np.ones(1, np.float32)},
               [zero])
    np.testing.assert_allclose(out["conv/kernel"], [0.95])
    np.testing.assert_allclose(out["bn/scale"], [1.0])


def test_element_mask_keeps_masked_entries_bit_identical_under_momentum_and_decay():
    mask = {"k": np.array([1.0, 0.0, 1.0, 0.0], np.float32)}
    tx, _ = optim.build(_optim_cfg(lr=0.1, momentum=0.9, weight_decay=0.1,
                                   schedule="constant"), 10, mask)
    w0 = {"k": np.array([1.0, 2.0, 3.0, 4.0], np.float32), "b": np.array([1.0], np.float32)}
    grads = [{"k": np.ones(4, np.float32), "b": np.ones(1, np.float32)}] * 3
    out = _run(tx, w0, grads)
    assert out["k"][1] == 2.0 and out["k"][3] == 4.0
    assert out["k"][0] != 1.0 and out["k"][2] != 3.0 and out["b"][0] != 1.0


@pytest.fixture(scope="module")
def resnet8():
    cfg = base.get_config().model
    cfg.depth = 8
    model = models.build(cfg, num_classes=10, in_channels=1, rngs=nnx.Rngs(0))
    shapes = {"/".join(map(str, p)): tuple(v.value.shape)
              for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    return models.param_roles(model), shapes


@pytest.mark.parametrize("setting, expected", [
    ("bn_only", 672),
    ("gamma_only", 336),
    ("beta_only", 336),
    ("output_only", 64 * 10 + 10),
    ("bn_and_output", 672 + 650),
    ("none", 0),
    ("all", 77_754),
    ("all_no_affine", 77_754 - 672),
])
def test_trainable_subset_counts(resnet8, setting, expected):
    roles, shapes = resnet8
    assert optim.trainable_subset(setting, roles, shapes).count(shapes) == expected


def test_random_k_per_channel_exactly_k_per_output_channel(resnet8):
    roles, shapes = resnet8
    subset = optim.trainable_subset("random_k_per_channel", roles, shapes, k=2, seed=3)
    convs = [k for k, r in roles.items() if r == "conv_kernel"]
    assert sorted(subset.names) == sorted(convs)
    for name in convs:
        mask = subset.element_masks[name]
        assert mask.shape == shapes[name]
        np.testing.assert_array_equal(mask.reshape(-1, shapes[name][-1]).sum(0), 2)
    # every conv is followed by exactly one BN: the count equals #γ + #β
    assert subset.count(shapes) == 672
    again = optim.trainable_subset("random_k_per_channel", roles, shapes, k=2, seed=3)
    other = optim.trainable_subset("random_k_per_channel", roles, shapes, k=2, seed=4)
    assert all(np.array_equal(subset.element_masks[n], again.element_masks[n]) for n in convs)
    assert not all(np.array_equal(subset.element_masks[n], other.element_masks[n]) for n in convs)


def test_random_count_matches_bn_count(resnet8):
    roles, shapes = resnet8
    assert optim.trainable_subset("random_count", roles, shapes, seed=0).count(shapes) == 672


def test_unknown_subset_lists_choices(resnet8):
    roles, shapes = resnet8
    with pytest.raises(ConfigError, match="bn_only.*random_k_per_channel"):
        optim.trainable_subset("bn-only", roles, shapes)


def test_all_no_affine_requires_fixed_bn_init():
    c = base.get_config()
    c.optim.trainable = "all_no_affine"
    with pytest.raises(ValueError, match="bn_init='fixed'"):
        optim.check_trainable_config(c.optim, c.model)
    c.model.bn_init = "fixed"
    optim.check_trainable_config(c.optim, c.model)


def test_lars_by_hand_with_biases_and_bn_excluded():
    # u = g + wd·w; on matrices u ← η·‖w‖/‖u‖·u; v ← μ·v + lr·u; w ← w − v. Vectors (biases,
    # BN γ/β) and the weight_decay_exclude pattern skip both the decay and the trust ratio.
    lr, wd, eta, mu = 0.5, 0.1, 0.02, 0.9
    tx, _ = optim.build(_optim_cfg(name="lars", lr=lr, momentum=mu, weight_decay=wd,
                                   trust_coefficient=eta, weight_decay_exclude="^head/",
                                   schedule="constant"), 10)
    rng = np.random.default_rng(0)
    params = {"conv/kernel": rng.normal(size=(3, 2)), "bn/scale": rng.normal(size=3),
              "head/kernel": rng.normal(size=(2, 2))}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(2)]
    w = {k: v.copy() for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for g in grads:
        for k in w:
            u = g[k].copy()
            if k == "conv/kernel":
                u = u + wd * w[k]
                u = eta * np.linalg.norm(w[k]) / np.linalg.norm(u) * u
            v[k] = mu * v[k] + lr * u
            w[k] = w[k] - v[k]
    f32 = lambda t: {k: x.astype(np.float32) for k, x in t.items()}  # noqa: E731
    out = _run(tx, f32(params), [f32(g) for g in grads])
    for k in w:
        np.testing.assert_allclose(out[k], w[k], rtol=1e-5, err_msg=k)


def test_unknown_optimizer_name():
    with pytest.raises(ConfigError, match="sgd, adam, adamw, lars"):
        optim.build(_optim_cfg(name="lamb"), 10)


def test_adamw_decoupled_decay_differs_from_coupled_adam():
    g = [{"w": np.array([0.0])}]
    adamw, _ = optim.build(_optim_cfg(name="adamw", lr=0.1, weight_decay=0.1,
                                      schedule="constant"), 10)
    # zero gradient: AdamW moves w by lr·wd·w; coupled Adam normalises the decay gradient
    np.testing.assert_allclose(_run(adamw, {"w": np.array([1.0])}, g)["w"], [0.99], rtol=1e-6)
    adam, _ = optim.build(_optim_cfg(name="adam", lr=0.1, weight_decay=0.1,
                                     schedule="constant"), 10)
    np.testing.assert_allclose(_run(adam, {"w": np.array([1.0])}, g)["w"], [0.9], rtol=1e-5)


def test_inverse_sqrt_schedule_is_fairseqs():
    cfg = _optim_cfg(lr=1e-3, schedule="inverse_sqrt", warmup_steps=200)
    lr = optim.learning_rate_schedule(cfg, 1500)
    for s in (0, 99, 199, 200, 799, 1499):  # lr · min((s+1)/200, sqrt(200/(s+1)))
        expected = 1e-3 * min((s + 1) / 200, (200 / (s + 1)) ** 0.5)
        assert float(lr(s)) == pytest.approx(expected, rel=1e-6), s
    with pytest.raises(ConfigError, match="needs optim.warmup_steps"):
        optim.learning_rate_schedule(_optim_cfg(schedule="inverse_sqrt"), 10)


def test_linear_schedule_warms_up_then_decays_to_zero():
    cfg = _optim_cfg(lr=0.6, schedule="linear", warmup_steps=10)
    lr = optim.learning_rate_schedule(cfg, 110)
    for t, v in {0: 0.0, 5: 0.3, 10: 0.6, 60: 0.3, 110: 0.0}.items():
        assert float(lr(t)) == pytest.approx(v, abs=1e-7), t


def test_freezing_by_a_path_pattern():
    subset = optim.TrainableSubset(("encoder/kernel", "encoder/bias", "head/kernel"), {})
    kept = optim.frozen_by_pattern(subset, "^encoder/", list(subset.names))
    assert kept.names == ("head/kernel",)
    with pytest.raises(ConfigError, match="matches no parameter path"):
        optim.frozen_by_pattern(subset, "^backbone/", list(subset.names))
