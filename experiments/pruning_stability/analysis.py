"""Across runs: the stability-accuracy tradeoff statistics and plots (pruning_stability.md §4).

    python -m experiments.pruning_stability.analysis RUN_WORKDIR [RUN_WORKDIR …] [--out DIR]

reads each finished run's config.json and results.json (the procedure writes both), groups the
runs by configuration (model, target, period, score, fractions, BN masking, noise), prints each
group's mean ± std of mean stability, best test accuracy and generalization gap, the Pearson r
and Kendall τ between mean stability and best test accuracy (95 % Fisher-z intervals; the paper
expects a negative correlation, G2) over all runs, per model, and per model and period (Figure
3's iterative rates), and writes stability_vs_accuracy.png.
"""

from __future__ import annotations

import pathlib
import sys

from lib import analysis, stats
from lib.claims import mean_std

KEYS = ("mean_stability", "best_test_accuracy", "generalization_gap")


def group_name(config: dict) -> str:
    fp, model = config["filter_pruning"], config["model"]
    depth = "" if model["name"] == "convnet" else str(model["depth"])
    name = f"{model['name']}{depth} {fp['target']}"
    if fp["target"] not in ("none", "scratch"):
        name += f" r={fp['period']} {fp['score']}"
    if fp["target"] != "none":
        name += " f=" + "/".join(f"{f:g}" for f in dict.fromkeys(fp["fractions"]))
    if not fp["mask_bn"]:
        name += " no_bn_mask"
    if fp["noise"] != "none":
        name += f" {fp['noise']}({fp['noise_steps']})"
    return name


def load_runs(workdirs) -> list[tuple[str, dict]]:
    runs = []
    for w in workdirs:
        config, results = analysis.read_run(w)
        runs.append((group_name(config), results))
    return runs


def summarize(runs: list[tuple[str, dict]]) -> dict:
    groups: dict[str, list[dict]] = {}
    for name, result in runs:
        groups.setdefault(name, []).append(result)
    table = {name: {k: mean_std([r[k] for r in rs]) for k in KEYS} | {"runs": len(rs)}
             for name, rs in sorted(groups.items())}
    out = {"groups": table, "correlations": {}}
    subsets = {"all runs": runs}
    for name, r in runs:  # per model, and per model and period (Figure 3: per iterative rate)
        model, *rest = name.split()
        subsets.setdefault(model, []).append((name, r))
        period = next((w for w in rest if w.startswith("r=")), None)
        if period:
            subsets.setdefault(f"{model} {period}", []).append((name, r))
    for label, chosen in subsets.items():
        if len(chosen) >= 3 and (label == "all runs" or len(chosen) < len(runs)):
            out["correlations"][label] = stats.correlations(
                [r["mean_stability"] for _, r in chosen],
                [r["best_test_accuracy"] for _, r in chosen])
    return out


def scatter(ax, points: dict[str, list[tuple[float, float]]], title: str) -> None:
    """Mean stability (x) vs best test accuracy (y), one colour per group."""
    for name, xy in points.items():
        ax.scatter([p[0] for p in xy], [p[1] for p in xy], label=name, s=18)
    xs = [p[0] for xy in points.values() for p in xy]
    ys = [p[1] for xy in points.values() for p in xy]
    if len(xs) >= 4:
        c = stats.correlations(xs, ys)
        title += (f"\nPearson r {c['pearson']:+.2f} [{c['pearson_low']:+.2f}, "
                  f"{c['pearson_high']:+.2f}], Kendall τ {c['kendall']:+.2f}")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("mean stability (%)")
    ax.set_ylabel("best test accuracy after the last event")
    ax.legend(fontsize=6)


def plot_runs(runs: list[tuple[str, dict]], path: pathlib.Path) -> None:
    plt = analysis.pyplot()
    points: dict[str, list] = {}
    for name, r in runs:
        points.setdefault(name, []).append((r["mean_stability"], r["best_test_accuracy"]))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    scatter(ax, points, "stability vs best test accuracy")
    analysis.save(fig, path)


def plot_small_scale(m: dict, path: pathlib.Path) -> None:
    """claims.measure's results: mean instability per target for each setting, and the
    Fashion-MNIST stability-accuracy scatter."""
    plt = analysis.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    settings = [s for s in ("digits", "digits_lr1e-3") if s in m]
    for i, setting in enumerate(settings):
        targets = list(m[setting])
        stats_ = [mean_std([r["mean_instability"] for r in m[setting][t]]) for t in targets]
        xs = [j + 0.35 * i for j in range(len(targets))]
        axes[0].bar(xs, [s[0] for s in stats_], width=0.35, yerr=[s[1] for s in stats_],
                    capsize=3, label=setting)
        axes[0].set_xticks(range(len(targets)), targets)
    axes[0].set_ylabel("mean instability per event")
    axes[0].set_title("digits: instability by pruning target (± std over seeds)", fontsize=8)
    axes[0].legend(fontsize=7)
    if "fmnist" in m:
        points = {t: [(r["mean_stability"], r["best_test_accuracy"]) for r in rs]
                  for t, rs in m["fmnist"].items()}
        scatter(axes[1], points, "Fashion-MNIST")
    analysis.save(fig, path)


def report(workdirs, out: pathlib.Path) -> None:
    runs = load_runs(workdirs)
    result = summarize(runs)
    for name, g in result["groups"].items():
        print(f"{name:40s} n={g['runs']:2d} " + "  ".join(
            f"{k} {g[k][0]:.4g} ± {g[k][1]:.2g}" for k in KEYS))
    for label, c in result["correlations"].items():
        print(f"corr(mean stability, best test acc), {label} ({c['n']} runs): Pearson "
              f"{c['pearson']:+.3f} [{c['pearson_low']:+.3f}, {c['pearson_high']:+.3f}], "
              f"Kendall {c['kendall']:+.3f} [{c['kendall_low']:+.3f}, {c['kendall_high']:+.3f}]")
    plot_runs(runs, out / "stability_vs_accuracy.png")
    print(f"wrote {out / 'stability_vs_accuracy.png'}")


def main(argv=None) -> int:
    return analysis.main(__doc__, report, argv)


if __name__ == "__main__":
    sys.exit(main())
