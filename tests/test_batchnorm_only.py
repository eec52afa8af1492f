"""BN-only paper: γ statistics by hand, claim logic, and the claims registry CLI."""

import json

import numpy as np
import pytest
from flax import nnx

from configs import base
from experiments.batchnorm_only import analysis, claims
from lib import config as config_lib
from lib import models, optim, repro

PARAMS = {
    "a/bn/scale": np.array([0.005, 0.5, -0.03], np.float32),
    "a/bn/bias": np.array([0.0, -1.0, 0.2], np.float32),
    "a/conv/kernel": np.ones((3, 3, 1, 3), np.float32),
    "b/bn/scale": np.array([0.2], np.float32),
    "b/bn/bias": np.array([-0.1], np.float32),
}
ROLES = {"a/bn/scale": "bn_scale", "a/bn/bias": "bn_bias", "a/conv/kernel": "conv_kernel",
         "b/bn/scale": "bn_scale", "b/bn/bias": "bn_bias"}


def test_gamma_statistics_by_hand():
    gamma, beta = analysis.gamma_beta(PARAMS, ROLES)
    np.testing.assert_array_equal(gamma, np.float32([0.005, 0.5, -0.03, 0.2]))
    np.testing.assert_array_equal(beta, np.float32([0.0, -1.0, 0.2, -0.1]))
    stats = analysis.gamma_stats(PARAMS, ROLES)
    assert stats["channels"] == 4
    assert stats["f_0.01"] == 0.25          # 0.005
    assert stats["f_0.05"] == 0.5           # 0.005, -0.03
    assert stats["f_0.1"] == 0.5
    assert stats["off_after_relu_0.05"] == 0.25  # only 0.005 has β ≤ 0


def test_zero_small_gamma_keeps_beta_and_large_gamma():
    out = analysis.zero_small_gamma(PARAMS, ROLES, 0.05)
    np.testing.assert_array_equal(out["a/bn/scale"], np.float32([0.0, 0.5, 0.0]))
    np.testing.assert_array_equal(out["b/bn/scale"], np.float32([0.2]))
    np.testing.assert_array_equal(out["a/bn/bias"], PARAMS["a/bn/bias"])
    assert PARAMS["a/bn/scale"][0] == np.float32(0.005)  # the input is not modified


def _grid(acc):
    return {"accuracy": {k: [v] * 3 for k, v in acc.items()},
            "f_0.01": {"all": [0.01] * 3, "bn_only": [0.03] * 3},
            "f_0.05": {"all": [0.04] * 3, "bn_only": [0.08] * 3},
            "f_0.1": {"all": [0.06] * 3, "bn_only": [0.15] * 3},
            "off_after_relu_0.05": {"all": [0.03] * 3, "bn_only": [0.06] * 3},
            "ablation_change_0.05": {"bn_only": [0.001] * 3},
            "trainable_params": {"bn_only": 672}}


FASHION = {"all": 0.85, "bn_and_output": 0.75, "bn_only": 0.66, "output_only": 0.61,
           "random_k_per_channel": 0.30, "none": 0.10}
DIGITS = {"all": 0.98, "bn_and_output": 0.94, "bn_only": 0.87, "output_only": 0.76,
          "random_k_per_channel": 0.46, "none": 0.11}


def _measurements(fashion=FASHION, digits=DIGITS):
    return {"fashion_mnist": _grid(fashion), "digits": _grid(digits)}


def test_small_claims_pass_on_the_expected_ordering():
    rows = repro.evaluate_small(claims, _measurements())
    assert all(r.passed for r in rows if r.hard), repro.table(rows)
    assert repro._exit_code(rows) == 0


def test_small_claims_fail_when_bn_only_falls_below_output_only():
    rows = repro.evaluate_small(claims, _measurements(fashion={**FASHION, "bn_only": 0.60}))
    failed = {r.id for r in rows if r.passed is False}
    assert "fashion_mnist: bn_only > output_only" in failed
    assert "fashion_mnist: bn_and_output > bn_only" not in failed
    assert not any(f.startswith("digits") for f in failed)
    assert repro._exit_code(rows) == 1


@pytest.mark.parametrize("change, claim_id", [
    ({"none": 0.25}, "digits: acc(none) ≤ 0.20"),
    ({"all": 0.94}, "digits: acc(all) ≥ 0.95"),
    ({"bn_only": 0.74, "output_only": 0.70}, "digits: acc(bn_only) ≥ 0.75"),
])
def test_spec_digits_assertions_fail_outside_their_bounds(change, claim_id):
    rows = repro.evaluate_small(claims, _measurements(digits={**DIGITS, **change}))
    assert {r.id: r.passed for r in rows}[claim_id] is False


def test_missing_measurement_is_a_failure_not_a_crash():
    m = _measurements()
    del m["digits"]["f_0.05"]
    rows = repro.evaluate_small(claims, m)
    assert {r.id: r.passed for r in rows}["digits: f_0.05(bn_only) > f_0.05(all)"] is False


def test_b7_bn_only_count_of_resnet866_matches_the_architecture():
    cfg = base.get_config().model
    cfg.depth = 866
    model = nnx.eval_shape(lambda: models.build(cfg, num_classes=10, in_channels=3,
                                                rngs=nnx.Rngs(0)))
    roles = models.param_roles(model)
    shapes = {"/".join(map(str, p)): tuple(v.value.shape)
              for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    b7 = next(c for c in claims.PAPER_CLAIMS if c.id == "B7")
    assert optim.trainable_subset("bn_only", roles, shapes).count(shapes) == b7.expected


def test_every_paper_claim_config_loads():
    for claim in claims.PAPER_CLAIMS:
        if claim.config:
            path, arg = config_lib.split_config_spec(claim.config)
            config_lib.load_file(repro.REPO / path, arg)
        assert claim.source and claim.confidence


def _finished_run(tmp_path, spec, results, seed=0):
    path, arg = config_lib.split_config_spec(spec)
    config = config_lib.load_file(repro.REPO / path, arg)
    config.data.data_dir = "/somewhere/else"  # paths and seeds do not make a different config
    config.seed = seed
    tmp_path.mkdir(parents=True)
    (tmp_path / "config.json").write_text(config.to_json_best_effort())
    (tmp_path / "results.json").write_text(json.dumps(results))
    return tmp_path


_RN866 = "experiments/batchnorm_only/configs/cifar_resnet.py:depth=866,trainable=bn_only"


def test_check_passes_and_fails_hard_claims(tmp_path, capsys):
    good = _finished_run(tmp_path / "good", _RN866, {"eval/accuracy": 0.815,
                                                     "trainable_params": 64_736,
                                                     "gamma/f_0.05": 0.1})
    assert repro.check([good]) == 0  # B3 (soft) fails, hard B1 and B7 pass
    out = capsys.readouterr().out
    assert "| B1 |" in out and "PASS" in out and "FAIL (soft)" in out
    bad = _finished_run(tmp_path / "bad", _RN866, {"eval/accuracy": 0.70,
                                                   "trainable_params": 64_736,
                                                   "gamma/f_0.05": 0.3})
    assert repro.check([bad]) == 1


def test_check_averages_seeds_of_one_config(tmp_path, capsys):
    runs = [_finished_run(tmp_path / f"s{i}", _RN866, {"eval/accuracy": acc,
                                                       "trainable_params": 64_736,
                                                       "gamma/f_0.05": 0.3}, seed=i)
            for i, acc in enumerate((0.79, 0.81, 0.83))]
    assert repro.check(runs) == 0
    assert "0.81 (3 run(s))" in capsys.readouterr().out


def test_check_comparison_claims_need_both_configs(tmp_path, capsys):
    cifar = "experiments/batchnorm_only/configs/cifar_resnet.py"
    full = _finished_run(tmp_path / "all", f"{cifar}:depth=56,trainable=all",
                         {"eval/accuracy": 0.93})
    assert repro.check([full]) == 0
    out = capsys.readouterr().out
    assert "| B4a |" in out and "needs a run of" in out
    no_affine = _finished_run(tmp_path / "no_affine", f"{cifar}:depth=56,trainable=all_no_affine",
                              {"eval/accuracy": 0.94})
    assert repro.check([full, no_affine]) == 1  # γ, β made it worse: hard B4a fails
    out = capsys.readouterr().out
    assert "-0.01 (1 run(s) vs 1)" in out
    better = _finished_run(tmp_path / "no_affine2", f"{cifar}:depth=56,trainable=all_no_affine",
                           {"eval/accuracy": 0.92}, seed=1)
    assert repro.check([full, better]) == 0


def test_check_without_results_says_how_to_resume(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert repro.check([tmp_path]) == 2
    assert "resume" in capsys.readouterr().err
    assert repro.check([tmp_path / "nowhere"]) == 2
    message = capsys.readouterr().err
    assert "does not exist" in message and "resume" not in message


def test_list_names_every_paper(capsys):
    assert repro.main(["list"]) == 0
    out = capsys.readouterr().out
    for slug in repro.SLUGS:
        assert slug in out
    assert "B1" in out and "fashion_mnist: bn_only > output_only" in out


@pytest.mark.parametrize("grid", ["fashion_mnist", "digits"])
def test_every_ordering_pair_has_a_hard_claim(grid):
    order = ("all", "bn_and_output", "bn_only", "output_only", "random_k_per_channel", "none")
    hard = {c.id for c in claims.SMALL_CLAIMS if c.hard}
    for better, worse in zip(order, order[1:]):
        assert f"{grid}: {better} > {worse}" in hard


def test_analysis_of_a_finished_run(tmp_path):
    from lib import train

    config = config_lib.load_file(repro.REPO / "experiments/batchnorm_only/configs/digits.py",
                                  "trainable=bn_only,steps=8")
    config.progress = False
    results = train.run(config, tmp_path)
    out = analysis.analyse(tmp_path, ablation_tau=0.05)
    assert out["ablation"]["accuracy_before"] == pytest.approx(results["eval/accuracy"])
    assert out["final"]["channels"] == 336 and out["init"]["channels"] == 336
    # γ ~ U[0,1) at init: f_τ ≈ τ over 336 channels
    assert abs(out["init"]["f_0.1"] - 0.1) < 0.06
    assert (tmp_path / "analysis" / "gamma.json").is_file()
    assert (tmp_path / "analysis" / "gamma_hist.png").stat().st_size > 1000
