"""γ statistics of a finished run (batchnorm_only.md §2, §4): histogram, f_τ, ablation.

    python -m experiments.batchnorm_only.analysis WORKDIR [--ablation_tau 0.05]

writes WORKDIR/analysis/gamma.json and gamma_hist.png. All BN layers are pooled, projection-
shortcut BNs included. f_τ is the fraction of channels with |γ| < τ; "off after ReLU" is the
fraction with |γ| < τ and β ≤ 0 (pooled over every BN, although only BNs followed directly by a
ReLU switch a channel off exactly); the ablation sets γ := 0 where |γ| < τ (β unchanged) and
re-evaluates test accuracy.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from etils import epath

from lib import analysis as lib_analysis

TAUS = (0.01, 0.05, 0.1)


def gamma_beta(params: dict, roles: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """All BN γ and the matching β, concatenated in parameter-name order."""
    scales = sorted(k for k, r in roles.items() if r == "bn_scale")
    gamma = np.concatenate([np.asarray(params[k]).ravel() for k in scales])
    beta = np.concatenate([np.asarray(params[k[: -len("scale")] + "bias"]).ravel()
                           for k in scales])
    return gamma, beta


def small_fraction(gamma: np.ndarray, tau: float) -> float:
    """f_τ: fraction of channels with |γ| < τ."""
    return float(np.mean(np.abs(gamma) < tau))


def off_fraction(gamma: np.ndarray, beta: np.ndarray, tau: float) -> float:
    """Fraction of channels with |γ| < τ and β ≤ 0: ≈ 0 after a ReLU for every input."""
    return float(np.mean((np.abs(gamma) < tau) & (beta <= 0)))


def zero_small_gamma(params: dict, roles: dict[str, str], tau: float) -> dict:
    """A copy of params with γ_c := 0 wherever |γ_c| < τ."""
    out = dict(params)
    for k, role in roles.items():
        if role == "bn_scale":
            g = np.asarray(params[k])
            out[k] = np.where(np.abs(g) < tau, 0.0, g).astype(g.dtype)
    return out


def gamma_stats(params: dict, roles: dict[str, str]) -> dict:
    gamma, beta = gamma_beta(params, roles)
    stats = {"channels": int(gamma.size)}
    for tau in TAUS:
        stats[f"f_{tau}"] = small_fraction(gamma, tau)
        stats[f"off_after_relu_{tau}"] = off_fraction(gamma, beta, tau)
    return stats


def analyse(workdir, ablation_tau: float | None = 0.05,
            plot: bool = True) -> dict:
    """γ statistics at the end and at init and, unless ablation_tau is None, the zero-small-γ
    ablation (two evaluations of the test split); saved in workdir/analysis."""
    import jax

    from lib import train

    workdir = epath.Path(workdir)
    config, setup, state = train.load_final(workdir)
    params = jax.device_get(state["params"])
    result = {
        "trainable": config.optim.trainable,
        "final": gamma_stats(params, setup.roles),
        "init": gamma_stats(jax.device_get(setup.init_state["params"]), setup.roles),
    }
    if ablation_tau is not None:
        trainer = train.Trainer(config)

        def accuracy(p):
            return trainer.evaluate({**state, "params": p})["eval/accuracy"]

        before = accuracy(state["params"])
        after = accuracy(zero_small_gamma(params, setup.roles, ablation_tau))
        result["ablation"] = {"tau": ablation_tau, "accuracy_before": before,
                              "accuracy_after": after, "change": after - before}
    if jax.process_index() == 0:
        out = workdir / "analysis"
        out.mkdir(exist_ok=True)
        (out / "gamma.json").write_text(json.dumps(result, indent=2) + "\n")
        if plot:
            plot_histogram({config.optim.trainable: gamma_beta(params, setup.roles)[0]},
                           out / "gamma_hist.png")
    return result


def plot_histogram(gammas: dict[str, np.ndarray], path) -> None:
    """Overlaid histograms of γ, one per setting, with the τ thresholds marked."""
    fig, ax = lib_analysis.pyplot().subplots(figsize=(6, 3.5))
    lo = min(float(g.min()) for g in gammas.values())
    hi = max(float(g.max()) for g in gammas.values())
    bins = np.linspace(min(lo, 0.0), max(hi, 1.0), 60)
    for name, g in gammas.items():
        ax.hist(g, bins=bins, histtype="step", density=True, label=f"{name} ({g.size} ch)")
    for tau in TAUS:
        ax.axvspan(-tau, tau, color="grey", alpha=0.12)
    ax.set_xlabel("γ (all BN layers pooled)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    lib_analysis.save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("--ablation_tau", type=float, default=0.05,
                        help="τ of the zero-small-γ ablation (negative: skip the ablation)")
    args = parser.parse_args()
    tau = args.ablation_tau if args.ablation_tau >= 0 else None
    print(json.dumps(analyse(args.workdir, tau), indent=2))


if __name__ == "__main__":
    main()
