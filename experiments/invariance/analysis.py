"""Across runs: invariance against magnitude per transformation (invariance.md §4).

    python -m experiments.invariance.analysis RUN_WORKDIR [RUN_WORKDIR …] [--out DIR]

reads each finished run's invariance.json (experiments.invariance.procedure) and draws, per
transformation of lib.perturb measured, the median invariance (cosine) against the magnitude
index with the 25–75 and 5–95 percentile bands: every run's trained model (labelled by its
model and augmentation variant, so ResNet-18 against ViT-B/16 and HC against None share
panels) and, where measured, its untrained reference (dashed). It prints the invariance gap
per transformation and run. Figure: invariance_vs_magnitude.png, axes clipped to [−0.5, 1]
as in the paper.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

from lib import analysis, perturb

BANDS = ((25, 75, 0.25), (5, 95, 0.1))  # (low, high percentile, opacity)


def read_measurement(workdir) -> tuple[str, dict]:
    """(label, invariance.json values) of a finished run."""
    config, _ = analysis.read_run(workdir)
    path = pathlib.Path(workdir) / "invariance.json"
    if not path.exists():
        raise FileNotFoundError(f"{workdir} has no invariance.json: it is not an invariance "
                                "run (experiments.invariance.procedure)")
    model = config["model"]["name"]
    if model == "vit":
        model = f"vit-{config['model']['variant'] or config['model']['width']}"
    elif "depth" in config["model"]:
        model = f"{model}{config['model']['depth']}"
    if config["data"]["augment"].endswith(":Ablation"):
        model += " " + config["data"]["invaug"]["variant"]
    return model, json.loads(path.read_text())["values"]


def curves(values: dict, prefix: str = "") -> dict[str, dict[int, tuple[float, list]]]:
    """{kind: {k: (median, percentiles)}} of the registry transformations measured."""
    out: dict[str, dict] = {}
    for key, median in values.items():
        head = f"{prefix}inv/median/"
        if not key.startswith(head) or "_k" not in key:
            continue
        kind, _, k = key.removeprefix(head).rpartition("_k")
        if kind in perturb.KINDS:
            percentiles = values[f"{prefix}inv/percentiles/{kind}_k{k}"]
            out.setdefault(kind, {})[int(k)] = (median, percentiles)
    return out


def plot(runs: list[tuple[str, dict]], path) -> None:
    kinds = [k for k in perturb.KINDS if any(k in curves(v) for _, v in runs)]
    if not kinds:
        raise FileNotFoundError("none of the runs measured a lib.perturb transformation "
                                "(invariance.kinds)")
    cols = 4
    fig, axes = analysis.pyplot().subplots(math.ceil(len(kinds) / cols), cols,
                                           figsize=(4 * cols, 3 * math.ceil(len(kinds) / cols)),
                                           squeeze=False)
    colours = analysis.pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, kind in zip(axes.flat, kinds):
        for i, (label, values) in enumerate(runs):
            for prefix, style, suffix in (("", "-", ""), ("untrained/", "--", " untrained")):
                points = curves(values, prefix).get(kind)
                if not points:
                    continue
                ks = sorted(points)
                colour = colours[i % len(colours)]
                ax.plot(ks, [points[k][0] for k in ks], style, color=colour, marker="o", ms=3,
                        label=label + suffix)
                for low, high, alpha in BANDS if not prefix else BANDS[:1]:
                    ax.fill_between(ks, [points[k][1][low] for k in ks],
                                    [points[k][1][high] for k in ks], color=colour,
                                    alpha=alpha / (2 if prefix else 1), linewidth=0)
        ax.set_title(kind, fontsize=9)
        ax.set_ylim(-0.5, 1.02)
        ax.set_xlabel("magnitude index")
    for ax in axes.flat[len(kinds):]:
        ax.axis("off")
    axes.flat[0].set_ylabel("invariance (median, cosine)")
    axes.flat[0].legend(fontsize=7)
    analysis.save(fig, path)


def analyse(workdirs, out: pathlib.Path) -> None:
    runs = [read_measurement(w) for w in workdirs]
    for label, values in runs:
        gaps = {k.removeprefix("gap/"): v for k, v in values.items() if k.startswith("gap/")}
        if gaps:
            print(f"{label}: invariance gap (k = 3..7) " + ", ".join(
                f"{k} {v:+.3f}" for k, v in gaps.items()))
    plot(runs, out / "invariance_vs_magnitude.png")
    print(f"wrote {out / 'invariance_vs_magnitude.png'}")


if __name__ == "__main__":
    sys.exit(analysis.main(__doc__, analyse))
