"""Across width-transfer runs (experiments.width_transfer.procedure): accuracy against the
width optimiser's overhead (width_transfer.md §4).

    python -m experiments.width_transfer.analysis RUN_WORKDIR [RUN_WORKDIR …] [--out DIR]

groups the runs by their whole config but the seed (seeds pooled) and prints, per group,
its width_transfer settings and the test top-1 mean ± std of the uniform, direct and
transferred widths, the overhead-reduction factor and Spearman's ρ. Figure:
top1_vs_overhead.png, each group's direct (at overhead 1) and transferred (at 1 / factor)
top-1 against the optimiser's training FLOPs relative to optimising on the target, the
uniform widths as a line.
"""

from __future__ import annotations

import json
import pathlib
import sys

from lib import analysis
from lib import config as config_lib
from lib.claims import mean_std

ARMS = ("uniform", "direct", "transferred")
SETTINGS = ("optimizer", "penalty", "prune_rule", "stacking", "proxy_width", "proxy_depth",
            "proxy_resolution", "proxy_data", "proxy_epochs")


def load(workdirs) -> dict[tuple, list[dict]]:
    """{settings: [results, …]} of finished width-transfer procedures."""
    groups: dict[tuple, list[dict]] = {}
    for w in workdirs:
        config, results = analysis.read_run(w)
        config = config_lib.from_saved(config)  # keys added since the run: their defaults
        if "overhead/factor" not in results:
            raise FileNotFoundError(f"{w} is not a width-transfer procedure (no "
                                    "overhead/factor in its results.json)")
        flat = dict(flatten(json.loads(config.to_json_best_effort())))
        same = tuple(sorted((k, json.dumps(v)) for k, v in flat.items()
                            if k != "seed" and not config_lib.is_operational(k)))
        shown = tuple((k, config.width_transfer.get(k)) for k in SETTINGS)
        groups.setdefault((shown, same), []).append(results)
    return groups


def flatten(tree: dict, prefix: str = ""):
    """(dotted key, value) of every leaf of a nested dict."""
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def label(key: tuple) -> str:
    """The group's width_transfer settings (groups also differ by any other config key)."""
    return ", ".join(f"{k}={v}" for k, v in key[0])


def summary(runs: list[dict]) -> dict:
    out = {arm: mean_std([r[f"final/{arm}/top1"] for r in runs]) for arm in ARMS}
    out["factor"] = mean_std([r["overhead/factor"] for r in runs])[0]
    rhos = [r["spearman"] for r in runs if r.get("spearman") is not None]
    out["spearman"] = mean_std(rhos)[0] if rhos else float("nan")
    return out


def analyse(workdirs, out: pathlib.Path) -> None:
    groups = load(workdirs)
    fig, ax = analysis.pyplot().subplots(figsize=(5.5, 3.8))
    for i, (key, runs) in enumerate(groups.items()):
        s = summary(runs)
        print(f"[{label(key)}] {len(runs)} run(s): "
              + ", ".join(f"{arm} {s[arm][0]:.4f} ± {s[arm][1]:.4f}" for arm in ARMS)
              + f"; overhead {s['factor']:.1f}× less on the proxy; ρ {s['spearman']:.2f}")
        colour = f"C{i % 10}"
        ax.errorbar([1.0, 1.0 / s["factor"]], [s["direct"][0], s["transferred"][0]],
                    yerr=[s["direct"][1], s["transferred"][1]], color=colour, marker="o",
                    capsize=3, label=f"group {i + 1}")
        ax.axhline(s["uniform"][0], color=colour, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("optimiser training FLOPs (1 = optimising on the target)")
    ax.set_ylabel("test top-1 (dotted: uniform widths)")
    ax.legend(fontsize=7)
    analysis.save(fig, out / "top1_vs_overhead.png")
    print(f"wrote {out / 'top1_vs_overhead.png'} (groups numbered as printed)")


if __name__ == "__main__":
    sys.exit(analysis.main(__doc__, analyse))
