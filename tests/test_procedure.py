"""lib.procedure.imp on digits: sparsity per level, rewinding to S_k, resume, bad input."""

import json
import math
import shutil

import jax
import ml_collections
import numpy as np
import pytest
from helpers import Crash, crash_on_batch, digits_config, train_losses

from lib import config as config_lib
from lib import procedure, sparsity, train


def imp_config(**overrides):
    return digits_config(**{"procedure": "lib.procedure:imp", "imp.levels": 2,
                            "imp.rewind_step": 4, "sparsity.fraction": 0.5,
                            "sparsity.exclude": "^head/", **overrides})


def level_params(workdir, level):
    _, _, state = train.load_final(workdir / f"level_{level}")
    return jax.device_get(state["params"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("imp")
    return workdir, procedure.imp(imp_config(), workdir)


def test_levels_reach_the_expected_sparsity_and_masked_weights_stay_zero(finished):
    workdir, summary = finished
    assert sorted(summary) == ["0", "1", "2"]
    setup = train.build(imp_config())
    names = sparsity.prunable_names(setup.roles, exclude="^head/")
    total = sum(math.prod(setup.param_shapes()[n]) for n in names)
    remaining, previous = total, None
    for level in (1, 2):
        remaining -= math.ceil(0.5 * remaining)
        masks = sparsity.load(workdir / f"level_{level}" / "mask.npz")
        assert sorted(masks) == names  # the head is excluded
        assert sum(int(m.sum()) for m in masks.values()) == remaining
        assert summary[str(level)]["remaining"] == remaining / total
        params = level_params(workdir, level)
        for n in names:
            assert np.all(params[n][masks[n] == 0] == 0), n  # exactly zero after training
            if previous is not None:
                assert np.all(masks[n] <= previous[n]), n  # nothing revived
        previous = masks
    assert json.loads((workdir / "results.json").read_text()) == summary


def test_level_masks_are_global_magnitude_of_the_previous_level(finished):
    workdir, _ = finished
    previous = sparsity.load(workdir / "level_1" / "mask.npz")
    expected = sparsity.magnitude_prune(level_params(workdir, 1), previous, 0.5)
    stored = sparsity.load(workdir / "level_2" / "mask.npz")
    jax.tree.map(np.testing.assert_array_equal, stored, expected)


def test_a_level_starts_from_the_masked_dense_state_at_k(finished):
    workdir, _ = finished
    level_cfg = json.loads((workdir / "level_1" / "config.json").read_text())
    assert level_cfg["init"] == {"workdir": str(workdir / "level_0"), "step": 4,
                                 "optimizer": "fresh", "transform": "", "mode": "continue",
                                 "prefix_map": [""]}
    trainer = train.Trainer(procedure.stage_config(
        imp_config(), **{"sparsity.mask": level_cfg["sparsity"]["mask"],
                         "init.workdir": str(workdir / "level_0"), "init.step": 4}))
    state, data_state = trainer.state_from_run()
    assert int(state["step"]) == 4 and data_state == {"next_index": 4}
    dense = train.checkpoint.Checkpointer(workdir / "level_0" / "checkpoints", keep=1,
                                          async_save=False, read_only=True)
    saved, _ = dense.restore_as_saved(4)
    dense.close()
    masks = trainer.setup.masks
    for k, v in jax.device_get(state["params"]).items():
        expected = saved["params"][k] * masks[k] if k in masks else saved["params"][k]
        np.testing.assert_array_equal(v, expected, err_msg=k)
    fresh = jax.device_get(trainer.setup.init_state["opt_state"])
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state["opt_state"]), fresh)
    # the level trains steps 5..12 only, on the dense run's data order
    steps = [m["step"] for m in map(json.loads, (workdir / "level_1" / "metrics.jsonl")
                                    .read_text().splitlines()) if "train/loss" in m]
    assert steps[0] == 5 and steps[-1] == 12


def test_resume_in_the_middle_of_a_level_equals_uninterrupted(tmp_path, finished, monkeypatch):
    workdir, summary = finished
    # dense: 12 steps + 1 eval batch; level 1: steps 5..9 (8 saved)
    crash_on_batch(monkeypatch, 13 + 6)
    with pytest.raises(Crash):
        procedure.imp(imp_config(), tmp_path)
    assert not (tmp_path / "level_1" / "results.json").exists()
    assert (tmp_path / "level_1" / "mask.npz").exists()
    assert (tmp_path / "level_1" / "checkpoints" / "8").exists()  # resumes from the middle
    monkeypatch.undo()
    assert procedure.imp(imp_config(), tmp_path) == summary
    for level in range(3):
        assert train_losses(tmp_path / f"level_{level}") == \
            train_losses(workdir / f"level_{level}"), level


def test_finished_levels_are_not_rerun_or_overwritten(finished):
    workdir, summary = finished
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("results.json")}
    assert procedure.imp(imp_config(), workdir) == summary
    after = {p: p.stat().st_mtime_ns for p in workdir.rglob("results.json")}
    assert {p: t for p, t in after.items() if p.parent != workdir} == \
        {p: t for p, t in before.items() if p.parent != workdir}


def test_rewind_to_zero_starts_from_the_initialisation(tmp_path):
    summary = procedure.imp(imp_config(**{"imp.levels": 1, "imp.rewind_step": 0}), tmp_path)
    assert summary["1"]["remaining"] == pytest.approx(0.5, abs=1e-4)
    level_cfg = json.loads((tmp_path / "level_1" / "config.json").read_text())
    assert level_cfg["init"]["workdir"] == ""  # same seed: the level's init is θ0 · mask
    steps = [m["step"] for m in map(json.loads, (tmp_path / "level_1" / "metrics.jsonl")
                                    .read_text().splitlines()) if "train/loss" in m]
    assert steps[0] == 1


@pytest.mark.parametrize("overrides, message", [
    ({"sparsity.fraction": 1.0}, r"sparsity.fraction=1.0 must lie in \[0, 1\)"),
    ({"imp.rewind_step": 12}, r"imp.rewind_step=12 must lie in \[0, total_steps=12\)"),
    ({"imp.levels": 0}, "imp.levels=0: IMP needs at least 1 level"),
    ({"sparsity.scope": "per_layer"}, "valid choices: global, layerwise"),
])
def test_bad_settings_stop_before_training(tmp_path, overrides, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        procedure.imp(imp_config(**overrides), tmp_path)
    assert not any(tmp_path.iterdir())


def test_layer_pattern_matching_nothing(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="layer pattern 'stage9' matches no"):
        procedure.imp(imp_config(**{"sparsity.include": "stage9", "imp.levels": 1}), tmp_path)


def test_level_with_output_but_no_mask_is_refused(tmp_path, finished):
    workdir, _ = finished
    shutil.copytree(workdir, tmp_path / "run")
    (tmp_path / "run" / "level_2" / "mask.npz").unlink()
    (tmp_path / "run" / "level_2" / "results.json").unlink()
    with pytest.raises(config_lib.ConfigError, match="has training output but no mask.npz"):
        procedure.imp(imp_config(), tmp_path / "run")
    assert (tmp_path / "run" / "level_1" / "results.json").exists()


def test_an_evaluation_is_read_back_until_its_settings_change(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"accuracy": 0.25 * len(calls)}

    path = tmp_path / "eval.json"
    settings = ml_collections.ConfigDict({"eps": [0.1, 0.2], "steps": 10})
    assert procedure.evaluation(path, settings, compute) == {"accuracy": 0.25}
    assert procedure.evaluation(path, settings, compute) == {"accuracy": 0.25}
    assert len(calls) == 1
    assert json.loads(path.read_text()) == {"settings": {"eps": [0.1, 0.2], "steps": 10},
                                            "values": {"accuracy": 0.25}}
    settings.steps = 20
    assert procedure.evaluation(path, settings, compute) == {"accuracy": 0.5}
    assert json.loads(path.read_text())["settings"]["steps"] == 20
