"""Claims of "On the relationship between class selectivity, dimensionality, and robustness"
and "Selectivity considered harmful" (class_selectivity.md §5, §6).

Paper scale: C1–C11, listed with source and tolerance; C10 and C5b are decided by `lib.repro
check` on runs of configs/cifar10.py (ResNet-20) and C11 on configs/tiny_imagenet.py
(ResNet-18); the others need sweeps over α (experiments.class_selectivity.analysis reads
them) and are listed only.
Small scale: the spec's Fashion-MNIST MLP at α ∈ {−2, 0, +2} over SEEDS, with its hard
assertions (2)–(4) and the soft ones.
"""

from __future__ import annotations

import pathlib
import time

from lib.claims import PaperClaim, SmallClaim, mean_std

TITLE = (  # the paper, as the reproduction report names it
    "On the relationship between class selectivity, dimensionality, and robustness (Leavitt &"
    " Morcos, 2007.04440; 2003.01262)")
REPORTED = (  # what it reports at paper scale, in a line
    "lower class selectivity → more robust to corruptions, higher → more robust to small-ε "
    "attacks; penalising selectivity keeps or improves accuracy")

SEEDS = (0, 1, 2)
ALPHAS = (-2.0, 0.0, 2.0)
CIFAR10 = "experiments/class_selectivity/configs/cifar10.py"
TINY_IMAGENET = "experiments/class_selectivity/configs/tiny_imagenet.py"
LAYERS = ("dense0", "dense1")

PAPER_CLAIMS = [
    PaperClaim("C1", "ResNet-18 Tiny ImageNet: best α < 0 vs α = 0, test top-1 change "
               "> +2 points", "2003.01262 abstract", "verified", None, hard=False),
    PaperClaim("C2", "ResNet-50 Tiny ImageNet: best α < 0 vs α = 0, ≈ +1 point",
               "2003.01262 abstract (ICLR)", "verified", None, hard=False),
    PaperClaim("C3", "ResNet-20 CIFAR-10: α < 0 cutting mean SI 2.5× leaves top-1 ≈ unchanged "
               "(±0.5)", "2003.01262 abstract", "verified", None, hard=False),
    PaperClaim("C4", "ResNet-20 CIFAR-10: most negative α (SI ≈ 0) costs ≈ 2 points (−0.5 to "
               "−4)", "2003.01262 abstract", "verified", None, hard=False),
    PaperClaim("C5", "α > 0: test top-1 decreases, monotone in α", "2003.01262 abstract",
               "verified", None, hard=False),
    PaperClaim("C6", "lower SI → higher mean corruption accuracy (Spearman(SI, rel. acc) < 0)",
               "2007.04440 abstract", "verified (claim)", None, hard=False),
    PaperClaim("C7", "higher SI → higher FGSM/PGD accuracy at fixed ε (≥ 2 ε values)",
               "2007.04440 abstract", "verified (claim)", None, hard=False),
    PaperClaim("C8", "lower SI → higher early-layer dimensionality", "2007.04440 abstract",
               "verified (claim)", None, hard=False),
    PaperClaim("C9", "early-layer dimensionality of the change: adversarial > corruption",
               "2007.04440 abstract", "verified (claim)", None, hard=False),
    PaperClaim("C10", "ResNet-20 CIFAR-10 α = 0 clean top-1 ≈ 91–92 % (±1.5)",
               "typical ResNet-20", "recollection", 0.915, 0.015, metric="clean_accuracy",
               config=f"{CIFAR10}:alpha=0", hard=False),
    PaperClaim("C5b", "ResNet-20 CIFAR-10: α = +2 below α = 0 in test top-1", "2003.01262 "
               "abstract", "verified", None, metric="clean_accuracy", config=f"{CIFAR10}:alpha=2",
               versus=f"{CIFAR10}:alpha=0", bounds=(-1.0, 0.0), hard=False),
    PaperClaim("C11", "ResNet-18 Tiny ImageNet α = 0 clean top-1 ≈ 50–60 % (sanity band)",
               "paper", "recollection", None, bounds=(0.5, 0.6), metric="clean_accuracy",
               config=f"{TINY_IMAGENET}:alpha=0", hard=False),
]


def measure(workdir: pathlib.Path) -> dict:
    """Per α: each seed's results (resumable sub-workdirs)."""
    import jax

    from experiments.class_selectivity import procedure
    from lib import config as config_lib

    jax.config.update("jax_compilation_cache_dir", str(workdir / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    config_file = pathlib.Path(__file__).parent / "configs" / "fashion_mnist.py"
    runs = [(a, s) for a in ALPHAS for s in SEEDS]
    out: dict = {}
    t0 = time.perf_counter()
    for i, (alpha, seed) in enumerate(runs, 1):
        config = config_lib.load_file(config_file, f"alpha={alpha},seed={seed}")
        r = procedure.run(config, workdir / f"fmnist_a{alpha:g}_s{seed}")
        out.setdefault(f"{alpha:g}", []).append(r)
        elapsed = time.perf_counter() - t0
        print(f"[{i}/{len(runs)}] α={alpha:g} seed {seed}: SI {r['selectivity/mean']:.3f}, "
              f"accuracy {r['clean_accuracy']:.4f} | {elapsed:.0f} s elapsed | ETA "
              f"{elapsed / i * (len(runs) - i):.0f} s", flush=True)
    return out


def _mean(m, alpha, key):
    return mean_std([r[key] for r in m[f"{alpha:g}"]])[0]


def _si_ordering(m):
    counts = {a: len(m[f"{a:g}"]) for a in ALPHAS}
    if set(counts.values()) != {len(SEEDS)}:
        return f"runs per α {counts}, expected {len(SEEDS)} each", False
    ok, parts = True, []
    for s in range(len(SEEDS)):
        lo, mid, hi = (m[f"{a:g}"][s]["selectivity/mean"] for a in ALPHAS)
        parts.append(f"{lo:.3f}/{mid:.3f}/{hi:.3f}")
        ok &= lo < mid < hi and lo < 0.5 * mid
    return "per seed −2/0/+2: " + ", ".join(parts), ok


def _accuracy_cost(m):
    plus, zero = _mean(m, 2.0, "clean_accuracy"), _mean(m, 0.0, "clean_accuracy")
    minus = _mean(m, -2.0, "clean_accuracy")
    return f"+2 {plus:.4f}, 0 {zero:.4f} (−2 {minus:.4f})", plus <= zero + 0.01


def _fgsm(m):
    hi, lo = (_mean(m, a, "accuracy/fgsm_0.05") for a in (2.0, -2.0))
    return f"+2 {hi:.3f}, −2 {lo:.3f}", hi >= lo + 0.10


def _noise(m):
    lo, hi = (_mean(m, a, "relative_accuracy/noise_0.4") for a in (-2.0, 2.0))
    return f"−2 {lo:.3f}, +2 {hi:.3f}", lo >= hi


def _corruptions(m):
    lo, hi = (_mean(m, a, "relative_corruption_accuracy") for a in (-2.0, 2.0))
    return f"−2 {lo:.3f}, +2 {hi:.3f}", lo >= hi


def _dimension(m):
    dims = {a: _mean(m, a, "pca_dim/dense0") for a in ALPHAS}
    text = ", ".join(f"{a:+g}: {d:.1f}" for a, d in dims.items())
    return text, dims[-2.0] > dims[2.0]


def _change_dimension(m):
    adv, corrupted, noise = (_mean(m, 0.0, f"pca_dim_change/{k}/dense0") for k in (
        "fgsm_0.05", "corruption_mean", "noise_0.4"))
    return (f"FGSM ε 0.05 {adv:.1f}, corruptions (mean) {corrupted:.1f} (noise σ 0.4 "
            f"{noise:.1f})", adv > corrupted)


def _gradient_variability(m):
    cv = {a: _mean(m, a, "gradient_cv/mean") for a in ALPHAS}
    text = ", ".join(f"{a:+g}: {v:.3f}" for a, v in cv.items())
    return text, cv[2.0] > cv[-2.0]


SMALL_CLAIMS = [
    SmallClaim("fmnist: SI(−2) < SI(0) < SI(+2), SI(−2) < 0.5·SI(0)", "mean test SI of both "
               "hidden layers, for every seed (spec assertion 2)", "ordered", _si_ordering),
    SmallClaim("fmnist: acc(+2) ≤ acc(0) + 0.01", "seed means (spec assertion 3; the paper: "
               "rewarding selectivity costs accuracy)", "≤ +0.01", _accuracy_cost),
    SmallClaim("fmnist: FGSM acc (ε 0.05) α=+2 ≥ α=−2 + 0.10", "seed means (spec assertion 4; "
               "the paper: higher SI, more robust to small-ε attacks)", "≥ +0.10", _fgsm),
    SmallClaim("fmnist: relative noise acc (σ 0.4) α=−2 ≥ α=+2", "seed means (the paper: "
               "lower SI, more robust to corruptions; noisy per seed)", "≥", _noise, hard=False),
    SmallClaim("fmnist: relative corruption acc α=−2 ≥ α=+2", "mean over 10 corruptions at "
               "severities 1, 3, 5, seed means (the paper, C6: lower SI, more robust)", "≥",
               _corruptions, hard=False),
    SmallClaim("fmnist: PCA-95 dim of layer 1, α=−2 > α=+2", "the paper: lower SI, higher "
               "dimensionality; the spec's MLP reference shows both below α = 0", ">",
               _dimension, hard=False),
    SmallClaim("fmnist: dim of the change in layer 1, FGSM > corruptions (α = 0)", "C9: "
               "adversarial changes are higher-dimensional than corruptions (mean over the 30 "
               "corruption sets)", ">", _change_dimension,
               hard=False),
    SmallClaim("fmnist: input-gradient variability α=+2 > α=−2", "coefficient of variation "
               "of ‖∂a_u/∂x‖ over test images and 32 units per layer, mean of both layers "
               "(the 'Linking' version: higher in high-SI networks; reconstructed measure)", ">",
               _gradient_variability, hard=False),
]
