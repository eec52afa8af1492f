"""Measurements of finished reservoir runs, exact checks of the method's pieces (spec §6 hard
assertions (1)–(5)), and the plots.

    python -m experiments.reservoir.analysis RUN_WORKDIR [RUN_WORKDIR …] [--out DIR]

groups runs by encoder (type string and backskip; seeds pooled) and prints the best
validation metric (BLEU where eval.bleu, else token accuracy), the time to it and its ratio
to the regular encoder with as many updatable layers, and AUCC/T̂ (T̂ = reservoir.horizon);
figures convergence.png and aucc_vs_updatable.png.

Curves come from each run's metrics.jsonl (lib.metrics.eval_curve): validation token accuracy
at every evaluation with the training clock, so the wall-clock AUCC and the time to a target
exclude compilation, evaluation and checkpointing.
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.reservoir import aucc, layers, placement
from lib import analysis as lib_analysis
from lib import metrics, models, train
from lib.claims import mean_std
from lib.models import transformer

TARGET = 0.9  # time to this validation token accuracy (spec §6 soft)


def curve_summary(workdir, horizon_seconds: float, horizon_steps: int,
                  metric: str = "eval/accuracy") -> dict:
    """AUCC over the clock and over steps (each also / T̂), time and step to TARGET, time to
    the best value, time per step, final value of a higher-is-better metric."""
    c = metrics.eval_curve(workdir, metric)
    seconds_per_step = c["seconds"][-1] / c["steps"][-1]
    wall = aucc.aucc(c["seconds"], c["values"], horizon_seconds)
    steps = aucc.aucc(c["steps"], c["values"], horizon_steps)
    return {"final": c["values"][-1], "aucc_seconds": wall,
            "aucc_seconds_norm": wall / horizon_seconds, "aucc_steps": steps,
            "aucc_steps_norm": steps / horizon_steps,
            "time_to_target": aucc.time_to(c["seconds"], c["values"], TARGET),
            "step_to_target": aucc.time_to(c["steps"], c["values"], TARGET),
            "time_to_best": time_to_best(workdir, metric),
            "seconds_per_step": seconds_per_step, "curve": c}


def time_to_best(workdir, metric: str) -> float:
    """Training-clock seconds at the first evaluation with the run's best `metric`."""
    c = metrics.eval_curve(workdir, metric)
    return c["seconds"][int(np.argmax(c["values"]))]


def frozen_check(workdir) -> dict:
    """Spec §6 (2) and (3) on a finished run: its reservoir parameters equal a fresh
    initialisation bit for bit, none has optimizer state, and every reservoir projection is
    orthogonal (W Wᵀ = I for wide W, Wᵀ W = I for tall) to within `orthogonality`."""
    config, setup, state = train.load_final(workdir)
    names = models.frozen_params(setup.model(setup.init_state))
    fresh = train.build(config).init_state["params"]
    identical = all(np.array_equal(np.asarray(state["params"][n]), np.asarray(fresh[n]))
                    for n in names)
    in_optimizer = {str(k.key) for path, _ in jax.tree_util.tree_flatten_with_path(
        state["opt_state"])[0] for k in path if isinstance(k, jax.tree_util.DictKey)}
    errors = []
    for n in names:
        w = np.asarray(state["params"][n], np.float64)
        if w.ndim == 2 and n.endswith("kernel"):
            gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            errors.append(float(np.abs(gram - np.eye(len(gram))).max()))
    return {"reservoir_params": len(names), "bit_identical": bool(identical and names),
            "with_optimizer_state": sorted(set(names) & in_optimizer),
            "projections": len(errors), "orthogonality": max(errors) if errors else None}


def placement_checks() -> dict:
    """Spec §6 (1): the rule's two examples and its refusal of n < 2k + 1."""
    from lib.config import ConfigError

    try:
        placement.layer_types(4, 2)
        refused = False
    except ConfigError:
        refused = True
    return {"n7k3": placement.layer_types(7, 3, "R"), "n7k2": placement.layer_types(7, 2, "R"),
            "refuses_n4k2": refused}


AUCC_CASES = (  # (times, values, horizon, area by hand)
    # (0,0)→(1,0.5)→(3,0.5): 0.25 + 1.0
    ((1.0, 3.0), (0.5, 0.5), 3.0, 1.25),
    # carried forward from t = 2 to 5: 0.5·2·0.8 + 3·0.8
    ((2.0,), (0.8,), 5.0, 3.2),
    # clipped at 2 inside the segment (1, 0.4)→(3, 0.8): 0.2 + (0.4 + 0.6)/2
    ((1.0, 3.0), (0.4, 0.8), 2.0, 0.7),
)


def aucc_checks() -> list[dict]:
    """Spec §6 (4): the AUCC of hand-made curves against their areas worked out by hand."""
    return [{"times": t, "values": v, "horizon": h, "expected": e,
             "measured": aucc.aucc(t, v, h)} for t, v, h, e in AUCC_CASES]


def backskip_checks(eta: float = 0.5) -> dict:
    """Spec §6 (5) on an FFN reservoir: with identity backskipping the gradient reaching the
    layer's input is η × the incoming one (the forward pass unchanged); with F ≡ 0 (its last
    projection zeroed) backskipping at η = 1 equals exact backprop."""
    dims = transformer.Dims(width=8, heads=2, ffn=16, dropout=0.0)
    x = jax.random.normal(jax.random.key(0), (2, 5, 8))
    g = jax.random.normal(jax.random.key(1), (2, 5, 8))
    mask = jnp.ones((2, 1, 1, 5), bool)

    def input_grad(mode, eta_, zero):
        layer = layers.FFNReservoir(dims, layers.Backskip(mode, eta_), rngs=nnx.Rngs(0))
        if zero:
            layer.ffn.fc2.kernel[...] = jnp.zeros_like(layer.ffn.fc2.kernel[...])
            layer.ffn.fc2.bias[...] = jnp.zeros_like(layer.ffn.fc2.bias[...])
        out, vjp = jax.vjp(lambda h: layer(h, mask, rng=jax.random.key(2)), x)
        return out, vjp(g)[0]

    out_exact, _ = input_grad("none", 1.0, False)
    out_skip, grad_skip = input_grad("identity", eta, False)
    _, zero_exact = input_grad("none", 1.0, True)
    _, zero_skip = input_grad("identity", 1.0, True)
    return {"eta": eta,
            "scaled_error": float(jnp.abs(grad_skip - eta * g).max()),
            "forward_error": float(jnp.abs(out_skip - out_exact).max()),
            "zero_f_error": float(jnp.abs(zero_skip - zero_exact).max())}


def plot(summaries: dict[str, dict], horizon: float, out: pathlib.Path,
         metric: str = "validation token accuracy") -> list[str]:
    """Validation metric against training time per encoder, AUCC up to T̂ shaded; and
    wall-clock AUCC/T̂ against the number of updatable encoder layers."""
    plt = lib_analysis.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in summaries.items():
        t, v = [0.0, *s["curve"]["seconds"]], [0.0, *s["curve"]["values"]]
        (line,) = ax.plot(t, v, marker=".", label=name)
        inside = [ti for ti in t if ti < horizon] + [horizon]  # the AUCC's area, to T̂
        ax.fill_between(inside, np.interp(inside, t, v), alpha=0.08, color=line.get_color())
    ax.axvline(horizon, color="grey", lw=0.8, ls="--", label="T̂")
    ax.set(xlabel="training clock (s)", ylabel=metric,
           title="Convergence per encoder (AUCC shaded)")
    ax.legend(fontsize=8)
    paths = [out / "convergence.png", out / "aucc_vs_updatable.png"]
    lib_analysis.save(fig, paths[0])
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, s in summaries.items():
        ax.scatter(updatable(name), s["aucc_seconds_norm"], label=name)
    ax.set(xlabel="updatable encoder layers", ylabel="AUCC / T̂ (wall clock)",
           title="AUCC against updatable layers")
    ax.legend(fontsize=8)
    lib_analysis.save(fig, paths[1])
    return [str(p) for p in paths]


def updatable(name: str) -> int:
    """Trainable encoder layers of a run name's type string ('L' and LayerDrop's 'D')."""
    types = name.split("+")[0]
    return types.count("L") + types.count("D")


def run_name(config: dict) -> str:
    backskip = config["reservoir"]["backskip"]
    return config["model"]["encoder_types"] + ("" if backskip == "none" else f"+{backskip}")


def analyse(workdirs, out: pathlib.Path) -> None:
    """Paper-scale runs grouped by encoder (seeds pooled): best validation metric, time to
    it, its ratio to the regular encoder with as many updatable layers, and AUCC/T̂ (T̂ =
    reservoir.horizon) on the first run of each group; the plots."""
    groups: dict[str, list] = {}
    for w in workdirs:
        config, _ = lib_analysis.read_run(w)
        groups.setdefault(run_name(config), []).append((w, config))
    summaries, best_time = {}, {}
    for name, runs in groups.items():
        config = runs[0][1]
        metric = "eval/bleu" if config["eval"]["bleu"] else "eval/accuracy"
        horizon = config["reservoir"]["horizon"]
        per_run = [curve_summary(w, horizon, config["total_steps"], metric) for w, _ in runs]
        summaries[name] = per_run[0]
        best = mean_std([max(s["curve"]["values"]) for s in per_run])
        best_time[name] = mean_std([s["time_to_best"] for s in per_run])[0]
        area = mean_std([s["aucc_seconds_norm"] for s in per_run])
        print(f"[{name}] {len(runs)} run(s): best {metric} {best[0]:.4f} ± {best[1]:.4f} at "
              f"{best_time[name]:.0f} s; AUCC/T̂ {area[0]:.4f} ± {area[1]:.4f}")
    for name, t in best_time.items():
        regular = "L" * updatable(name)
        if name != regular and regular in best_time:
            print(f"{name}: time to best {t / best_time[regular]:.3f} × {regular}'s")
    horizon = next(iter(groups.values()))[0][1]["reservoir"]["horizon"]
    for path in plot(summaries, horizon, out):
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(lib_analysis.main(__doc__, analyse))
