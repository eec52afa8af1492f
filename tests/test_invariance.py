"""invariance (experiments/invariance) against hand computations: the invariance score (the
4-sample example of spec §6, identity and constant transforms, the seeded baseline
permutation, percentiles, the gap), the shifted-items set and its augmentation, and the
measurement procedure with its bad input."""

import json

import numpy as np
import pytest

from experiments.invariance import alignment, claims, measure, metric, procedure, search, shifted
from lib import config as config_lib
from lib import data
from lib.data import fashion_mnist, preprocess
from tests.helpers import REPO

CONFIG = REPO / "experiments/invariance/configs/shifted.py"

R2 = np.sqrt(2.0)


def test_the_hand_computed_four_sample_example():
    z = np.array([[1, 0], [0, 1], [1, 1], [1, -1]], float)
    z_t = np.array([[1, 0], [1, 1], [-1, -1], [1, -1]], float)
    perm = np.array([1, 0, 3, 2])  # z_t[perm] = (1,1), (1,0), (1,-1), (-1,-1)
    # cosine: d = 0, 1 − 1/√2, 2, 0;  b = 1 − 1/√2, 1, 1, 1
    d = np.array([0, 1 - 1 / R2, 2, 0])
    b = np.array([1 - 1 / R2, 1, 1, 1])
    inv = metric.scores(z, z_t, perm)
    np.testing.assert_allclose(inv, (b - d) / (b + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(inv, [1, 1 / R2, -1, 1], atol=1e-7)
    assert metric.summary(inv)["median"] == pytest.approx((1 / R2 + 1) / 2, abs=1e-7)
    # L2: d = 0, 1, 2√2, 0;  b = 1, √2, 2, 2
    np.testing.assert_allclose(metric.scores(z, z_t, perm, "l2"),
                               [1 / (1 + 1e-8), (R2 - 1) / (R2 + 1e-8),
                                (2 - 2 * R2) / (2 + 1e-8), 2 / (2 + 1e-8)], rtol=1e-12)


def test_identity_transform_gives_one_for_every_sample():
    x = np.random.default_rng(0).normal(size=(200, 7))
    perm = metric.permutation(200, seed=3)
    for kind in metric.DISTANCES:
        np.testing.assert_allclose(metric.scores(x, x, perm, kind), 1, atol=1e-6)


def test_a_constant_transform_gives_a_median_below_one_half():
    z = np.random.default_rng(1).uniform(size=(100, 5))
    z_t = np.tile(np.random.default_rng(2).uniform(size=(1, 5)), (100, 1))  # f(t(x)) = c
    inv = metric.scores(z, z_t, metric.permutation(100, 0))
    assert metric.summary(inv)["median"] < 0.5
    np.testing.assert_allclose(inv, 0, atol=1e-6)  # d_i = b_i for every i


def test_the_permutation_is_seeded_and_has_no_fixed_point():
    a, b, c = (metric.permutation(50, s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for seed in range(30):
        p = metric.permutation(5, seed)
        assert sorted(p) == list(range(5)) and not np.any(p == np.arange(5))


def test_percentiles_and_the_gap_by_hand():
    s = metric.summary(np.arange(101) / 100)
    assert s["median"] == 0.5 and len(s["percentiles"]) == 100
    np.testing.assert_allclose(s["percentiles"], np.arange(100) / 100, atol=1e-12)
    trained = {k: 0.1 * k for k in range(10)}
    untrained = {k: 0.05 * k for k in range(10)}
    assert metric.invariance_gap(trained, untrained) == pytest.approx(0.05 * 5)  # mean k = 5
    with pytest.raises(ValueError, match="missing \\[7\\]"):
        metric.invariance_gap({k: 0 for k in range(7)}, untrained)


def test_bad_inputs_say_what_is_wrong():
    z = np.zeros((3, 2))
    with pytest.raises(ValueError, match="distance 'manhattan'; valid choices: cosine, l2"):
        metric.scores(z, z, np.array([1, 2, 0]), "manhattan")
    with pytest.raises(ValueError, match="perm must be a permutation of 0..2"):
        metric.scores(z, z, np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="two \\[N, D\\] arrays of one shape"):
        metric.scores(z, np.zeros((3, 3)), np.array([1, 2, 0]))


# The small-scale experiment's pieces: the shifted-items set, the shift, the procedure.

def test_items_sit_centred_or_at_fixed_offsets_in_range():
    centred = shifted.build("train_centred").images
    items, _ = fashion_mnist.pooled_items("train", 5)
    np.testing.assert_array_equal(centred[:5, 7:21, 7:21, 0], items)
    assert centred[:5].sum() == pytest.approx(items.sum(), rel=1e-6)  # nothing outside
    data = shifted.build("train_data").images
    for i in range(50):  # each item somewhere in 0..14², intact
        rows, cols = np.nonzero(data[i, :, :, 0])
        assert rows.min() >= 0 and rows.max() <= 27 and cols.max() <= 27
        assert data[i].sum() == pytest.approx(centred[i].sum(), rel=1e-6)
    assert not np.array_equal(data[:50], centred[:50])
    np.testing.assert_array_equal(data, shifted.build.__wrapped__("train_data").images)


def test_random_position_moves_the_item_uniformly():
    image = shifted.build("train_centred").images[0]
    augment = shifted.RandomPosition(None, 28)
    rng = np.random.default_rng(0)
    item = image[7:21, 7:21]
    offsets = []
    for _ in range(600):
        out = augment.transform({"image": image}, rng)["image"]
        assert out.sum() == pytest.approx(image.sum(), rel=1e-6)
        hit = [(r, c) for r in range(15) for c in range(15)
               if np.array_equal(out[r:r + 14, c:c + 14], item)]
        offsets.append(hit[0])
    rows = np.array([r for r, _ in offsets])
    assert rows.min() == 0 and rows.max() == 14  # the whole range occurs
    assert abs(rows.mean() - 7) < 3 * np.sqrt((15**2 - 1) / 12 / 600)


def test_shifts_by_whole_pixels_with_zero_fill_on_host_and_device():
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4, 1).astype(np.float32) + 1
    out = preprocess.shift(x, 1, 0)
    np.testing.assert_array_equal(out[:, :, 0], 0)
    np.testing.assert_array_equal(out[:, :, 1:], x[:, :, :3])
    np.testing.assert_array_equal(preprocess.shift(x, 0, 0), x)
    left_up = preprocess.shift(x, -2, -1)  # by hand: out[r, c] = x[r + 1, c + 2]
    expected = np.zeros_like(x)
    expected[:, :2, :2] = x[:, 1:, 2:]
    np.testing.assert_array_equal(left_up, expected)
    for k in (0, 1, 3, 4):
        np.testing.assert_array_equal(measure._shift(x, k), preprocess.shift(x, k, 0))


def _config(variant, **overrides):
    return config_lib.updated(config_lib.load_file(CONFIG, f"variant={variant},quick=True"),
                              overrides)


def test_untrained_model_measures_b_over_b_plus_eps_at_k_zero_and_less_elsewhere(tmp_path):
    """At k = 0, d_i = 0, so inv_i = b_i / (b_i + 1e-8): the smallest b_i bounds the minimum."""
    results = procedure.run(_config("untrained"), tmp_path / "run")
    assert not (tmp_path / "run" / "train").exists()
    b = results["inv/baseline_min/shift0"]
    assert results["inv/min/shift0"] == pytest.approx(b / (b + 1e-8), abs=1e-7)
    assert results["inv/max/shift0"] <= 1
    assert results["inv/median/shift2"] < 1
    assert "inv_l2/median/shift2" in results
    saved = json.loads((tmp_path / "run" / "invariance.json").read_text())
    assert saved["values"]["inv/median/shift2"] == results["inv/median/shift2"]
    assert len(saved["values"]["inv/percentiles/shift2"]) == 100
    samples = np.load(tmp_path / "run" / "invariance_samples.npz")
    assert samples["inv/shift2"].shape == (1000,)
    assert np.median(samples["inv/shift2"]) == pytest.approx(results["inv/median/shift2"],
                                                             abs=1e-6)


def test_batched_measurement_equals_a_loop_over_transforms_on_the_host(tmp_path):
    """The engine (all transforms in one jitted call per batch, partners scored as their
    batch comes) against the plain way: embed every transformed image set, then
    metric.scores. Registry kinds and whole-pixel shifts, cosine and L2, and the gap."""
    from lib import features, perturb, train
    from lib.data import pipeline

    kinds, magnitudes = ("rotate", "contrast_decrease"), (0, 3, 4, 5, 6, 7)
    config = _config("untrained", **{
        "invariance.kinds": kinds, "invariance.magnitudes": magnitudes,
        "invariance.shifts": (0, 3), "invariance.examples": 60, "invariance.batch_size": 16,
        "invariance.untrained_reference": True, "invariance.untrained_seed": 5,
        "invariance.chunk": 4, "invariance.equivariance_examples": 40})
    results = procedure.run(config, tmp_path / "run")
    trainer = train.Trainer(config)
    images = np.concatenate([b["image"][b["mask"] > 0] for b in data.eval_batches(
        procedure.measurement_data(config))])
    assert len(images) == 60
    perm = metric.permutation(60, 0)

    def embed(state, x):
        padded = np.concatenate([x, np.zeros_like(x[:4])])  # 64 = 4 batches of 16
        mask = (np.arange(64) < 60).astype(np.float32)
        batches = [{"image": padded[i:i + 16], "mask": mask[i:i + 16]} for i in range(0, 64, 16)]
        return features.extract(trainer, state, lambda m, b: m(
            b["image"], train=False, features=True)[1]["pool"], batches)["features"]

    seeded = train.Trainer(config_lib.updated(config, {"seed": 5})).initial_state()
    medians = {}
    for prefix, state in (("", trainer.starting_state()[0]), ("untrained/", seeded)):
        z = embed(state, images)
        moved = {f"shift{p}": preprocess.shift(images, p, 0) for p in (0, 3)}
        moved.update({f"{kind}_k{k}": np.asarray(perturb.perturb(images, kind, k))
                      for kind in kinds for k in magnitudes})
        for name, x in moved.items():
            z_t = embed(state, x)
            equi = np.median(alignment.equivariance(z[:40], z_t[:40], 0))
            assert results[f"{prefix}equi/median/{name}"] == pytest.approx(equi, abs=2e-5)
            for dist, key in (("cosine", "inv"), ("l2", "inv_l2")):
                inv = metric.scores(z, embed(state, x), perm, dist)
                got = results[f"{prefix}{key}/median/{name}"]
                assert got == pytest.approx(np.median(inv), abs=2e-5), (prefix, name, dist)
            medians[prefix, name] = results[f"{prefix}inv/median/{name}"]
    for kind in kinds:
        gap = np.mean([medians["", f"{kind}_k{k}"] - medians["untrained/", f"{kind}_k{k}"]
                       for k in range(3, 8)])
        assert results[f"gap/{kind}"] == pytest.approx(gap, abs=1e-7)
    assert pipeline.normalization_stats(config.data)[0].tolist() == [0.0]  # pixels as trained


@pytest.mark.parametrize("overrides, message", [
    ({"invariance.distances": ("cos",)}, "invariance.distances=\\('cos',\\); valid choices: "
                                         "cosine, l2"),
    ({"invariance.feature": "gap"}, "invariance.feature='gap': the model has the features "
                                    "conv0, conv1, conv2, pool"),
    ({"invariance.shifts": (0, 28)}, "reach past the images' width 28"),
    ({"invariance.kinds": ("rotate", "blur")}, "unknown transformation 'blur'; valid choices: "
                                               "translateX"),
    ({"invariance.kinds": ("rotate",), "invariance.magnitudes": (3, 10)},
     "magnitude index 10 for rotate: it must be an integer in 0–9"),
    ({"invariance.space": "lab"}, "invariance.space='lab'; valid choices: pixel, normalized"),
    ({"invariance.shifts": (), "invariance.kinds": ("",)}, "nothing to measure"),
])
def test_bad_measurement_settings_are_refused_before_anything_is_written(tmp_path, overrides,
                                                                         message):
    with pytest.raises(config_lib.ConfigError, match=message):
        procedure.run(_config("data", **overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# The similarity search (experiments/invariance/search.py).

def test_search_statistics_by_hand():
    base = np.array([0.5, 0.8, 0.4, 0.5])
    moved = np.array([0.6, 0.6, 0.5, 0.5])  # Δ = +0.1, −0.2, +0.1, 0
    stats = search.statistics(base, moved)
    assert stats["proportion_boosted"] == 0.5
    assert stats["mean_delta"] == pytest.approx(0.0)
    assert stats["std_delta"] == pytest.approx(np.std([0.1, -0.2, 0.1, 0.0]))
    assert stats["mean_positive_delta"] == pytest.approx(0.1)
    assert stats["mean_negative_delta"] == pytest.approx(-0.2)
    percent = [0.1 / 0.5, -0.2 / 0.8, 0.1 / 0.4, 0.0]
    assert stats["avg_percent_similarity_change"] == pytest.approx(np.mean(percent))
    assert stats["avg_percent_boost"] == pytest.approx(np.mean([0.2, 0.25]))
    assert stats["weighted_boost"] == pytest.approx(0.225 * 0.5)
    assert search.statistics(base, base)["mean_positive_delta"] == 0.0  # none boosted


def test_the_exact_search_test_of_spec_section_6():
    """f = flattened pixels; pairs (x, x shifted right 3 px): shifting back is the one
    candidate that restores every pair exactly."""
    outcome = claims.search_test()
    assert outcome["first"] == "translateX-3" and outcome["proportion_boosted"] == 1.0
    assert outcome["order"].index("translateX-3") == 0 and len(outcome["order"]) == 16


# The claims: the small-scale ones on hand-built measurements, the paper-scale ones through
# `lib.repro check` on finished runs written here.

def _small_fixture():
    def run(mid, top1=None, k0=(0.9999999, 1.0)):
        r = {f"inv/median/shift{k}": mid - 0.01 * k for k in range(0, 20, 2)}
        r["inv/median/shift4"] = 1.0
        r["inv/min/shift0"], r["inv/max/shift0"] = k0
        if top1 is not None:
            r["eval/accuracy"] = top1
        return r

    m = {"centred": [run(0.6, 0.42) for _ in range(3)], "data": [run(0.95, 0.65)] * 3,
         "aug": [run(0.95, 0.65)] * 3, "untrained": [run(0.3)] * 3}
    for variant, acc in (("None", 0.60), ("T", 0.65), ("S", 0.61), ("TS", 0.68)):
        m[f"scaled_{variant}"] = [{"eval/accuracy": acc}] * 3
    m["search"] = {"first": "translateX-3", "order": ["translateX-3", "a", "b"],
                   "proportion_boosted": 1.0}
    return m


def _statuses(m):
    from lib import repro
    return {r.id: r.passed for r in repro.evaluate_small(claims, m)}


def test_every_small_claim_passes_on_a_passing_fixture_and_fails_where_false():
    assert all(_statuses(_small_fixture()).values()), _statuses(_small_fixture())
    cases = {  # mutation -> the claims that must fail
        "identity": (lambda m: m["data"].__setitem__(0, {**m["data"][0],
                                                         "inv/min/shift0": 0.99999}),
                     "shifted: inv = 1 ± 1e-6 at k = 0"),
        "data close to centred": (lambda m: m.__setitem__("data", [
            {k: v - 0.22 if "median/shift" in k and k != "inv/median/shift4" else v
             for k, v in r.items()} for r in m["data"]]), "data ≥ centred + 0.15"),
        "aug top-1": (lambda m: m.__setitem__("aug", [{**r, "eval/accuracy": 0.5}
                                                      for r in m["aug"]]), "aug ≥ centred + 0.10"),
        "search": (lambda m: m["search"].__setitem__("proportion_boosted", 0.99),
                   "search: translateX"),
        "T recovers little": (lambda m: m.__setitem__("scaled_T", [{"eval/accuracy": 0.63}] * 3),
                              "Section-2 analogue"),
        "TS adds nothing": (lambda m: m.__setitem__("scaled_TS", [{"eval/accuracy": 0.59}] * 3),
                            "Section-2 analogue"),
    }
    for name, (mutate, failing) in cases.items():
        m = _small_fixture()
        mutate(m)
        failed = [i for i, ok in _statuses(m).items() if not ok]
        assert len(failed) == 1 and failing in failed[0], (name, failed)


def _finished(tmp_path, name, arg, results):
    config = config_lib.load_file(REPO / claims.IMAGENET, arg)
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(config.to_json_best_effort())
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_paper_claims_are_decided_from_finished_runs(tmp_path, capsys):
    from lib import repro

    def medians(level, prefix=""):
        return {f"{prefix}inv/median/{kind}_k{k}": level
                for kind in claims.MID_GEOMETRIC for k in range(10)}

    runs = [_finished(tmp_path, v, f"model=resnet18,variant={v}",
                      {"eval/accuracy": acc, **medians(m), **medians(0.2, "untrained/"),
                       **{f"gap/{kind}": m - 0.2 for kind in claims.MID_GEOMETRIC}})
            for v, acc, m in (("None", 0.60, 0.5), ("T", 0.64, 0.55), ("HC", 0.66, 0.6),
                              ("CC", 0.62, 0.55))]
    assert repro.check(runs) == 0
    out = capsys.readouterr().out
    assert "| I1 |" in out and "0.6667 (1 run(s) vs 1 over 1)" in out  # (0.64 − 0.6)/(0.06)
    assert "| I4 |" in out and "| I5 |" in out and "| I2 |" in out
    runs[1] = _finished(tmp_path, "T2", "model=resnet18,variant=T",
                        {"eval/accuracy": 0.62, **medians(0.1), **medians(0.2, "untrained/")})
    assert repro.check(runs) == 1  # I1 = 1/3 < 0.5: a hard claim fails
    assert "0.3333" in capsys.readouterr().out
    assert claims.run_metrics(runs[1])["agg/gap_min_k1_5"] == pytest.approx(-0.1)


def test_given_weights_are_measured_again_when_they_change(tmp_path):
    """invariance.json is read back only while the weights it measured stay the same: another
    seed (or init.workdir) in the same workdir measures again."""
    first = procedure.run(_config("untrained"), tmp_path / "run")
    again = procedure.run(_config("untrained"), tmp_path / "run")
    other = procedure.run(_config("untrained", seed=1), tmp_path / "run")
    assert again["inv/median/shift2"] == first["inv/median/shift2"]
    assert other["inv/median/shift2"] != first["inv/median/shift2"]
    assert "eval/accuracy" in first  # the starting state's top-1


def test_measuring_the_seeded_init_against_itself_is_refused(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="every gap would be 0"):
        procedure.run(_config("untrained", **{"invariance.untrained_reference": True}),
                      tmp_path / "run")
    assert not (tmp_path / "run").exists()
