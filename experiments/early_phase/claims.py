"""Claims of "The Early Phase of Neural Network Training" (early_phase.md §5, §6).

Paper scale: the spec's reported numbers, listed with source and tolerance. They are not yet
decided automatically: `lib.repro check` reads single runs, and this paper's runs are
procedures (a trunk and perturbation stages); see the README.
Small scale: the spec's sklearn-digits reference (configs/digits.py) over SEEDS: an IMP trunk
rewinding to k = 40 with the four perturbations at its last level (0.78 % remaining), and a
trunk rewinding to 0, with the spec's own hard assertions.
"""

from __future__ import annotations

import pathlib
import time

from lib.claims import PaperClaim, SmallClaim, mean_std

TITLE = (  # the paper, as the reproduction report names it
    "The Early Phase of Neural Network Training (Frankle et al., 2002.10365)")
REPORTED = (  # what it reports at paper scale, in a line
    "IMP subnetworks need rewinding to k ≈ 500–2,000 iterations (ResNet-20, CIFAR-10); "
    "keep-sign reinit and layer shuffles of the rewound weights fall clearly below rewinding")

SEEDS = (0, 1, 2, 3, 4)
PERTURBATIONS = ("reinit", "reinit_keep_sign", "shuffle_layer", "shuffle_layer_keep_sign")

PAPER_CLAIMS = [
    PaperClaim("E1", "early-phase analysis window, ResNet-20 CIFAR-10 (iterations)",
               "paper body", "recollection", 4000, 0, hard=False),
    PaperClaim("E2", "IMP prunes 20 % of the remaining weights per level (sparsity.fraction)",
               "public code default", "verified", 0.2, 0),
    PaperClaim("E3", "ResNet-20 dense final top-1", "same framework and defaults",
               "recollection", 0.917, 0.005, hard=False),
    PaperClaim("E4", "IMP at ≤ 20 % remaining: acc(k=500) − acc(k=0) > 0; saturates by k≈2000",
               "paper body", "recollection", None, bounds=(0.0, 1.0), hard=False),
    PaperClaim("E5", "reinit_keep_sign at k ≥ 500 clearly below rewind (direction)", "abstract",
               "verified (direction)", None, bounds=(-1.0, 0.0)),
    PaperClaim("E6", "shuffle_layer(_keep_sign) at k ≥ 500 clearly below rewind", "abstract",
               "verified (qualitative)", None, bounds=(-1.0, 0.0)),
    PaperClaim("E7", "blur / rotation pretraining: above k = 0, approaching k = 500", "abstract",
               "verified (qualitative)", None, hard=False),
    PaperClaim("E8", "labels reach the early-phase effect far sooner than self-supervision",
               "abstract", "verified (qualitative)", None, hard=False),
    PaperClaim("E9", "random-label pretraining: no improvement over k = 0", "paper body",
               "recollection", None, hard=False),
    PaperClaim("E10", "gaussian_noise: small ε tolerated, large ε hurts", "paper body",
               "recollection", None, hard=False),
]


def measure(workdir: pathlib.Path) -> dict:
    """Per seed: trunk k=40 + perturbations, and trunk k=0 (resumable sub-workdirs)."""
    import jax

    from experiments.early_phase import procedure
    from lib import config as config_lib
    from lib import procedure as lib_procedure

    jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    config_file = pathlib.Path(__file__).parent / "configs" / "digits.py"
    out: dict = {"accuracy": {}, "remaining": {}}
    t0 = time.perf_counter()
    runs = [(s, k) for s in SEEDS for k in (40, 0)]
    for i, (seed, k) in enumerate(runs, 1):
        if k:
            config = config_lib.load_file(config_file, f"seed={seed}")
            summary = procedure.run(config, workdir / f"digits_k40_s{seed}")
            trunk = summary["trunk"]
            for name, result in summary["perturb"].items():
                out["accuracy"].setdefault(name, []).append(result["eval/accuracy"])
            out["accuracy"].setdefault("dense", []).append(trunk["0"]["eval/accuracy"])
        else:
            config = config_lib.load_file(config_file, f"seed={seed},k=0,perturbations=")
            trunk = lib_procedure.imp(config, workdir / f"digits_k0_s{seed}")
        last = str(config.imp.levels)
        key = f"rewind_{k}"
        out["accuracy"].setdefault(key, []).append(trunk[last]["eval/accuracy"])
        for level, result in trunk.items():
            out["remaining"][level] = result["remaining"]
            out.setdefault(f"curve_{key}", {}).setdefault(level, []).append(
                result["eval/accuracy"])
        elapsed = time.perf_counter() - t0
        print(f"[{i}/{len(runs)}] seed {seed} k={k}: last level {trunk[last]['eval/accuracy']:.4f}"
              f" | {elapsed:.0f} s elapsed | ETA {elapsed / i * (len(runs) - i):.0f} s",
              flush=True)
    return out


def _mean(m: dict, name: str) -> float:
    return mean_std(m["accuracy"][name])[0]


def _gap_claim(better: str, worse: str, margin: float | None, hard: bool, reference: str
               ) -> SmallClaim:
    """mean acc(better) − mean acc(worse) ≥ margin (margin None: > 0, direction only)."""

    def evaluate(m):
        gap = _mean(m, better) - _mean(m, worse)
        return f"{gap:+.3f}", gap >= margin if margin is not None else gap > 0

    expected = f"≥ {margin:.2f}" if margin is not None else "> 0"
    return SmallClaim(f"digits: {better} − {worse}",
                      f"0.78 % remaining, mean over {len(SEEDS)} seeds (spec reference "
                      f"{reference})", expected, evaluate, hard=hard)


def _remaining(m):
    r = m["remaining"]["7"]
    return f"{100 * r:.3f} %", abs(r - 0.5**7) < 1e-3


SMALL_CLAIMS = [
    _gap_claim("rewind_40", "shuffle_layer", 0.03, True, "+0.066"),
    _gap_claim("rewind_40", "reinit", 0.03, True, "+0.078"),
    _gap_claim("rewind_40", "reinit_keep_sign", None, True, "+0.014"),
    _gap_claim("rewind_40", "shuffle_layer_keep_sign", None, False, "+0.009"),
    _gap_claim("rewind_40", "rewind_0", None, False, "+0.016"),
    SmallClaim("digits: sparsity of the last level", "7 levels at 50 % keep 0.5^7 of the "
               "prunable weights", "0.781 %", _remaining),
]


def plot(m: dict, workdir: pathlib.Path) -> None:
    """Test accuracy vs weights remaining for both trunks; perturbations at the last level."""
    from experiments.early_phase import analysis

    last = max(m["remaining"], key=int)
    groups = {}
    for k in (40, 0):
        curve = {m["remaining"][lv]: accs for lv, accs in m[f"curve_rewind_{k}"].items()}
        perturbed = {n: (m["remaining"][last], m["accuracy"][n]) for n in PERTURBATIONS} if k \
            else {}
        groups[f"rewind k={k}"] = {"curve": curve, "perturb": perturbed}
    analysis.plot(groups, workdir / "accuracy_vs_remaining.png",
                  "early phase on digits (mean ± std over seeds)")
