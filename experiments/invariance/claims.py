"""Claims of "Grounding inductive biases in natural images: invariance stems from variations in
data" (invariance.md §5, §6).

Paper scale: I1–I9 with source and tolerance; `python -m lib.repro check` decides I1–I7 from
finished runs of configs/imagenet.py (run_metrics aggregates their measurements) and I8 from a
finished search (configs/search.py). I9 (Spearman ρ between transform rank and invariance
gap) comes from `python -m experiments.invariance.alignment` over a search and invariance
runs: listed, not decided by `check`.
Small scale: the spec's translation experiment (configs/shifted.py) over SEEDS and the four
variants, with its hard assertions (1)–(3); (4) are unit tests (tests/test_invariance.py).
The exact similarity-search test runs too (search_test, on search.py). Not run yet: the soft
Section-2 analogue (random position and scale).
"""

from __future__ import annotations

import pathlib

from lib.claims import PaperClaim, SmallClaim, mean_std, measure_runs

TITLE = (  # the paper, as the reproduction report names it
    "Grounding inductive biases in natural images (Bouchacourt et al., 2106.05121)")
REPORTED = (  # what it reports at paper scale, in a line
    "translation alone recovers most of the augmentation gain; invariance comes mostly from "
    "the data; learned invariances follow ImageNet's factors of variation")

SEEDS = (0, 1, 2)
VARIANTS = ("centred", "data", "aug", "untrained")
MID_SHIFTS = (2, 6)  # the hard assertions' shifts: not multiples of the net's total stride 4
OFF_STRIDE = (2, 6, 10, 14, 18)
SCALED_VARIANTS = ("None", "T", "S", "TS")  # the Section-2 analogue (configs/scaled.py)

IMAGENET = "experiments/invariance/configs/imagenet.py"
SEARCH = "experiments/invariance/configs/search.py"


def _run(variant, model="resnet18", recipe=""):
    return f"{IMAGENET}:model={model},variant={variant}" + (f",recipe={recipe}" if recipe else "")


PAPER_CLAIMS = [
    PaperClaim("I1", "ResNet-18: (acc_T − acc_None)/(acc_HC − acc_None) > 0.5 (translation "
               "alone recovers most of the augmentation gain)", "abstract", "verified (claim)",
               None, config=_run("T"), versus=_run("None"), denominator=_run("HC"),
               bounds=(0.5, float("inf"))),
    PaperClaim("I2", "ResNet-18: scale alone (CC) < translation alone (T): acc_T − acc_CC > 0",
               "abstract", "recollection for the ordering", None, config=_run("T"),
               versus=_run("CC"), bounds=(0.0, float("inf")), hard=False),
    PaperClaim("I2b", "ResNet-18: translation + scale (TS) ≈ standard (HC): |acc_TS − acc_HC| "
               "≤ 1 point", "abstract (\"precise combination\")", "recollection", 0.0, 0.01,
               config=_run("TS"), versus=_run("HC"), hard=False),
    PaperClaim("I3", "ResNet-18 HC top-1 69.76 (±1 with the standard recipe)",
               "torchvision reference weights", "verified", 0.6976, 0.01,
               config=_run("HC", recipe="standard")),
    PaperClaim("I4", "no-aug ResNet-18 ≫ untrained median invariance at mid magnitudes: "
               "min over translate / zoom / rotate and k = 1..5 of the median gap > 0",
               "abstract", "verified (claim)", None, metric="agg/gap_min_k1_5",
               config=_run("None"), bounds=(0.0, float("inf"))),
    PaperClaim("I5", "HC ≥ no-aug median invariance to translate / scale (mean over the four "
               "kinds and k = 1..9 of the medians)", "abstract", "verified (claim)", None,
               metric="agg/translate_scale_median", config=_run("HC"), versus=_run("None"),
               bounds=(0.0, float("inf"))),
    PaperClaim("I6", "ResNet-18 and ViT-B/16 similar in translate / scale invariance: ViT's "
               "gap (mean over the four kinds) within ±50 % of ResNet-18's", "abstract",
               "verified (claim)", None, metric="agg/translate_scale_gap",
               config=_run("HC", model="vit_b16"), denominator=_run("HC"), bounds=(0.5, 1.5)),
    PaperClaim("I7", "inv = 1 exactly at k = 0 (±1e-6): the sample farthest from 1 over every "
               "kind but solarize (soft: the formula gives b/(b + 1e-8) there, see README)",
               "definition", "derived", 1.0, 1e-6, metric="agg/identity_worst",
               config=_run("HC"), hard=False),
    PaperClaim("I8", "per-class top-5 factors of variation mostly appearance: mean share of "
               "appearance ops in the classes' top 5 > 50 %", "abstract", "verified (claim)",
               None, metric="search/appearance_share_top5", config=SEARCH,
               bounds=(0.5, 1.0)),
    PaperClaim("I8b", "the top-5 factors differ across classes: more than one distinct top-5 "
               "set", "abstract", "verified (claim)", None, metric="search/distinct_top5_sets",
               config=SEARCH, bounds=(2, float("inf"))),
    PaperClaim("I9", "Spearman ρ(transform rank, invariance gap) > 0 across families",
               "abstract", "verified (claim)", None, hard=False),
]

TRANSLATE_SCALE = ("translateX", "translateY", "zoom_in", "zoom_out")
MID_GEOMETRIC = (*TRANSLATE_SCALE, "rotate")


def run_metrics(workdir) -> dict:
    """The aggregates the paper-scale claims read, from a finished run's results.json."""
    import json

    r = json.loads((pathlib.Path(workdir) / "results.json").read_text())
    out = {}
    if all(f"inv/median/{k}_k1" in r for k in TRANSLATE_SCALE):
        out["agg/translate_scale_median"] = sum(
            r[f"inv/median/{kind}_k{k}"] for kind in TRANSLATE_SCALE for k in range(1, 10)
        ) / (9 * len(TRANSLATE_SCALE))
    if all(f"gap/{k}" in r for k in TRANSLATE_SCALE):
        out["agg/translate_scale_gap"] = sum(r[f"gap/{k}"] for k in TRANSLATE_SCALE) / 4
    if all(f"untrained/inv/median/{k}_k1" in r for k in MID_GEOMETRIC):
        out["agg/gap_min_k1_5"] = min(
            r[f"inv/median/{kind}_k{k}"] - r[f"untrained/inv/median/{kind}_k{k}"]
            for kind in MID_GEOMETRIC for k in range(1, 6))
    identity = [v for key, v in r.items() if key.startswith(("inv/min/", "inv/max/"))
                and key.endswith("_k0") and "solarize" not in key]
    if identity:
        out["agg/identity_worst"] = max(identity, key=lambda v: abs(v - 1))
    return out


def measure(workdir: pathlib.Path) -> dict:
    """Per variant: each seed's results (resumable sub-workdirs); the Section-2 analogue's
    variants as 'scaled_<variant>'; the exact search test."""
    from experiments.invariance import procedure
    from lib import config as config_lib
    from lib import train

    configs = pathlib.Path(__file__).parent / "configs"

    def run(variant, seed):
        config = config_lib.load_file(configs / "shifted.py", f"variant={variant},seed={seed}")
        return procedure.run(config, workdir / f"{variant}_s{seed}")

    def run_scaled(variant, seed):
        config = config_lib.load_file(configs / "scaled.py", f"variant={variant},seed={seed}")
        return train.run(config, workdir / f"scaled_{variant}_s{seed}")

    def describe(r):
        top1 = f"top-1 {r['eval/accuracy']:.3f}" if "eval/accuracy" in r else ""
        if "inv/median/shift2" not in r:
            return top1
        return (f"median inv k=2 {r['inv/median/shift2']:.3f}, "
                f"k=6 {r['inv/median/shift6']:.3f}" + (f", {top1}" if top1 else ""))

    runs = [(v, f"{v} seed {s}", lambda v=v, s=s: run(v, s)) for v in VARIANTS for s in SEEDS]
    runs += [(f"scaled_{v}", f"Section-2 analogue {v} seed {s}",
              lambda v=v, s=s: run_scaled(v, s)) for v in SCALED_VARIANTS for s in SEEDS]
    return {**measure_runs(workdir, runs, describe), "search": search_test()}


SEARCH_ITEMS, SEARCH_SHIFT = 200, 3


def search_test() -> dict:
    """Spec §6's exact search test: f = flattened pixels; pairs (x, translateX(x, +3 px)) of
    centred test items (one class for the test); candidates translateX/Y by ±1, ±2, ±3 px,
    brightness ×0.7 / ×1.3 and contrast ×0.7 / ×1.3 about each image's mean, on the pair's
    second image. translateX(−3) restores every pair exactly, so it must rank first by
    (proportion_boosted, mean Δ) with proportion_boosted = 1."""
    import numpy as np

    from experiments.invariance import search, shifted
    from lib.data import preprocess

    x = shifted.build("test_centred").images[:SEARCH_ITEMS]
    candidates = {f"translate{axis}{d:+d}": (lambda im, d=d, axis=axis: preprocess.shift(
        im, d if axis == "X" else 0, d if axis == "Y" else 0))
        for axis in "XY" for d in (-3, -2, -1, 1, 2, 3)}
    for f in (0.7, 1.3):
        candidates[f"brightness×{f}"] = lambda im, f=f: np.clip(im * f, 0, 1)
        candidates[f"contrast×{f}"] = lambda im, f=f: np.clip(
            (im - im.mean(axis=(1, 2, 3), keepdims=True)) * f
            + im.mean(axis=(1, 2, 3), keepdims=True), 0, 1)
    stats = search.search(lambda im: im.reshape(len(im), -1), x,
                          preprocess.shift(x, SEARCH_SHIFT, 0), np.zeros(len(x), int),
                          candidates)[0]
    order = search.rank(stats)
    return {"first": order[0], "order": order,
            "proportion_boosted": stats[order[0]]["proportion_boosted"]}


def _search_first(m):
    s = m["search"]
    return (f"first {s['first']} (proportion_boosted {s['proportion_boosted']:.3f}); next "
            f"{', '.join(s['order'][1:3])}",
            s["first"] == "translateX-3" and s["proportion_boosted"] == 1.0)


def _complete(m, variants):
    counts = {v: len(m.get(v, [])) for v in variants}
    if set(counts.values()) != {len(SEEDS)}:
        return f"runs per variant {counts}, expected {len(SEEDS)} each"
    return ""


def mid_invariance(results: dict) -> float:
    """The median invariance averaged over the shifts of MID_SHIFTS, for one run."""
    return sum(results[f"inv/median/shift{k}"] for k in MID_SHIFTS) / len(MID_SHIFTS)


def _seed_mean(m, variant, value):
    return mean_std([value(r) for r in m[variant]])[0]


def _higher(variant, versus, margin, value, what):
    def evaluate(m):
        if missing := _complete(m, (variant, versus)):
            return missing, False
        ours, base = _seed_mean(m, variant, value), _seed_mean(m, versus, value)
        return f"{variant} {ours:.3f}, {versus} {base:.3f} ({what})", ours >= base + margin
    return evaluate


def _identity_is_one(m):
    if missing := _complete(m, VARIANTS):
        return missing, False
    lo = min(r["inv/min/shift0"] for v in VARIANTS for r in m[v])
    hi = max(r["inv/max/shift0"] for v in VARIANTS for r in m[v])
    return f"every sample in [{lo:.8f}, {hi:.8f}]", abs(lo - 1) <= 1e-6 and abs(hi - 1) <= 1e-6


def _non_increasing(m):
    if missing := _complete(m, VARIANTS):
        return missing, False
    rows, ok = [], True
    for v in VARIANTS:
        medians = [_seed_mean(m, v, lambda r, k=k: r[f"inv/median/shift{k}"]) for k in OFF_STRIDE]
        ok &= all(a >= b for a, b in zip(medians, medians[1:]))
        rows.append(f"{v} " + "/".join(f"{x:.2f}" for x in medians))
    return "; ".join(rows), ok


def _untrained_at_stride(m):
    if missing := _complete(m, ("untrained",)):
        return missing, False
    value = _seed_mean(m, "untrained", lambda r: r["inv/median/shift4"])
    return f"untrained {value:.3f}", value >= 0.95


def _top1(r):
    return r["eval/accuracy"]


def _translation_recovers_most(m):
    """(acc_T − acc_None)/(acc_TS − acc_None) > 0.5, decided only where TS adds accuracy."""
    names = [f"scaled_{v}" for v in SCALED_VARIANTS]
    if missing := _complete(m, names):
        return missing, False
    acc = {v: _seed_mean(m, f"scaled_{v}", _top1) for v in SCALED_VARIANTS}
    gain = acc["TS"] - acc["None"]
    text = ", ".join(f"{v} {a:.3f}" for v, a in acc.items())
    if gain <= 0:
        return f"{text}: TS adds nothing over None, so the ratio means nothing", False
    ratio = (acc["T"] - acc["None"]) / gain
    return f"{text}: ratio {ratio:.2f}", ratio > 0.5


SMALL_CLAIMS = [
    SmallClaim("shifted: inv = 1 ± 1e-6 at k = 0 for every sample and model", "spec §6 hard "
               "(1), all variants and seeds", "1 ± 1e-6", _identity_is_one),
    SmallClaim("shifted: median inv (k = 2, 6) data ≥ centred + 0.15", "seed means (spec §6 "
               "hard 2)", "≥ +0.15", _higher("data", "centred", 0.15, mid_invariance,
                                           "median inv, k = 2, 6")),
    SmallClaim("shifted: median inv (k = 2, 6) aug ≥ centred + 0.15", "seed means (spec §6 "
               "hard 2)", "≥ +0.15", _higher("aug", "centred", 0.15, mid_invariance,
                                          "median inv, k = 2, 6")),
    SmallClaim("shifted: median inv (k = 2, 6) data ≥ untrained + 0.4", "seed means (spec §6 "
               "hard 2)", "≥ +0.4", _higher("data", "untrained", 0.4, mid_invariance,
                                          "median inv, k = 2, 6")),
    SmallClaim("shifted: random-position top-1 data ≥ centred + 0.10", "10,000 test items, "
               "seed means (spec §6 hard 3)", "≥ +0.10",
               _higher("data", "centred", 0.10, _top1, "top-1")),
    SmallClaim("shifted: random-position top-1 aug ≥ centred + 0.10", "10,000 test items, "
               "seed means (spec §6 hard 3)", "≥ +0.10",
               _higher("aug", "centred", 0.10, _top1, "top-1")),
    SmallClaim("search: translateX(−3 px) ranks first with proportion_boosted = 1", "f = "
               f"pixels, {SEARCH_ITEMS} pairs (x, x shifted +{SEARCH_SHIFT} px), 16 candidates "
               "(spec §6 exact search test)", "translateX-3, 1.0", _search_first),
    SmallClaim("shifted: medians non-increasing over k = 2, 6, 10, 14, 18", "seed means, every "
               "variant (spec §6 soft)", "non-increasing", _non_increasing, hard=False),
    SmallClaim("Section-2 analogue: (acc_T − acc_None)/(acc_TS − acc_None) > 0.5",
               "random position and scale (14–20 px), 3,000 items, T ±4 px, S ×U(0.8, 1.25); "
               "seed means of test top-1; needs acc_TS > acc_None (spec §6 soft)", "> 0.5",
               _translation_recovers_most, hard=False),
    SmallClaim("shifted: untrained inv ≈ 1 at k = 4 (a multiple of the total stride)",
               "seed mean (spec §6 soft; exact only with zero biases)", "≥ 0.95",
               _untrained_at_stride, hard=False),
]


def plot(m: dict, workdir: pathlib.Path) -> None:
    """Median invariance against the shift, per variant: mean ± std over seeds."""
    from lib import analysis

    fig, ax = analysis.pyplot().subplots(figsize=(6, 3.8))
    for v in (v for v in VARIANTS if m.get(v)):
        shifts = sorted(int(k.removeprefix("inv/median/shift")) for k in m[v][0]
                        if k.startswith("inv/median/shift"))
        stats = [mean_std([r[f"inv/median/shift{k}"] for r in m[v]]) for k in shifts]
        ax.errorbar(shifts, [s[0] for s in stats], yerr=[s[1] for s in stats], capsize=3,
                    marker="o", ms=3, label=v)
    ax.set_xlabel("translateX (px)")
    ax.set_ylabel("median invariance (cosine)")
    ax.set_ylim(-0.5, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(f"GAP embedding, 1,000 centred test items, {len(SEEDS)} seeds", fontsize=9)
    analysis.save(fig, workdir / "invariance_vs_shift.png")
