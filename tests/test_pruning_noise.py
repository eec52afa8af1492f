"""Noise-injection variants: the numpy operations by hand, and their timing in a real run."""

import numpy as np
import pytest

from experiments.pruning_stability import noise, procedure
from experiments.pruning_stability.filter_pruning import Layer
from lib import checkpoint
from lib import config as config_lib
from tests.helpers import REPO

DIGITS = REPO / "experiments/pruning_stability/configs/digits.py"
LAYER = Layer("c/conv/kernel", "c/bn/scale", "c/bn/bias", 3, ((0, 1),))


def _params():
    rng = np.random.default_rng(0)
    return {"c/conv/kernel": rng.normal(size=(2, 2, 4, 3)).astype(np.float32),
            "c/bn/scale": np.array([1.0, 2.0, 3.0], np.float32),
            "c/bn/bias": np.array([0.1, 0.2, 0.3], np.float32)}


def test_window():
    assert noise.window("zero", 0) == (1, -1)
    assert noise.window("gauss", 50) == (50, -1)
    assert noise.window("zero_restore", 89) == (89, 89)
    with pytest.raises(ValueError, match="valid choices: none, zero, gauss, zero_restore"):
        noise.window("blur", 1)
    with pytest.raises(ValueError, match="≥ 1 for zero_restore"):
        noise.window("zero_restore", 0)


@pytest.mark.parametrize("with_bn", [False, True])
def test_zero_touches_only_the_flagged_filters(with_bn):
    p = _params()
    out = noise.zero(p, [LAYER], {"c/conv/kernel": np.array([0, 1, 0])}, with_bn)
    assert np.all(out["c/conv/kernel"][..., 1] == 0)
    kept = [0, 2]
    np.testing.assert_array_equal(out["c/conv/kernel"][..., kept], p["c/conv/kernel"][..., kept])
    np.testing.assert_array_equal(out["c/bn/scale"], [1, 0, 3] if with_bn else [1, 2, 3])


def test_gaussian_uses_the_first_untargeted_filters_std():
    p = {**_params(), "c/conv/kernel": np.zeros((40, 40, 8, 3), np.float32)}
    p["c/conv/kernel"][..., 1] = np.random.default_rng(1).normal(0, 0.5, (40, 40, 8))
    flags = {"c/conv/kernel": np.array([1, 0, 0])}
    ever = {"c/conv/kernel": np.array([1, 0, 0])}  # filter 1 is the first never targeted
    out = noise.add_gaussian(p, [LAYER], flags, ever, np.random.default_rng(2))
    sigma = p["c/conv/kernel"][..., 1].std()
    assert out["c/conv/kernel"][..., 0].std() == pytest.approx(sigma, rel=0.03)
    np.testing.assert_array_equal(out["c/conv/kernel"][..., 1:], p["c/conv/kernel"][..., 1:])
    with pytest.raises(ValueError, match="every filter is targeted"):
        noise.add_gaussian(p, [LAYER], flags, {"c/conv/kernel": np.ones(3)},
                           np.random.default_rng(0))


def test_restore_puts_back_the_flagged_filters_only():
    p = _params()
    snapshot = {k: v + 10 for k, v in p.items()}
    snapshot.update({"c/bn/mean": np.array([5.0, 6.0, 7.0]), "c/bn/var": np.array([8.0, 9, 10])})
    stats = {("c", "bn", "mean"): np.zeros(3, np.float32),
             ("c", "bn", "var"): np.ones(3, np.float32)}
    params, stats = noise.restore(p, stats, snapshot, [LAYER],
                                  {"c/conv/kernel": np.array([0, 0, 1])})
    np.testing.assert_array_equal(params["c/bn/scale"], [1, 2, 13])
    np.testing.assert_array_equal(params["c/conv/kernel"][..., 2], p["c/conv/kernel"][..., 2] + 10)
    np.testing.assert_array_equal(stats[("c", "bn", "mean")], [0, 0, 7])
    np.testing.assert_array_equal(stats[("c", "bn", "var")], [1, 1, 10])


def _run(tmp_path, variant, steps):
    c = config_lib.load_file(DIGITS, "quick,target=L")
    c = config_lib.updated(c, {"filter_pruning.noise": variant,
                               "filter_pruning.noise_steps": steps, "checkpoint_every": 1,
                               "keep_checkpoints": 100, "async_checkpointing": False})
    procedure.run(c, tmp_path)
    ckpt = checkpoint.Checkpointer(tmp_path / "train" / "checkpoints", keep=100,
                                   async_save=False, read_only=True)
    states = {s: ckpt.restore_as_saved(s)[0] for s in (14, 15, 16, 17, 18)}
    ckpt.close()
    return states


def test_zero_holds_the_targets_at_zero_for_x_steps_then_lets_them_train(tmp_path):
    states = _run(tmp_path, "zero", 3)  # event after step 15: zeroed after steps 15, 16, 17
    k = "conv3/conv/kernel"
    now = states[15]["extra"][f"now/{k}"] > 0
    assert now.sum() == 10  # conv3: 64 filters, f = 0.5, 3 events → 54 kept after the first
    for step in (15, 16, 17):
        assert np.all(states[step]["params"][k][..., now] == 0), step
        assert np.all(states[step]["params"][k][..., ~now] != 0), step
    assert np.all(states[18]["params"][k][..., now] != 0)  # trained again
    assert np.all(states[14]["params"][k][..., now] != 0)
    np.testing.assert_array_equal(states[18]["params"]["conv3/bn/scale"] != 0, True)  # BN alone


def test_zero_restore_restores_weights_and_running_statistics(tmp_path):
    states = _run(tmp_path, "zero_restore", 2)  # zero after 15, 16; restore after 17
    k = "conv3/conv/kernel"
    now = states[15]["extra"][f"now/{k}"] > 0
    snap = states[15]["extra"]
    for step in (15, 16):
        assert np.all(states[step]["params"]["conv3/bn/scale"][now] == 0)
    np.testing.assert_array_equal(states[17]["params"][k][..., now],
                                  snap[f"snapshot/{k}"][..., now])
    np.testing.assert_array_equal(states[17]["batch_stats"]["conv3"]["bn"]["mean"][now],
                                  snap["snapshot/conv3/bn/mean"][now])
    np.testing.assert_array_equal(snap[f"snapshot/{k}"][..., ~now],  # taken at the event
                                  states[15]["params"][k][..., ~now])
    assert not np.array_equal(states[17]["params"][k][..., ~now],
                              states[15]["params"][k][..., ~now])


def test_resume_inside_a_noise_window_equals_uninterrupted(tmp_path, monkeypatch):
    from tests.helpers import Crash, crash_on_batch, train_losses

    def config():
        c = config_lib.load_file(DIGITS, "quick,target=L")
        return config_lib.updated(c, {"filter_pruning.noise": "gauss",
                                      "filter_pruning.noise_steps": 4, "checkpoint_every": 16,
                                      "async_checkpointing": False})

    procedure.run(config(), tmp_path / "reference")
    crash_on_batch(monkeypatch, 35)  # the checkpoint at 16 lies inside the window after 15
    with pytest.raises(Crash):
        procedure.run(config(), tmp_path / "resumed")
    assert (tmp_path / "resumed" / "train" / "checkpoints" / "16").exists()
    monkeypatch.undo()
    procedure.run(config(), tmp_path / "resumed")
    assert train_losses(tmp_path / "resumed" / "train") == \
        train_losses(tmp_path / "reference" / "train")
