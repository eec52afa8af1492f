"""BYOL (lib/ssl/byol.py) against independent computations: the regression loss as 2 − 2·cos
in numpy, the cosine τ schedule at worked points, and the target network as a numpy EMA of
the online parameters under that schedule."""

import jax
import numpy as np
import pytest
from helpers import copy_value, digits_config, saved

from lib import config as config_lib
from lib import train
from lib.ssl import byol

STEPS, BASE = 5, 0.8
BYOL = {"task": "lib.ssl.byol:BYOL", "data.augment": "views", "data.views": (2,),
        "data.view_sizes": (8,), "data.view_min_scale": (0.5,), "data.batch_size": 32,
        "ssl.projector_widths": (32, 16), "ssl.predictor_hidden": (24,),
        "ssl.ema_decay": BASE, "ssl.ema_schedule": "cosine", "optim.weight_decay": 0.0,
        "log_every": 1, "checkpoint_every": 1, "keep_checkpoints": 100}


def test_regression_loss_is_two_minus_twice_the_cosine():
    rng = np.random.default_rng(0)
    p, z = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) * 5
    cos = np.sum(p * z, axis=1) / np.linalg.norm(p, axis=1) / np.linalg.norm(z, axis=1)
    np.testing.assert_allclose(byol.regression_loss(p.astype(np.float32), z.astype(np.float32)),
                               2 - 2 * cos, rtol=1e-5)


def test_target_decay_goes_from_base_to_one_on_a_cosine():
    at = lambda k: float(byol.target_decay(k, 100, 0.99, "cosine"))  # noqa: E731
    assert at(0) == pytest.approx(0.99)
    assert at(50) == pytest.approx(0.995)  # half-way: 1 − 0.01·(cos(π/2) + 1)/2
    assert at(25) == pytest.approx(1 - 0.01 * (np.cos(np.pi / 4) + 1) / 2)
    assert at(100) == pytest.approx(1.0)
    assert float(byol.target_decay(70, 100, 0.99, "constant")) == pytest.approx(0.99)


def test_target_is_a_numpy_ema_of_the_online_network_under_the_cosine_schedule(tmp_path):
    config = digits_config(steps=STEPS, **BYOL)
    init = jax.device_get(train.Trainer(config).starting_state()[0])
    names = [n for n in init["params"] if n.startswith("online/")]
    assert names and any(n.startswith("predictor/") for n in init["params"])
    assert not any(n.startswith("target/") for n in init["params"])

    ema = {n: copy_value(init, "target", n) for n in names}
    for n in names:
        np.testing.assert_array_equal(ema[n], init["params"][n])
    train.run(config, tmp_path / "run")
    for step in range(1, STEPS + 1):
        state = saved(tmp_path / "run", step)
        tau = 1 - (1 - BASE) * (np.cos(np.pi * (step - 1) / STEPS) + 1) / 2
        for n in names:
            ema[n] = tau * ema[n] + (1 - tau) * np.asarray(state["params"][n], np.float64)
            np.testing.assert_allclose(copy_value(state, "target", n), ema[n], rtol=1e-5,
                                       atol=1e-7, err_msg=f"step {step} {n}")


def test_an_unknown_schedule_is_refused_before_anything_is_written(tmp_path):
    config = digits_config(steps=STEPS, **{**BYOL, "ssl.ema_schedule": "linear"})
    with pytest.raises(config_lib.ConfigError, match="ssl.ema_schedule='linear'; valid "
                                                      "choices: constant, cosine"):
        train.run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
