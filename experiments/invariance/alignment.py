"""Alignment of the learned invariances with the data's factors of variation (invariance.md §2.5).

1. Rank vs gap. The similarity search (§2.4, search.json) scores every AutoAugment candidate
   `f"{op}_{index}"` per class. Per class, the candidates at magnitude indices 3–7 are ranked
   by a statistic (magnitude-free ops, AutoContrast, Equalize, Invert, count where their
   policy index lies there, as in the paper's code; named without an index they always count)
   (default: proportion_boosted, ties broken by mean_delta, as the search ranks them); each
   candidate is mapped to the invariance families of lib.perturb it stands for; a family's
   rank is the mean over its candidates in a class ("averaged per family"), then the mean over
   classes. Spearman ρ (scipy.stats.spearmanr) between the families' ranks and their invariance
   gap (results.json `gap/<kind>`: mean over k = 3..7 of median(trained) − median(untrained))
   says whether a model's learned invariance lines up with the data's factors of variation.

   Ranks grow with the statistic (rank 1 = the class's least boosting candidate, rank n = its
   top one, ties share the lowest rank, as scipy.stats.rankdata(method="min") on the statistic),
   so alignment shows as ρ > 0, as claim I9 states it.

   Mapping (default "spec"): ShearX → shearX, ShearY → shearY, TranslateX → translateX,
   TranslateY → translateY, Rotate → rotate, Posterize → posterize, Solarize → solarize,
   Rescale → zoom_out below 1 and zoom_in above 1; Contrast / Brightness, whose AutoAugment
   factor 1 ± v takes a random sign, → both contrast_decrease and contrast_increase (both
   brightness_*). Color, Sharpness, AutoContrast, Equalize and Invert stand for no family: they
   take part in the ranking only. mapping="reference" matches the paper's code instead (below).

2. Equivariance alignment. With D = Z − Z^t ([N, D] clean minus transformed embeddings), B = D
   with each column permuted independently, and a seeded permutation π:
       alignment_i = dist(B_i, B_π(i)) − dist(D_i, D_π(i))      (dist: cosine distance)
   > 0 where the embedding moves in a consistent direction under the transform (the
   displacements of two images are closer than those of the column-shuffled baseline).
   `metric.summary` summarises the per-sample values as it does the invariance score.

Facts from the paper's code (facebookresearch/grounding-inductive-biases):
- similarity_search_experiments/correlate_rank_with_invariance_gap.py: candidates are filtered
  to magnitude indices 3–7 before ranking; ranks are per class; a family's rank is the mean
  over all its (class, magnitude) rows (`transform_to_avg_rank`), i.e. averaged over classes;
  gaps are mean over k = 3..7 of the trained − untrained medians, for the ResNet-18 and the ViT
  ("ViT (L/16)", built as ViT-B/16) on the train split with the cosine distance. Default
  ranking statistic: avg_percent_similarity_change (rank_by=("avg_percent_similarity_change",)
  here). Candidate → family there: an op keeps its name (shearX, shearY, translateX,
  translateY, rotate, posterize, solarize match families; color, sharpness, equalize, invert,
  autocontrast match none), contrast at index ≤ 5 → decrease_contrast and > 5 →
  increase_contrast, rescale → scale_zoom_in at every index (both branches of its test say
  zoom_in), brightness matches no family (its gap names are decrease_/increase_brightness):
  mapping="reference". Ranks come from the search with the no-augmentation ResNet-18 on the
  train split. The file computes no correlation itself (the Spearman ρ is the spec's; its plot
  counts each family among the classes' top 5 by proportion_boosted, binned by the sign of the
  gap); it keeps one row per (class, candidate), which pairs="classes" approaches with one
  point per (class, family).
  Not followed: its rank call ranks the op-name column (alphabetically) after sorting by the
  statistic, so its ranks do not depend on the statistic; the direction it meant is not
  recoverable, and ranks here grow with the statistic.
- equivariance_measure/embedding_alignments.py: D = z − z_t per magnitude index 0–9 of the 13
  invariance transformations; B permutes the rows of each column of D by its own random
  permutation; one random permutation of the rows serves both D and B; dist is 1 − cosine
  similarity (torch's, row-wise); summarised by t-digest percentiles 0–100. Its permutations
  (torch.randperm) may have fixed points, which score 0; π here is metric.permutation's
  (seeded, without fixed points), and the percentiles are exact.
- equivariance_measure/config/config_equivariance.yaml: n_samples 10000 is passed as
  Lightning's limit_test_batches, a count of batches (of 32: up to 320,000 images, where the
  spec reads 10,000 samples); seed 0, train split, the ResNet-18 GAP embedding (a ViT module
  takes timm's forward_features).

    python -m experiments.invariance.alignment --search SEARCH_WORKDIR \\
        --invariance RUN_WORKDIR [RUN_WORKDIR ...] [--out FILE]
prints the table of ranks and gaps with each run's ρ and writes alignment.json (default: in
SEARCH_WORKDIR). A missing file, a run measured without invariance.untrained_reference or
fewer than 3 families with both a rank and a gap exit 2 with the reason, writing nothing.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import pathlib
import re
import sys

import numpy as np
import scipy.stats

from experiments.invariance import metric, search
from lib import files
from lib.data import autoaugment

RANK_MAGNITUDES = metric.GAP_MAGNITUDES  # the candidates' magnitude indices 3–7
FAMILY_MAPPINGS = ("spec", "reference")
PAIRS = ("families", "classes")
MIN_POINTS = 3
SAME_NAME = {"ShearX": "shearX", "ShearY": "shearY", "TranslateX": "translateX",
             "TranslateY": "translateY", "Rotate": "rotate", "Posterize": "posterize",
             "Solarize": "solarize"}
SIGNED = {"Contrast": "contrast", "Brightness": "brightness"}  # factor 1 ± v, random sign
_NAME = re.compile(r"(?P<op>[A-Za-z]+)(?:_(?P<index>\d+|None))?")


class InputError(ValueError):
    """Bad input of the alignment: the CLI reports it and exits 2."""


# --- 1. rank vs gap -----------------------------------------------------------------------------

def parse_candidate(name: str) -> tuple[str, int | None]:
    """(op, magnitude index) of a search candidate `f"{op}_{index}"`; index None for a
    magnitude-free op named without one ("Equalize" or "Equalize_None")."""
    match = _NAME.fullmatch(name)
    op = match and match["op"]
    if op not in autoaugment.OPS:
        raise InputError(f"candidate {name!r} is not OP_INDEX with OP one of "
                         f"{', '.join(autoaugment.OPS)}")
    index = None if match["index"] in (None, "None") else int(match["index"])
    if index is None and op not in autoaugment.MAGNITUDE_FREE:
        raise InputError(f"candidate {name!r}: {op} needs a magnitude index 0–9")
    if index is not None and not 0 <= index < autoaugment.NUM_LEVELS:
        raise InputError(f"candidate {name!r}: magnitude index {index} outside 0–9")
    return op, index


def families(op: str, index: int | None, mapping: str = "spec") -> tuple[str, ...]:
    """The lib.perturb families a candidate (op, index) stands for (none for most appearance
    ops); `mapping` "spec" (module docstring) or "reference" (the paper's code)."""
    if mapping not in FAMILY_MAPPINGS:
        raise InputError(f"mapping {mapping!r}; valid choices: {', '.join(FAMILY_MAPPINGS)}")
    if op in SAME_NAME:
        return (SAME_NAME[op],)
    if op == "Rescale":
        if mapping == "reference":
            return ("zoom_in",)
        scale = autoaugment.value(op, index)
        return ("zoom_out",) if scale < 1 else ("zoom_in",) if scale > 1 else ()
    if op in SIGNED:
        name = SIGNED[op]
        if mapping == "spec":
            return (f"{name}_decrease", f"{name}_increase")
        if op == "Contrast":
            return ("contrast_decrease",) if index <= 5 else ("contrast_increase",)
    return ()


def class_ranks(per_candidate: dict[str, dict], rank_by=search.RANK_KEYS,
                magnitudes=RANK_MAGNITUDES) -> dict[str, int]:
    """{candidate: rank} of one class's candidates at `magnitudes` (and those named without
    an index): 1 + the number of candidates with a smaller statistic tuple `rank_by`."""
    pool = {name: tuple(_statistic(stats, k, name) for k in rank_by)
            for name, stats in per_candidate.items()
            if parse_candidate(name)[1] in (None, *magnitudes)}
    ordered = sorted(pool.values())
    return {name: bisect.bisect_left(ordered, key) + 1 for name, key in pool.items()}


def _statistic(stats: dict, key: str, name: str) -> float:
    if key not in stats:
        raise InputError(f"candidate {name!r} has no statistic {key!r}; it has "
                         f"{', '.join(sorted(stats))}")
    value = float(stats[key])
    if math.isnan(value):
        raise InputError(f"candidate {name!r}: statistic {key!r} is NaN")
    return value


def family_ranks(stats: dict[str, dict[str, dict]], rank_by=search.RANK_KEYS,
                 magnitudes=RANK_MAGNITUDES, mapping: str = "spec") -> dict[str, dict]:
    """{class: {family: mean rank of its candidates at `magnitudes`}} from the search's
    {class: {candidate: statistics}}."""
    out = {}
    for label, per_candidate in stats.items():
        collected: dict[str, list[int]] = {}
        for name, rank in class_ranks(per_candidate, rank_by, magnitudes).items():
            for family in families(*parse_candidate(name), mapping):
                collected.setdefault(family, []).append(rank)
        out[label] = {f: float(np.mean(r)) for f, r in sorted(collected.items())}
    return out


def mean_over_classes(per_class: dict[str, dict]) -> dict[str, float]:
    """{family: mean over the classes of its rank}."""
    collected: dict[str, list[float]] = {}
    for ranks in per_class.values():
        for family, rank in ranks.items():
            collected.setdefault(family, []).append(rank)
    return {f: float(np.mean(r)) for f, r in sorted(collected.items())}


def spearman(x, y) -> tuple[float | None, float | None]:
    """(ρ, two-sided p-value) of scipy.stats.spearmanr; (None, None) where x or y is
    constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    result = scipy.stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def correlate(per_class: dict[str, dict], gaps: dict[str, float], pairs: str = "families"
              ) -> dict:
    """ρ between the families' ranks and `gaps` {family: gap}: one point per family (its mean
    rank over classes) or, pairs="classes", one per (class, family)."""
    if pairs not in PAIRS:
        raise InputError(f"pairs {pairs!r}; valid choices: {', '.join(PAIRS)}")
    ranks = mean_over_classes(per_class)
    common = sorted(set(ranks) & set(gaps))
    if len(common) < MIN_POINTS:
        raise InputError(f"{len(common)} famil{'y' if len(common) == 1 else 'ies'} with both a "
                         f"rank and a gap ({', '.join(common) or 'none'}); the Spearman ρ needs "
                         f"{MIN_POINTS}. Ranked: {', '.join(ranks) or 'none'}; with a gap: "
                         f"{', '.join(sorted(gaps)) or 'none'}")
    if pairs == "families":
        points = [(ranks[f], gaps[f]) for f in common]
    else:
        points = [(r[f], gaps[f]) for r in per_class.values() for f in common if f in r]
    rho, p = spearman(*zip(*points))
    return {"rho": rho, "p_value": p, "n": len(points), "n_families": len(common),
            "ranks": {f: ranks[f] for f in common}, "gaps": {f: gaps[f] for f in common}}


def alignment(stats: dict[str, dict[str, dict]], gaps_by_run: dict[str, dict], *,
              rank_by=search.RANK_KEYS, magnitudes=RANK_MAGNITUDES, mapping: str = "spec",
              pairs: str = "families") -> dict:
    """The ranks of every family and each run's ρ against its gaps {run: {family: gap}}."""
    if not stats:
        raise InputError("the search has no classes")
    if not rank_by:
        raise InputError("rank_by names no statistic")
    per_class = family_ranks(stats, tuple(rank_by), tuple(magnitudes), mapping)
    runs = {}
    for run, gaps in gaps_by_run.items():
        try:
            runs[run] = correlate(per_class, gaps, pairs)
        except InputError as e:
            raise InputError(f"run {run}: {e}") from None
    pool = max(len(class_ranks(s, tuple(rank_by), tuple(magnitudes))) for s in stats.values())
    return {"ranks": mean_over_classes(per_class), "classes": len(stats), "pool": pool,
            "runs": runs}


def read_search(path) -> tuple[pathlib.Path, dict]:
    """(file, {class: {candidate: statistics}}) of a search workdir or its search.json."""
    path = pathlib.Path(path)
    file = path / "search.json" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"no search results at {file}: run the similarity search (§2.4) "
                         "first, or pass its workdir")
    stats = _read_json(file).get("values", {}).get("stats")
    if not isinstance(stats, dict):
        raise InputError(f"{file} has no values.stats ({{class: {{candidate: statistics}}}})")
    return file, stats


def read_gaps(path) -> tuple[pathlib.Path, dict, str | None]:
    """(file, {family: gap}, model name or None) of an invariance run's workdir or its
    results.json."""
    path = pathlib.Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"no results.json at {file}: the invariance run has not finished "
                         "(re-run its command to resume it)")
    results = _read_json(file)
    gaps = {k.removeprefix("gap/"): float(v) for k, v in results.items()
            if k.startswith("gap/")}
    if not gaps:
        if any(k.startswith("untrained/") for k in results):
            raise InputError(f"{file} has untrained medians but no gap/<kind>: no "
                             "transformation was measured at all of k = 3..7")
        raise InputError(f"{file} has no invariance gaps (gap/<kind>): the run was measured "
                         "without invariance.untrained_reference; re-run it with "
                         "--config.invariance.untrained_reference=True (a finished run is "
                         "measured again without retraining)")
    config = file.parent / "config.json"
    model = _read_json(config).get("model", {}).get("name") if config.is_file() else None
    return file, gaps, model


def _read_json(file: pathlib.Path) -> dict:
    try:
        value = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{file} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise InputError(f"{file} holds a {type(value).__name__}, not a JSON object")
    return value


# --- 2. equivariance alignment ------------------------------------------------------------------

def shuffled_columns(d: np.ndarray, seed: int) -> np.ndarray:
    """B: each column of D permuted by its own permutation, drawn from the seed sequence
    (seed, 1) (independent of π = metric.permutation(N, seed))."""
    return np.random.default_rng([seed, 1]).permuted(np.asarray(d, np.float64), axis=0)


def equivariance_scores(d: np.ndarray, b: np.ndarray, perm: np.ndarray,
                        kind: str = "cosine") -> np.ndarray:
    """[N] alignment_i = dist(B_i, B_π(i)) − dist(D_i, D_π(i)) for given D, B and π."""
    d, b, perm = np.asarray(d, np.float64), np.asarray(b, np.float64), np.asarray(perm)
    if d.shape != b.shape or d.ndim != 2:
        raise ValueError(f"D and B must be two [N, D] arrays of one shape; got {d.shape} and "
                         f"{b.shape}")
    if sorted(perm.tolist()) != list(range(len(d))):
        raise ValueError(f"perm must be a permutation of 0..{len(d) - 1}")
    return metric.distance(b, b[perm], kind) - metric.distance(d, d[perm], kind)


def equivariance(z: np.ndarray, z_t: np.ndarray, seed: int = 0, kind: str = "cosine"
                 ) -> np.ndarray:
    """[N] equivariance alignment of clean embeddings z [N, D] and transformed z_t: D = z − z_t,
    B = shuffled_columns(D, seed), π = metric.permutation(N, seed)."""
    z, z_t = np.asarray(z, np.float64), np.asarray(z_t, np.float64)
    if z.shape != z_t.shape or z.ndim != 2:
        raise ValueError(f"embeddings must be two [N, D] arrays of one shape; got {z.shape} "
                         f"and {z_t.shape}")
    d = z - z_t
    return equivariance_scores(d, shuffled_columns(d, seed), metric.permutation(len(d), seed),
                               kind)


# --- command line -------------------------------------------------------------------------------

def _labels(paths: list[str]) -> list[str]:
    """Each run's folder name, or its path as given where two folder names collide."""
    names = [pathlib.Path(p).resolve().name if pathlib.Path(p).is_dir()
             else pathlib.Path(p).resolve().parent.name for p in paths]
    return [n if names.count(n) == 1 else p for n, p in zip(names, paths)]


def _number(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def table(result: dict) -> str:
    """The families by mean rank (most boosting first) with each run's gap, then each run's ρ."""
    runs = list(result["runs"])
    width = max(12, *(len(r) for r in runs))
    classes = result["classes"]
    lines = [f"{classes} class{'es' * (classes != 1)}, up to {result['pool']} candidates "
             f"ranked per class by {', '.join(result['settings']['rank_by'])} (1 = least "
             "boosting); gap = invariance gap",
             f"{'family':<20} {'rank':>7}  " + "  ".join(f"{r:>{width}}" for r in runs)]
    for family, rank in sorted(result["ranks"].items(), key=lambda item: -item[1]):
        gaps = [result["runs"][r]["gaps"].get(family) for r in runs]
        lines.append(f"{family:<20} {rank:>7.2f}  " +
                     "  ".join(f"{_number(g, '+.4f'):>{width}}" for g in gaps))
    for name, key, spec in (("Spearman ρ", "rho", "+.3f"), ("p-value", "p_value", ".3g"),
                            ("points", "n", "d"), ("families", "n_families", "d")):
        lines.append(f"{name:<28}  " + "  ".join(
            f"{_number(result['runs'][r][key], spec):>{width}}" for r in runs))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", required=True, help="similarity-search workdir or its "
                        "search.json")
    parser.add_argument("--invariance", required=True, nargs="+", help="invariance run "
                        "workdirs (or their results.json), e.g. ResNet-18 and ViT-B/16")
    parser.add_argument("--out", help="the JSON written (default: SEARCH_WORKDIR/"
                        "alignment.json)")
    parser.add_argument("--rank-by", nargs="+", default=list(search.RANK_KEYS),
                        help="statistics that rank a class's candidates, the first deciding "
                        "(the paper's code: avg_percent_similarity_change)")
    parser.add_argument("--mapping", choices=FAMILY_MAPPINGS, default="spec",
                        help="candidate → family mapping (reference: the paper's code)")
    parser.add_argument("--pairs", choices=PAIRS, default="families",
                        help="one point per family (ranks averaged over classes) or per "
                        "(class, family)")
    args = parser.parse_args(argv)
    try:
        search_file, stats = read_search(args.search)
        runs = [read_gaps(p) for p in args.invariance]
        labels = _labels(args.invariance)
        result = alignment(stats, {label: gaps for label, (_, gaps, _) in zip(labels, runs)},
                           rank_by=args.rank_by, mapping=args.mapping, pairs=args.pairs)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for label, (file, _, model) in zip(labels, runs):
        result["runs"][label].update(path=str(file), model=model)
    result["settings"] = {"search": str(search_file), "rank_by": list(args.rank_by),
                          "magnitudes": list(RANK_MAGNITUDES), "mapping": args.mapping,
                          "pairs": args.pairs}
    out = pathlib.Path(args.out) if args.out else search_file.parent / "alignment.json"
    print(table(result))
    out.parent.mkdir(parents=True, exist_ok=True)
    files.write_text_atomic(out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
