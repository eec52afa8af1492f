"""Across runs: selectivity, accuracy and robustness against α (class_selectivity.md §4).

    python -m experiments.class_selectivity.analysis RUN_WORKDIR [RUN_WORKDIR …] [--out DIR]

reads each finished run's config.json and results.json, prints per α the mean ± std over seeds
of mean SI, clean accuracy, relative corruption (or noise) accuracy, FGSM accuracy at each ε
and the first layer's PCA dimension, the Spearman correlations across runs between mean SI and
relative corruption accuracy (the paper expects negative) and between mean SI and adversarial
accuracy (expected positive), and writes selectivity.png: SI and accuracy vs α, robustness vs
SI, dimensionality per layer per α, and the dimensionality per layer of the representation
change Δ under each perturbation (mean over runs; adversarial above corruption in the paper).
"""

from __future__ import annotations

import pathlib
import sys

from lib import analysis, stats
from lib.claims import mean_std


def load_runs(workdirs) -> list[tuple[float, dict]]:
    runs = [analysis.read_run(w) for w in workdirs]
    return sorted(((c["selectivity"]["alpha"], r) for c, r in runs), key=lambda r: r[0])


def robustness_key(result: dict) -> str:
    """Relative corruption accuracy when corruptions were evaluated, else the strongest noise."""
    if "relative_corruption_accuracy" in result:
        return "relative_corruption_accuracy"
    noise = sorted(k for k in result if k.startswith("relative_accuracy/noise_"))
    if not noise:
        raise KeyError("the runs evaluated neither corruptions nor noise")
    return noise[-1]


def summarize(runs: list[tuple[float, dict]]) -> dict:
    first = runs[0][1]
    robust = robustness_key(first)
    attacks = sorted((k for k in first if k.startswith(("accuracy/fgsm_", "accuracy/pgd_"))),
                     key=lambda k: (k.split("_")[0], float(k.rsplit("_", 1)[1])))
    keys = ["selectivity/mean", "clean_accuracy", robust, *attacks]
    by_alpha: dict[float, list[dict]] = {}
    for alpha, r in runs:
        by_alpha.setdefault(alpha, []).append(r)
    table = {a: {k: mean_std([r[k] for r in rs]) for k in keys} | {"runs": len(rs)}
             for a, rs in by_alpha.items()}
    si = [r["selectivity/mean"] for _, r in runs]
    out = {"table": table, "keys": keys, "correlations": {}}
    if len(runs) >= 3:
        out["correlations"][f"spearman(SI, {robust})"] = stats.spearman(
            si, [r[robust] for _, r in runs])
        for k in attacks:
            out["correlations"][f"spearman(SI, {k})"] = stats.spearman(si, [r[k] for _, r in runs])
    return out


def plot(runs: list[tuple[float, dict]], summary: dict, path: pathlib.Path) -> None:
    table, keys = summary["table"], summary["keys"]
    alphas = sorted(table)
    fig, axes = analysis.pyplot().subplots(1, 5, figsize=(21, 3.8))
    for ax, key in zip(axes[:2], ("selectivity/mean", "clean_accuracy")):
        ax.errorbar(alphas, [table[a][key][0] for a in alphas],
                    yerr=[table[a][key][1] for a in alphas], marker="o", capsize=3)
        ax.set_xlabel("α")
        ax.set_ylabel(key)
    si = [r["selectivity/mean"] for _, r in runs]
    for key in keys[2:]:
        axes[2].scatter(si, [r[key] for _, r in runs], s=14, label=key)
    axes[2].set_xlabel("mean SI")
    axes[2].set_ylabel("accuracy")
    axes[2].legend(fontsize=6)
    layers = [k.split("/", 1)[1] for k in runs[0][1] if k.startswith("pca_dim/")]
    for alpha in alphas:
        rs = [r for a, r in runs if a == alpha]
        axes[3].plot(range(len(layers)), [mean_std([r[f"pca_dim/{n}"] for r in rs])[0]
                                          for n in layers], marker="o", label=f"α = {alpha:g}")
    axes[3].set_ylabel("PCA-95 dimension")
    for perturbation in change_perturbations(runs[0][1]):
        axes[4].plot(range(len(layers)), [mean_std(
            [r[f"pca_dim_change/{perturbation}/{n}"] for _, r in runs])[0] for n in layers],
            marker="o", label=perturbation)
    axes[4].set_ylabel("PCA-95 dimension of Δ")
    for ax in axes[3:]:
        ax.set_xticks(range(len(layers)), layers, rotation=45, fontsize=6)
        ax.legend(fontsize=6)
    analysis.save(fig, path)


def change_perturbations(result: dict) -> list[str]:
    """The perturbations whose Δ dimensionality the runs measured, corruptions as their mean."""
    names = {k.split("/")[1] for k in result if k.startswith("pca_dim_change/")}
    return sorted(n for n in names if not n.startswith("corruption_") or n == "corruption_mean")


def report(workdirs, out: pathlib.Path) -> None:
    runs = load_runs(workdirs)
    summary = summarize(runs)
    for alpha, row in summary["table"].items():
        print(f"α = {alpha:+g} (n={row['runs']}): " + "  ".join(
            f"{k} {row[k][0]:.4f} ± {row[k][1]:.4f}" for k in summary["keys"]))
    for name, rho in summary["correlations"].items():
        print(f"{name} = {rho:+.3f}")
    plot(runs, summary, out / "selectivity.png")
    print(f"wrote {out / 'selectivity.png'}")


def main(argv=None) -> int:
    return analysis.main(__doc__, report, argv)


if __name__ == "__main__":
    sys.exit(main())
