"""Early phase: pretraining tasks (labels, rotation, blur), the pretrained start of IMP, and the
early-phase statistics hook."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from experiments.early_phase import procedure, task
from lib import config as config_lib
from lib import train
from lib.data import preprocess, sources
from tests.helpers import REPO, read_metrics

DIGITS = REPO / "experiments/early_phase/configs/digits.py"


def test_rotation_labels_are_exact_quarter_turns():
    image = np.arange(3 * 3, dtype=np.uint8).reshape(3, 3, 1)  # no rotational symmetry
    records = sources.ArrayRecords(np.stack([image] * 40), np.full(40, 7, np.int32))
    rotated = sources.RelabeledRecords(records, "rotation", 10, seed=0)
    labels = [rotated[i]["label"] for i in range(40)]
    assert set(labels) == {0, 1, 2, 3}
    for i in range(40):
        r = rotated[i]
        expected = image
        for _ in range(r["label"]):  # counter-clockwise quarter turns, one at a time
            expected = np.stack([expected[:, -1 - j, 0] for j in range(3)])[..., None]
        np.testing.assert_array_equal(r["image"], expected)


def test_random_labels_are_fixed_per_example_and_cover_the_classes():
    records = sources.ArrayRecords(np.zeros((500, 2, 2, 1), np.uint8), np.zeros(500, np.int32))
    a = sources.RelabeledRecords(records, "random", 10, seed=3)
    b = sources.RelabeledRecords(records, "random", 10, seed=3)
    assert [a[i]["label"] for i in range(500)] == [b[i]["label"] for i in range(500)]
    assert set(a.all_labels()) == set(range(10))


def test_blur_is_bilinear_down_then_up_sampling():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    small = Image.fromarray(image).resize((8, 8), Image.Resampling.BILINEAR)
    expected = np.asarray(small.resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(preprocess.blur(image, 4), expected)
    np.testing.assert_array_equal(preprocess.blur(image, 1), image)


def _config(arg, **changes):
    c = config_lib.load_file(DIGITS, arg)
    return config_lib.updated(c, {"async_checkpointing": False, "log_every": 1, **changes})


@pytest.fixture(scope="module")
def rotation_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rotation")
    config = _config("quick,perturbations=reinit", **{
        "pretrain.variant": "rotation", "pretrain.steps": 10, "imp.rewind_step": 10,
        "imp.levels": 1})
    return workdir, config, procedure.run(config, workdir)


def test_rotation_pretraining_replaces_the_head_and_resumes_at_step_p(rotation_run):
    workdir, config, summary = rotation_run
    assert set(summary) == {"pretrain", "trunk", "perturb"}
    pretrained = json.loads((workdir / "pretrain" / "config.json").read_text())
    assert pretrained["data"]["labels"] == "rotation" and pretrained["total_steps"] == 10
    # the dense run starts from S_P at step P = 10: its first logged step is 11, and the lr
    # there is the schedule's value at step 10
    rows = [r for r in read_metrics(workdir / "trunk" / "level_0") if "train/lr" in r]
    assert rows[0]["step"] == 11
    stage = config_lib.updated(config, {"init.workdir": str(workdir / "pretrain"),
                                        "init.step": 10, "procedure": "", "pretrain.variant": ""})
    trainer = train.Trainer(stage)
    assert rows[0]["train/lr"] == pytest.approx(float(trainer.setup.schedule(10)))
    state, data_state = trainer.state_from_run()
    assert data_state is None  # another task's data position is not reused
    _, _, pre = train.load_final(workdir / "pretrain")
    pre = jax.device_get(pre["params"])
    assert pre["head/kernel"].shape[-1] == 4 and state["params"]["head/kernel"].shape[-1] == 10
    np.testing.assert_array_equal(state["params"]["head/kernel"],
                                  trainer.setup.init_state["params"]["head/kernel"])
    np.testing.assert_array_equal(state["params"]["conv0/conv/kernel"],
                                  pre["conv0/conv/kernel"])


def test_pretraining_needs_a_valid_variant_and_steps(tmp_path):
    for changes, message in [({"pretrain.variant": "jigsaw", "pretrain.steps": 10},
                              "valid choices: '' .*random_labels, rotation"),
                             ({"pretrain.variant": "blur", "pretrain.steps": 0},
                              r"pretrain.steps=0 must lie in \(0, total_steps=60\)")]:
        with pytest.raises(config_lib.ConfigError, match=message):
            procedure.run(_config("quick", **changes), tmp_path)
    with pytest.raises(config_lib.ConfigError, match=r"imp.rewind_step=\d+ but init.step=5"):
        procedure.run(_config("quick", **{"init.workdir": str(tmp_path), "init.step": 5}),
                      tmp_path / "w")


def test_statistic_steps_and_weight_statistics_by_hand():
    assert task.statistic_steps(120) == [*range(11), 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert task.statistic_steps(1500)[-3:] == [1000, 1250, 1500]
    w0 = np.array([3.0, -4.0, 1.0, 0.0])
    w = np.array([3.0, 4.0, -1.0, 2.0])
    s = task.weight_statistics(w, w0)
    assert s["distance"] == pytest.approx(np.sqrt(0 + 64 + 4 + 4))
    assert s["relative_distance"] == pytest.approx(np.sqrt(72) / np.sqrt(26))
    assert s["cosine"] == pytest.approx((9 - 16 - 1 + 0) / (np.sqrt(30) * np.sqrt(26)))
    assert s["sign_flips"] == pytest.approx(3 / 4)  # −4→4, 1→−1, 0→2
    np.testing.assert_array_equal(task.histogram([0.05, -0.15, 0.16, 2.0], 4, 0.4), [1, 2, 0, 1])


def test_statistics_hook_logs_the_grid_against_the_checkpoints(tmp_path):
    c = _config("quick,perturbations=", **{
        "procedure": "", "task": "experiments.early_phase.task:EarlyPhaseStatistics",
        "early_stats.until": 20, "total_steps": 12, "checkpoint_every": 1,
        "keep_checkpoints": 20})
    train.run(c, tmp_path)
    rows = {r["step"]: r for r in read_metrics(tmp_path) if "early/all/distance" in r}
    assert sorted(rows) == list(range(11))
    assert rows[0]["early/all/distance"] == 0 and rows[0]["early/all/cosine"] == pytest.approx(1)
    from lib import checkpoint
    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", keep=20, async_save=False,
                                   read_only=True)
    w0 = ckpt.restore_as_saved(1)[0]["extra"]["init/conv1/conv/kernel"]
    w5 = ckpt.restore_as_saved(5)[0]["params"]["conv1/conv/kernel"]
    ckpt.close()
    expected = task.weight_statistics(w5, w0)
    for key, value in expected.items():
        assert rows[5][f"early/conv1/conv/kernel/{key}"] == pytest.approx(value, rel=1e-5)
    assert sum(rows[5][f"early/all/hist_{i:02d}"] for i in range(20)) == sum(
        np.size(v) for k, v in jax.device_get(train.load_final(tmp_path)[2]["params"]).items()
        if k.endswith("/kernel"))
    assert "eval/accuracy" in rows[5]


def test_analysis_groups_procedures_and_plots(tmp_path, capsys):
    from experiments.early_phase import analysis

    dirs = []
    for seed, accs in enumerate([(0.98, 0.95, 0.90), (0.96, 0.93, 0.86)]):
        w = tmp_path / f"s{seed}"
        w.mkdir()
        config = config_lib.load_file(DIGITS, f"seed={seed},levels=2")
        (w / "config.json").write_text(config.to_json_best_effort())
        trunk = {str(i): {"eval/accuracy": a, "remaining": 0.5**i} for i, a in enumerate(accs)}
        (w / "results.json").write_text(json.dumps(
            {"trunk": trunk, "perturb": {"reinit": {"eval/accuracy": 0.8 + seed / 100}}}))
        dirs.append(str(w))
    groups = analysis.collect(dirs)
    (name,) = groups
    assert name == "convnet16-32-64-64 rewind k=40"
    assert groups[name]["curve"][0.25] == [0.90, 0.86]
    assert groups[name]["perturb"]["reinit"] == (0.25, [0.80, 0.81])
    assert analysis.main([*dirs, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "accuracy_vs_remaining.png").exists()
    assert "0.8800 ± 0.0283" in capsys.readouterr().out  # level 2: mean of 0.90 and 0.86
