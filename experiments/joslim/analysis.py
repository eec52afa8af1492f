"""Across runs: top-1 against cost fronts, Joslim against Slim (joslim.md §4).

    python -m experiments.joslim.analysis RUN_WORKDIR [RUN_WORKDIR …] [--out DIR]

reads each finished run's front.json (experiments.joslim.procedure) and prints, per method,
the area under the test top-1 front of each seed and their mean ± std, and Joslim's top-1
gain over Slim at matched cost (the best front point of cost ≤ c, on a grid of c over the
costs both cover). Figure: fronts.png, every run's front (test top-1 against the cost ratio)
coloured by method.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from lib import analysis
from lib.claims import mean_std

GRID = 50


def load(workdirs) -> list[tuple[str, dict]]:
    """(method, front.json values) of each finished run."""
    runs = []
    for w in workdirs:
        config, _ = analysis.read_run(w)
        path = pathlib.Path(w) / "front.json"
        if not path.exists():
            raise FileNotFoundError(f"{w} has no front.json: it is not a joslim run "
                                    "(experiments.joslim.procedure)")
        runs.append((config["joslim"]["method"], json.loads(path.read_text())["values"]))
    return runs


def front_points(values: dict) -> tuple[np.ndarray, np.ndarray]:
    chosen = [values["points"][i] for i in values["front"]]
    return (np.array([p["cost"] for p in chosen]), np.array([p["test_top1"] for p in chosen]))


def best_at(costs: np.ndarray, accuracies: np.ndarray, budget: float) -> float:
    """The best accuracy of a front point of cost ≤ budget (nan below the cheapest)."""
    fits = costs <= budget + 1e-12
    return float(accuracies[fits].max()) if fits.any() else float("nan")


def gains(runs, grid: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """(costs, mean Joslim top-1 − mean Slim top-1) at matched cost budgets."""
    by = {m: [front_points(v) for mm, v in runs if mm == m] for m in ("joslim", "slim")}
    if not by["joslim"] or not by["slim"]:
        raise FileNotFoundError("the gain needs runs of both joslim and slim")
    low = max(c.min() for fronts in by.values() for c, _ in fronts)
    budgets = np.linspace(low, 1.0, grid)
    mean = {m: np.array([np.mean([best_at(c, a, b) for c, a in fronts]) for b in budgets])
            for m, fronts in by.items()}
    return budgets, mean["joslim"] - mean["slim"]


def analyse(workdirs, out: pathlib.Path) -> None:
    runs = load(workdirs)
    for method in sorted({m for m, _ in runs}):
        areas = [v["joslim/area_test_top1"] for m, v in runs if m == method]
        mean, std = mean_std(areas)
        print(f"{method}: area under the test top-1 front {mean:.4f} ± {std:.4f} "
              f"({len(areas)} run(s): {', '.join(f'{a:.4f}' for a in areas)})")
    if {"joslim", "slim"} <= {m for m, _ in runs}:
        budgets, gain = gains(runs)
        i = int(np.nanargmax(gain))
        print(f"Joslim − Slim at matched cost: max {gain[i]:+.4f} at cost {budgets[i]:.3f}, "
              f"mean {np.nanmean(gain):+.4f} over cost [{budgets[0]:.3f}, 1]")
    fig, ax = analysis.pyplot().subplots(figsize=(5.5, 3.8))
    colours = {"joslim": "C0", "slim": "C1", "twostage": "C2"}
    for k, (method, values) in enumerate(runs):
        c, a = front_points(values)
        order = np.argsort(c)
        first = method not in [m for m, _ in runs[:k]]
        ax.step(c[order], a[order], where="post", color=colours.get(method, "C3"), marker="o",
                ms=3, alpha=0.8, label=method if first else None)
    ax.set_xlabel("cost (ratio of the full net's MACs)")
    ax.set_ylabel("test top-1")
    ax.legend(fontsize=8)
    analysis.save(fig, out / "fronts.png")
    print(f"wrote {out / 'fronts.png'}")


if __name__ == "__main__":
    sys.exit(analysis.main(__doc__, analyse))
