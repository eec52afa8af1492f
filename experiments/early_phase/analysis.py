"""Across runs: accuracy versus weights remaining for each rewind step and perturbation.

    python -m experiments.early_phase.analysis RUN_WORKDIR [RUN_WORKDIR …] [--out DIR]

reads each finished procedure's config.json and results.json, groups runs by model and rewind
point (k, or the pretraining variant and P), prints the mean ± std test accuracy per IMP level
(with the fraction of weights remaining) and per perturbation at the last level, and writes
accuracy_vs_remaining.png (one curve per group; perturbations as markers at the last level).
"""

from __future__ import annotations

import pathlib
import sys

from lib import analysis
from lib.claims import mean_std


def group_name(config: dict) -> str:
    model = config["model"]
    name = (f"convnet{'-'.join(map(str, model['widths']))}" if model["name"] == "convnet" else
            f"{model['name']}{model['depth']}x{model['width']}")
    if config["pretrain"]["variant"]:
        return f"{name} pretrain {config['pretrain']['variant']} P={config['pretrain']['steps']}"
    return f"{name} rewind k={config['imp']['rewind_step']}"


def collect(workdirs) -> dict[str, dict]:
    """{group: {"curve": {remaining: [acc, …]}, "perturb": {name: (remaining, [acc, …])}}}."""
    groups: dict[str, dict] = {}
    for w in workdirs:
        config, results = analysis.read_run(w)
        group = groups.setdefault(group_name(config), {"curve": {}, "perturb": {}})
        for level in results["trunk"].values():
            group["curve"].setdefault(level["remaining"], []).append(level["eval/accuracy"])
        last = results["trunk"][str(config["imp"]["levels"])]["remaining"]
        for name, r in results.get("perturb", {}).items():
            group["perturb"].setdefault(name, (last, []))[1].append(r["eval/accuracy"])
    return groups


def plot(groups: dict[str, dict], path: pathlib.Path, title: str) -> None:
    fig, ax = analysis.pyplot().subplots(figsize=(6.5, 4.5))
    for name, g in groups.items():
        xs = sorted(g["curve"], reverse=True)
        stats = [mean_std(g["curve"][x]) for x in xs]
        ax.errorbar([100 * x for x in xs], [s[0] for s in stats], yerr=[s[1] for s in stats],
                    marker="o", capsize=3, label=name)
        for perturbation, (x, accs) in g["perturb"].items():
            mean, std = mean_std(accs)
            ax.errorbar([100 * x], [mean], yerr=[std], marker="s", capsize=3,
                        linestyle="none", label=f"{name}: {perturbation}")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    analysis.save(fig, path)


def report(workdirs, out: pathlib.Path) -> None:
    groups = collect(workdirs)
    for name, g in groups.items():
        print(name)
        for x in sorted(g["curve"], reverse=True):
            mean, std = mean_std(g["curve"][x])
            print(f"  {100 * x:8.3f} % remaining  {mean:.4f} ± {std:.4f} (n={len(g['curve'][x])})")
        for perturbation, (_, accs) in g["perturb"].items():
            mean, std = mean_std(accs)
            print(f"  {perturbation:24s} {mean:.4f} ± {std:.4f} (n={len(accs)})")
    plot(groups, out / "accuracy_vs_remaining.png", "accuracy vs weights remaining (mean ± std)")
    print(f"wrote {out / 'accuracy_vs_remaining.png'}")


def main(argv=None) -> int:
    return analysis.main(__doc__, report, argv)


if __name__ == "__main__":
    sys.exit(main())
