"""The across-run analysis: grouping, correlations and the CLI on finished runs."""

import json

import numpy as np
import pytest

from experiments.pruning_stability import analysis
from lib import config as config_lib
from tests.helpers import REPO


def _run(tmp_path, name, target, period, stability, accuracy):
    w = tmp_path / name
    w.mkdir()
    c = config_lib.load_file(REPO / "experiments/pruning_stability/configs/digits.py",
                             f"target={target},period={period}")
    (w / "config.json").write_text(c.to_json_best_effort())
    (w / "results.json").write_text(json.dumps({
        "mean_stability": stability, "best_test_accuracy": accuracy,
        "generalization_gap": 1.0}))
    return w


def test_groups_and_negative_correlation(tmp_path, capsys):
    dirs = [_run(tmp_path, f"r{i}", t, 6, s, a) for i, (t, s, a) in enumerate([
        ("L", 97.0, 0.990), ("L", 97.5, 0.988), ("S", 99.0, 0.980), ("S", 99.5, 0.978),
        ("none", 100.0, 0.975)])]
    runs = analysis.load_runs(dirs)
    assert [n for n, _ in runs] == ["convnet L r=6 L2 f=0.3/0.5"] * 2 + \
        ["convnet S r=6 L2 f=0.3/0.5"] * 2 + ["convnet none"]
    result = analysis.summarize(runs)
    assert result["groups"]["convnet L r=6 L2 f=0.3/0.5"]["runs"] == 2
    assert result["groups"]["convnet L r=6 L2 f=0.3/0.5"]["mean_stability"][0] == \
        pytest.approx(97.25)
    xs, ys = [97.0, 97.5, 99.0, 99.5, 100.0], [0.990, 0.988, 0.980, 0.978, 0.975]
    every = result["correlations"]["all runs"]
    assert every["pearson"] == pytest.approx(np.corrcoef(xs, ys)[0, 1])
    assert every["kendall"] == pytest.approx(-1.0)
    assert result["correlations"]["convnet r=6"]["n"] == 4  # the pruned runs at r = 6
    assert analysis.main([*map(str, dirs), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "stability_vs_accuracy.png").exists()
    assert "Pearson -0.9" in capsys.readouterr().out


def test_unfinished_run_is_named(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    assert analysis.main([str(tmp_path / "half")]) == 2
    assert "has no results.json" in capsys.readouterr().err
