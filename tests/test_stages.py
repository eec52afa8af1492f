"""Stages that start from another run's parameters (init.mode='params'): the prefix map, a
frozen prefix, step 0 with the stage's own schedule, and the feature-extraction helper."""

import jax
import numpy as np
import pytest
from helpers import digits_config, read_metrics

from lib import config as config_lib
from lib import features, procedure, train

PRETRAIN = {"model.name": "toy_tasks:encoder_head", "progress": False, "log_every": 2}
PROBE = {"model.name": "toy_tasks:probe", "init.prefix_map": ("encoder/=backbone/",),
         "optim.freeze": "^backbone/", "optim.lr": 0.05, "optim.milestones": (0,), "seed": 5}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pretrain")
    train.run(digits_config(steps=8, **PRETRAIN), workdir)
    _, _, state = train.load_final(workdir)
    return workdir, jax.device_get(state["params"])


def test_probe_starts_at_step_0_with_the_mapped_parameters(pretrained, tmp_path):
    source, final = pretrained
    config = procedure.stage_from(digits_config(steps=6, **PROBE), source)
    trainer = train.Trainer(config)
    start, data_state = trainer.starting_state()
    assert int(start["step"]) == 0 and data_state is None
    start = jax.device_get(start)
    fresh = jax.device_get(trainer.setup.init_state["params"])
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(start["params"][f"backbone/{name}"],
                                      final[f"encoder/{name}"])
        np.testing.assert_array_equal(start["params"][f"head/{name}"], fresh[f"head/{name}"])
    np.testing.assert_array_equal(start["rng"], jax.device_get(trainer.setup.init_state["rng"]))

    train.run(config, tmp_path)
    _, _, state = train.load_final(tmp_path)
    after = jax.device_get(state["params"])
    for name in ("kernel", "bias"):  # the frozen prefix is bit-identical
        np.testing.assert_array_equal(after[f"backbone/{name}"], final[f"encoder/{name}"])
    assert not np.array_equal(after["head/kernel"], fresh["head/kernel"])
    lines = [m for m in read_metrics(tmp_path) if "train/loss" in m]
    assert [m["step"] for m in lines] == [1, 2, 3, 4, 5, 6]  # its own step counter
    assert lines[0]["train/lr"] == pytest.approx(0.05)  # its own schedule


@pytest.mark.parametrize("changes, message", [
    ({"init.prefix_map": ("enc0der/=backbone/",)}, "no parameter of .* starts with 'enc0der/'"),
    ({"init.prefix_map": ("encoder/=trunk/",)}, "this model has no parameter 'trunk/"),
    ({"init.prefix_map": ("encoder/",)}, "expected 'source_prefix=destination_prefix'"),
    ({"optim.freeze": "^bakbone/"}, "matches no parameter path"),
    ({"init.mode": "probe"}, "init.mode='probe'"),
    ({"init.mode": "continue"}, "applies to init.mode='params'"),
])
def test_bad_stage_settings_are_config_errors(pretrained, changes, message):
    source, _ = pretrained
    config = procedure.stage_from(digits_config(steps=6, **PROBE), source, **changes)
    with pytest.raises(config_lib.ConfigError, match=message):
        train.Trainer(config).starting_state()


def test_features_of_a_split_equal_numpy(pretrained):
    source, final = pretrained
    config = digits_config(steps=8, **{**PRETRAIN, "data.eval_batch_size": 128})
    trainer = train.Trainer(config)
    state, _ = trainer.starting_state()
    state = trainer.place({**jax.device_get(state), "params": final})
    out = features.extract(trainer, state, lambda model, batch: model.features(batch["image"]))
    batches = list(trainer.eval_batches())
    images = np.concatenate([b["image"][b["mask"] > 0] for b in batches])
    labels = np.concatenate([b["label"][b["mask"] > 0] for b in batches])
    x = images.reshape(len(images), -1).astype(np.float64)
    expected = np.maximum(x @ final["encoder/kernel"] + final["encoder/bias"], 0)
    assert out["features"].shape == (539, 16)
    np.testing.assert_allclose(out["features"], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out["label"], labels)
