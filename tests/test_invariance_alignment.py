"""invariance alignment (experiments/invariance/alignment.py, spec §2.5) against hand
computations: Spearman ρ on five families (1 − 6Σd²/(n(n²−1)), no ties), the candidate →
family mapping and the per-class ranks of a hand-written search, the averaging over magnitudes
3–7 and over classes, the per-(class, family) option, the equivariance alignment of a 3-sample
example, and the command line with its bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from experiments.invariance import alignment, metric
from lib import perturb
from lib.data import autoaugment
from tests.helpers import REPO

R2 = np.sqrt(2.0)


def stat(proportion, mean_delta=0.0, percent=0.0):
    return {"proportion_boosted": proportion, "mean_delta": mean_delta,
            "avg_percent_similarity_change": percent}


# One class, one candidate per family: ranks (ascending proportion_boosted) rotate 1, shearX 2,
# translateX 3, posterize 4, solarize 5.
FIVE = {"0": {"Rotate_3": stat(0.1, percent=0.5), "ShearX_4": stat(0.2, percent=0.4),
              "TranslateX_3": stat(0.3, percent=0.3), "Posterize_5": stat(0.4, percent=0.2),
              "Solarize_6": stat(0.5, percent=0.1)}}
# Gap ranks rotate 2, shearX 1, translateX 4, posterize 3, solarize 5: d = −1, 1, −1, 1, 0, so
# ρ = 1 − 6·4 / (5·24) = 0.8. zoom_in has a gap but no rank.
GAPS = {"rotate": 0.2, "shearX": 0.1, "translateX": 0.4, "posterize": 0.3, "solarize": 0.5,
        "zoom_in": 0.9}
RANKS = {"rotate": 1.0, "shearX": 2.0, "translateX": 3.0, "posterize": 4.0, "solarize": 5.0}


def test_spearman_rho_by_hand_on_five_families():
    run = alignment.alignment(FIVE, {"r": GAPS})["runs"]["r"]
    n, d2 = 5, 4
    rho = 1 - 6 * d2 / (n * (n * n - 1))
    assert rho == pytest.approx(0.8)
    assert run["rho"] == pytest.approx(rho, abs=1e-12)
    t = rho * np.sqrt((n - 2) / (1 - rho * rho))  # the t test of a rank correlation
    assert run["p_value"] == pytest.approx(2 * scipy.stats.t.sf(t, n - 2), rel=1e-9)
    assert run["ranks"] == RANKS
    assert run["gaps"] == {f: GAPS[f] for f in RANKS}
    assert (run["n"], run["n_families"]) == (5, 5)
    same_order = {f: 0.1 * r for f, r in RANKS.items()}  # Σd² = 0
    assert alignment.alignment(FIVE, {"r": same_order})["runs"]["r"]["rho"] == pytest.approx(1)


def test_the_statistic_that_ranks_is_an_option():
    # avg_percent_similarity_change orders the five the other way: ranks 6 − r, ρ = −0.8.
    run = alignment.alignment(FIVE, {"r": GAPS},
                              rank_by=("avg_percent_similarity_change",))["runs"]["r"]
    assert run["ranks"] == {f: 6 - r for f, r in RANKS.items()}
    assert run["rho"] == pytest.approx(-0.8)


def test_constant_ranks_or_gaps_give_no_rho():
    assert alignment.spearman([1, 2, 3], [0.5, 0.5, 0.5]) == (None, None)
    assert alignment.spearman([2, 2, 2], [0.1, 0.2, 0.3]) == (None, None)


# A class with ties, an out-of-window candidate, magnitude-free and family-less candidates.
# In the pool (indices 3–7, and Equalize), ascending (proportion_boosted, mean_delta):
# Equalize 1, Contrast_3 2, Rescale_4 3, Rotate_3 = Sharpness_7 4 (tie: both the lower rank),
# Color_4 6, Rescale_6 7. Rotate_8 is outside 3–7 and ranks nothing.
MIXED = {"Rotate_3": stat(0.5, 0.02), "Rotate_8": stat(0.9), "Rescale_4": stat(0.5, 0.01),
         "Rescale_6": stat(0.7), "Contrast_3": stat(0.2), "Color_4": stat(0.6),
         "Equalize": stat(0.1), "Sharpness_7": stat(0.5, 0.02)}


def test_per_class_ranks_of_a_hand_written_search():
    assert alignment.class_ranks(MIXED) == {
        "Equalize": 1, "Contrast_3": 2, "Rescale_4": 3, "Rotate_3": 4, "Sharpness_7": 4,
        "Color_4": 6, "Rescale_6": 7}


def test_candidate_to_family_mapping_on_a_hand_written_search():
    # spec: Rescale 0.40 → zoom_out, 1.625 → zoom_in; Contrast (random sign) → both contrast
    # families; Color, Sharpness, Equalize → none.
    assert alignment.family_ranks({"7": MIXED}) == {"7": {
        "contrast_decrease": 2.0, "contrast_increase": 2.0, "rotate": 4.0, "zoom_in": 7.0,
        "zoom_out": 3.0}}
    # the paper's code: every rescale → zoom_in (mean of 3 and 7); contrast at index ≤ 5 →
    # decrease.
    assert alignment.family_ranks({"7": MIXED}, mapping="reference") == {"7": {
        "contrast_decrease": 2.0, "rotate": 4.0, "zoom_in": 5.0}}


@pytest.mark.parametrize("op, index, spec, reference", [
    ("ShearX", 4, ("shearX",), ("shearX",)),
    ("TranslateY", 6, ("translateY",), ("translateY",)),
    ("Posterize", 5, ("posterize",), ("posterize",)),
    ("Solarize", 7, ("solarize",), ("solarize",)),
    ("Rescale", 0, (), ("zoom_in",)),  # scale 1.0: neither direction
    ("Rescale", 5, ("zoom_out",), ("zoom_in",)),  # 0.25
    ("Rescale", 9, ("zoom_in",), ("zoom_in",)),  # 3.5
    ("Contrast", 5, ("contrast_decrease", "contrast_increase"), ("contrast_decrease",)),
    ("Contrast", 6, ("contrast_decrease", "contrast_increase"), ("contrast_increase",)),
    ("Brightness", 3, ("brightness_decrease", "brightness_increase"), ()),
    ("Color", 4, (), ()),
    ("Invert", None, (), ()),
])
def test_families_of_single_candidates(op, index, spec, reference):
    assert alignment.families(op, index) == spec
    assert alignment.families(op, index, "reference") == reference


def test_every_family_is_a_perturb_kind():
    names = {f for op, index in autoaugment.candidates(per_index=True)
             for mapping in alignment.FAMILY_MAPPINGS
             for f in alignment.families(op, index, mapping)}
    names |= set(alignment.families("Brightness", 3))
    assert names <= set(perturb.KINDS)
    assert {"shearX", "shearY", "translateX", "translateY", "rotate", "zoom_in", "zoom_out",
            "posterize", "solarize", "contrast_decrease", "contrast_increase"} <= names


@pytest.mark.parametrize("name, parsed", [
    ("Rotate_3", ("Rotate", 3)), ("Equalize", ("Equalize", None)),
    ("Equalize_None", ("Equalize", None)), ("Invert_4", ("Invert", 4))])
def test_candidate_names(name, parsed):
    assert alignment.parse_candidate(name) == parsed


@pytest.mark.parametrize("name", ["Spin_3", "rotate_3", "Rotate", "Rotate_12", "Rotate_x"])
def test_bad_candidate_names(name):
    with pytest.raises(alignment.InputError, match=name):
        alignment.parse_candidate(name)


# Two classes. "a": pool (3–7) Rotate_3 1, ShearX_5 2, Rotate_7 3, Solarize_4 4, so rotate =
# (1 + 3)/2 = 2 (Rotate_2 and Rotate_8 left out); "b": ShearX_5 1, Solarize_4 2, Rotate_3 3,
# Rotate_7 4, so rotate = 3.5. Over classes: rotate 2.75, shearX 1.5, solarize 3.
TWO = {"a": {"Rotate_2": stat(0.99), "Rotate_3": stat(0.1), "Rotate_7": stat(0.3),
             "Rotate_8": stat(0.98), "ShearX_5": stat(0.2), "Solarize_4": stat(0.4)},
       "b": {"Rotate_3": stat(0.5), "Rotate_7": stat(0.6), "ShearX_5": stat(0.1),
             "Solarize_4": stat(0.2)}}


def test_ranks_average_over_magnitudes_3_to_7_then_over_classes():
    per_class = alignment.family_ranks(TWO)
    assert per_class == {"a": {"rotate": 2.0, "shearX": 2.0, "solarize": 4.0},
                         "b": {"rotate": 3.5, "shearX": 1.0, "solarize": 2.0}}
    assert alignment.mean_over_classes(per_class) == {"rotate": 2.75, "shearX": 1.5,
                                                      "solarize": 3.0}
    # magnitudes 2–8 bring Rotate_2 (rank 6) and Rotate_8 (rank 5) into class a's pool.
    wide = alignment.family_ranks(TWO, magnitudes=range(2, 9))
    assert wide["a"] == {"rotate": (1 + 3 + 5 + 6) / 4, "shearX": 2.0, "solarize": 4.0}


def test_per_class_pairs_option():
    gaps = {"rotate": 0.3, "shearX": 0.1, "solarize": 0.2}
    run = alignment.alignment(TWO, {"r": gaps}, pairs="classes")["runs"]["r"]
    # points (rank, gap): a (2, .3) (2, .1) (4, .2); b (3.5, .3) (1, .1) (2, .2). Ranks with
    # ties averaged: x 2, 2, 4, 3.5, 1, 2 → 3, 3, 6, 5, 1, 3; y → 5.5, 1.5, 3.5, 5.5, 1.5, 3.5.
    x = [3, 3, 6, 5, 1, 3]
    y = [5.5, 1.5, 3.5, 5.5, 1.5, 3.5]
    assert run["rho"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert (run["n"], run["n_families"]) == (6, 3)
    # one point per family: ranks 2.75, 1.5, 3 vs gaps .3, .1, .2 → ρ = 1 − 6·2/24 = 0.5
    assert alignment.alignment(TWO, {"r": gaps})["runs"]["r"]["rho"] == pytest.approx(0.5)


def test_equivariance_alignment_by_hand():
    # D rows (1,0), (1,1), (0,2); π = (1, 2, 0): dist(D_i, D_π(i)) = 1 − 1/√2, 1 − 1/√2, 1.
    # B = columns of D permuted by (2, 0, 1) each: (0,2), (1,0), (1,1);
    # dist(B_i, B_π(i)) = 1, 1 − 1/√2, 1 − 1/√2.
    d = np.array([[1, 0], [1, 1], [0, 2]], float)
    b = np.array([[0, 2], [1, 0], [1, 1]], float)
    np.testing.assert_array_equal(b, np.stack([d[[2, 0, 1], 0], d[[2, 0, 1], 1]], axis=1))
    perm = np.array([1, 2, 0])
    scores = alignment.equivariance_scores(d, b, perm)
    np.testing.assert_allclose(scores, [1 / R2, 0, -1 / R2], atol=1e-12)
    assert metric.summary(scores)["median"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="permutation"):
        alignment.equivariance_scores(d, b, np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="one shape"):
        alignment.equivariance(d, d[:, :1])


def test_shuffled_columns_permute_each_column_on_its_own_seeded():
    d = np.repeat(np.arange(50.0)[:, None], 6, axis=1)  # every column 0..49
    b = alignment.shuffled_columns(d, seed=3)
    np.testing.assert_array_equal(np.sort(b, axis=0), d)  # each column a permutation of D's
    assert len({tuple(c) for c in b.T}) == 6  # each column its own permutation
    np.testing.assert_array_equal(b, alignment.shuffled_columns(d, seed=3))
    assert not np.array_equal(b, alignment.shuffled_columns(d, seed=4))


def test_equivariance_uses_the_seeded_permutations():
    rng = np.random.default_rng(0)
    z, z_t = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    d = z - z_t
    expected = alignment.equivariance_scores(d, alignment.shuffled_columns(d, 7),
                                             metric.permutation(40, 7))
    np.testing.assert_array_equal(alignment.equivariance(z, z_t, seed=7), expected)
    # the identity transform: D = 0, both distances 1 (cosine of zero vectors is 0): 0.
    np.testing.assert_array_equal(alignment.equivariance(z, z), np.zeros(40))
    # displacements along one direction (positive multiples of v): D rows all parallel, so
    # dist(D_i, D_π(i)) = 0 and the alignment is the baseline's distance, > 0.
    v = rng.normal(size=5)
    parallel = alignment.equivariance(z, z - rng.uniform(0.5, 2.0, size=(40, 1)) * v)
    assert parallel.min() >= -1e-12 and np.median(parallel) > 0


# --- command line -------------------------------------------------------------------------

def write_search(folder, stats=FIVE):
    folder.mkdir(parents=True, exist_ok=True)
    top = {c: sorted(s, key=lambda n: -s[n]["proportion_boosted"]) for c, s in stats.items()}
    (folder / "search.json").write_text(json.dumps(
        {"settings": {}, "values": {"stats": stats, "top": top}}))
    return folder


def write_run(folder, gaps, model=None, untrained=True):
    folder.mkdir(parents=True, exist_ok=True)
    results = {"inv/median/rotate_k3": 0.5}
    if untrained:
        results["untrained/inv/median/rotate_k3"] = 0.1
    results.update({f"gap/{k}": v for k, v in gaps.items()})
    (folder / "results.json").write_text(json.dumps(results))
    if model:
        (folder / "config.json").write_text(json.dumps({"model": {"name": model}}))
    return folder


def test_cli_prints_the_table_and_writes_alignment_json(tmp_path, capsys):
    search = write_search(tmp_path / "search")
    r18 = write_run(tmp_path / "r18", GAPS, model="resnet18")
    vit = write_run(tmp_path / "vit", {f: 0.1 * r for f, r in RANKS.items()}, model="vit_b16")
    assert alignment.main(["--search", str(search), "--invariance", str(r18),
                           str(vit / "results.json")]) == 0
    printed = capsys.readouterr().out
    assert "Spearman ρ" in printed and "+0.800" in printed and "+1.000" in printed
    assert "1 class, up to 5 candidates ranked per class" in printed
    assert printed.index("solarize") < printed.index("rotate")  # most boosting first
    result = json.loads((search / "alignment.json").read_text())
    assert result["ranks"] == RANKS and (result["classes"], result["pool"]) == (1, 5)
    run = result["runs"]["r18"]
    assert run["rho"] == pytest.approx(0.8) and run["n_families"] == 5
    assert run["gaps"] == {f: GAPS[f] for f in RANKS} and run["ranks"] == RANKS
    assert run["model"] == "resnet18" and run["path"] == str(r18 / "results.json")
    assert 0 < run["p_value"] < 1
    assert result["runs"]["vit"]["rho"] == pytest.approx(1.0)
    assert result["settings"]["rank_by"] == ["proportion_boosted", "mean_delta"]
    assert result["settings"]["magnitudes"] == [3, 4, 5, 6, 7]
    # options: --out, --rank-by, --mapping
    out = tmp_path / "other" / "a.json"
    assert alignment.main(["--search", str(search / "search.json"), "--invariance", str(r18),
                           "--out", str(out), "--rank-by", "avg_percent_similarity_change",
                           "--mapping", "reference"]) == 0
    again = json.loads(out.read_text())
    assert again["runs"]["r18"]["rho"] == pytest.approx(-0.8)
    assert again["settings"]["mapping"] == "reference"


def test_cli_as_a_module_exits_2_without_a_traceback(tmp_path):
    search = write_search(tmp_path / "search")
    command = [sys.executable, "-m", "experiments.invariance.alignment", "--search",
               str(search), "--invariance", str(tmp_path / "missing")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    assert "error: no results.json" in done.stderr and "Traceback" not in done.stderr
    assert not (search / "alignment.json").exists()


def _bad(tmp_path, case):
    """(search folder, run folders, extra args) of one bad input."""
    search, run = tmp_path / "search", tmp_path / "run"
    if case == "no search":
        search.mkdir()
        return search, [write_run(run, GAPS)], []
    extra = {"bad name": {"Spin_3": stat(0.1)}, "nan": {"Color_4": stat(float("nan"))}}
    write_search(search, {"0": {**FIVE["0"], **extra.get(case, {})}})
    if case == "no results":
        run.mkdir()
    elif case == "no gaps":
        write_run(run, {}, untrained=False)
    elif case == "no gap magnitudes":
        write_run(run, {})
    elif case == "no overlap":
        write_run(run, {"zoom_in": 0.1, "brightness_increase": 0.2, "rotate": 0.3})
    elif case == "bad json":
        run.mkdir()
        (run / "results.json").write_text("{not json")
    else:
        write_run(run, GAPS)
    return search, [run], ["--rank-by", "weighted_sum"] if case == "bad statistic" else []


@pytest.mark.parametrize("case, message", [
    ("no search", "no search results"),
    ("no results", "no results.json"),
    ("no gaps", "untrained_reference=True"),
    ("no gap magnitudes", "k = 3..7"),
    ("no overlap", "1 family with both a rank and a gap (rotate)"),
    ("bad json", "not valid JSON"),
    ("bad name", "'Spin_3' is not OP_INDEX"),
    ("bad statistic", "no statistic 'weighted_sum'"),
    ("nan", "'Color_4': statistic 'proportion_boosted' is NaN"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, case, message):
    search, runs, extra = _bad(tmp_path, case)
    out = tmp_path / "alignment.json"
    argv = ["--search", str(search), "--invariance", *map(str, runs), "--out", str(out), *extra]
    assert alignment.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists() and not (search / "alignment.json").exists()
