"""Claims of "Joslim: Joint Widths and Weights Optimization for Slimmable Neural Networks"
(joslim.md §5, §6).

Paper scale: J1–J9 listed with source and tolerance. J5–J9 are the cost rule's values, which
tests/test_slim_cost.py checks exactly on the cost counter (they need no training). J1–J3 are
decided by `python -m lib.repro check` on finished Joslim and Slim runs of configs/imagenet.py
(`largest_gain`: the largest mean top-1 gain at matched cost, in points); J4 compares the
gains of two depths over a CIFAR-100 sweep: listed, not decided.
Small scale (configs/digits.py): Joslim and Slim over SEEDS, and the spec §6 hard assertions
(1)–(7) and the soft ones.
"""

from __future__ import annotations

import pathlib

import numpy as np

from lib.claims import PaperClaim, SmallClaim, every_seed, mean_std, measure_runs

TITLE = (  # the paper, as the reproduction report names it
    "Joslim: joint widths and weights of slimmable networks (Chin et al., 2007.11752)")
REPORTED = (  # what it reports at paper scale, in a line
    "layer-wise widths optimised with the shared weights beat one width multiplier (Slim): up"
    " to +1.7 top-1 for MobileNetV2 on ImageNet at matched FLOPs")

SEEDS = (0, 1, 2)
METHODS = ("joslim", "slim")
LAMBDA_TARGETS, LAMBDA_GRID = 20, 200

IMAGENET = "experiments/joslim/configs/imagenet.py"


def _gain_claim(claim_id, description, source, expected, arg):
    return PaperClaim(claim_id, description, source, "verified", expected, 0.5,
                      metric="top-1 points", config=f"{IMAGENET}:{arg},method=joslim",
                      versus=f"{IMAGENET}:{arg},method=slim", pairwise="largest_gain",
                      hard=False)


PAPER_CLAIMS = [
    _gain_claim("J1", "MobileNetV2 ImageNet, FLOPs: Joslim's top-1 front above Slim's, by up "
                "to +1.7 points", "abstract (all versions)", 1.7, "model=mobilenet_v2"),
    _gain_claim("J2", "MobileNetV3 ImageNet, FLOPs: up to +1 point over Slim", "abstract v1",
                1.0, "model=mobilenet_v3"),
    _gain_claim("J3", "MobileNetV2 ImageNet, memory footprint: up to +8 points over Slim",
                "abstract (ICLR-21, final)", 8.0, "model=mobilenet_v2,cost=memory"),
    PaperClaim("J4", "CIFAR-100 ResNets: the gain is larger for less over-parameterized nets "
               "(ResNet-20 > ResNet-56)", "abstract v1", "verified (claim)", None, hard=False),
    PaperClaim("J5", "ResNet-20 CIFAR-100 full model: 40.16 M conv MACs (tested exactly on the "
               "counter)", "cost rule", "derived", 40.16e6, 0.005 * 40.16e6, hard=False),
    PaperClaim("J6", "ResNet-56 full model: 125.10 M conv MACs (tested exactly)", "cost rule",
               "derived", 125.10e6, 0.005 * 125.10e6, hard=False),
    PaperClaim("J7", "MobileNetV2 224 px full model: 299.5 M conv MACs (tested exactly)",
               "cost rule", "derived", 299.5e6, 0.01 * 299.5e6, hard=False),
    PaperClaim("J8", "ResNet-18 224 px full model, 1×1-conv classifier included: 1814 M conv "
               "MACs (tested exactly)", "cost rule", "derived", 1814e6, 18.14e6, hard=False),
    PaperClaim("J9", "all-0.42 cost ratios 0.156 / 0.157 / 0.213 / 0.187 (ResNet-20 / -56 / "
               "MobileNetV2 / ResNet-18; tested exactly)", "cost rule", "derived", None,
               hard=False),
]


def largest_gain(joslim_runs: list, slim_runs: list) -> float:
    """The paper's "up to +x points": the largest mean test top-1 gain of the Joslim fronts
    over the Slim fronts at matched cost (experiments.joslim.analysis.gains: the best front
    point of cost ≤ c, on a grid of c over the costs both cover), in points."""
    from experiments.joslim import analysis

    _, gain = analysis.gains(analysis.load(joslim_runs) + analysis.load(slim_runs))
    return 100 * float(np.nanmax(gain))


def measure(workdir: pathlib.Path) -> dict:
    """Joslim and Slim × seeds (resumable sub-workdirs), and the exact checks of (1)–(4)."""
    from experiments.joslim import procedure
    from lib import config as config_lib

    config_file = pathlib.Path(__file__).parent / "configs" / "digits.py"

    def run(method, seed):
        config = config_lib.load_file(config_file, f"method={method},seed={seed}")
        return procedure.run(config, workdir / f"{method}_s{seed}")

    def describe(r):
        return (f"area {r['joslim/area_test_top1']:.3f}, full {r['joslim/full_test_top1']:.3f}"
                f", smallest {r['joslim/smallest_test_top1']:.3f}")

    out = measure_runs(workdir, [(m, f"{m} seed {s}", lambda m=m, s=s: run(m, s))
                                 for m in METHODS for s in SEEDS], describe)
    return {**out, "exact": exact_checks()}


def exact_checks() -> dict:
    """Spec §6 hard (1)–(4) on the digits model's space: the counter against a count by
    hand, decoding, peeling, and the λ search over a uniform-width grid with L = −mean(α)."""
    from experiments.joslim import mobo
    from lib.slim import cost, pareto, space

    arch = space.cifar_resnet(8, 10, widths=(8, 16, 32), image=8, in_channels=1)
    alpha = [0.42, 1.0, 0.42, 0.6, 0.9, 0.5]  # stage1 res/block, stage2, stage3
    c = arch.space.decode(alpha)  # residuals 3 → max(6, 3) = 6 → max(28, 6) = 28
    by_hand = (1 * 3 * 64  # 1×1 stem 1→3 at 8×8
               + 9 * 3 * 8 * 64 + 9 * 8 * 3 * 64  # stage 1 block: 3→8→3 at 8×8
               + 9 * 3 * 9 * 16 + 9 * 9 * 6 * 16  # stage 2 block: 3→9 (stride 2), 9→6 at 4×4
               + 9 * 6 * 16 * 4 + 9 * 16 * 28 * 4  # stage 3 block: 6→16 (s2), 16→28 at 2×2
               + 28 * 10)  # 1×1 classifier
    counter = cost.macs(arch, c)
    decoded = [c[n] for n in arch.space.names]
    peeled = pareto.peel([3.0, 2.0, 1.5, 2.5, 1.8, 1.2, 2.2],
                         [0.2, 0.4, 0.6, 0.45, 0.65, 0.95, 0.3]).tolist()
    grid = np.linspace(arch.space.low, arch.space.high, LAMBDA_GRID)
    ratios = np.array([cost.cost(arch, arch.space.uniform(f)) for f in grid])
    loss, _, _ = mobo.standardise(-grid)
    scaled, _, _ = mobo.standardise(ratios)
    rng = np.random.default_rng(0)
    hits = reachable = 0
    for _ in range(LAMBDA_TARGETS):
        target = mobo.uniform_target(ratios.min(), rng)
        _, r, _ = mobo.search_lambda(
            lambda lam: int(np.argmin(mobo.tchebyshev(loss, scaled, lam))),
            lambda i: float(ratios[i]), target)
        hits += abs(r - target) <= mobo.TOLERANCE
        reachable += np.min(np.abs(ratios - target)) <= mobo.TOLERANCE
    return {"counter": counter, "by_hand": by_hand, "decoded": decoded,
            "peeled": peeled, "lambda_hits": hits / LAMBDA_TARGETS,
            "lambda_reachable": reachable / LAMBDA_TARGETS,
            "grid_costs": int(len(np.unique(ratios)))}


def _counter(m):
    e = m.get("exact")
    if not e:
        return "missing measurement", False
    return f"counter {e['counter']:,}, by hand {e['by_hand']:,}", e["counter"] == e["by_hand"]


def _decoding(m):
    e = m.get("exact")
    if not e:
        return "missing measurement", False
    expected = [3, 8, 6, 9, 28, 16]  # floor, then residuals raised to 6 and 28
    return f"decoded {e['decoded']}", e["decoded"] == expected


def _peeling(m):
    e = m.get("exact")
    if not e:
        return "missing measurement", False
    return f"taken {e['peeled']}", e["peeled"] == [1, 1, 1, 0, 0, 1, 1]


def _lambda(m):
    e = m.get("exact")
    if not e:
        return "missing measurement", False
    return (f"{e['lambda_hits']:.0%} of {LAMBDA_TARGETS} targets; any search could reach "
            f"{e['lambda_reachable']:.0%}: the grid has {e['grid_costs']} distinct costs",
            e["lambda_hits"] >= 0.8)


def _runs(m, method):
    runs = m.get(method, [])
    return runs if len(runs) == len(SEEDS) else None


def _every_run(test):
    """A claim that `test(results) -> (text, passed)` holds for every Joslim seed."""
    return lambda m: every_seed(_runs(m, "joslim"), SEEDS, test)


def _losses_fall(r):
    parts = [(r[f"joslim/loss_{n}_start"], r[f"joslim/loss_{n}_end"]) for n in
             ("full", "smallest")]
    text = ", ".join(f"{n} {a:.2f} → {b:.2f}" for n, (a, b) in zip(("full", "smallest"), parts))
    return text, all(b <= 0.7 * a for a, b in parts)


def _recalibration(r):
    after, shared = r["joslim/smallest_test_top1"], r["joslim/smallest_test_top1_shared_bn"]
    return (f"smallest {after:.3f} recalibrated vs {shared:.3f} shared",
            after >= shared - 0.005 and r["joslim/recalibration_changed"] > 0)


def _coverage(r):
    n = r["joslim/cost_coverage_min"]
    return f"fewest samples in a fifth {n}", n >= 1


def _on_target(m):
    runs = _runs(m, "joslim")
    if runs is None:
        return "missing measurement", False
    value = mean_std([r["joslim/mobo_on_target"] for r in runs])[0]
    return f"{value:.0%} of MOBO samples within 0.02 of their targets", value >= 0.8


def _area(m):
    j, s = _runs(m, "joslim"), _runs(m, "slim")
    if j is None or s is None:
        return "missing measurement", False
    a = [mean_std([r["joslim/area_test_top1"] for r in runs])[0] for runs in (j, s)]
    return f"Joslim {a[0]:.4f}, Slim {a[1]:.4f}", a[0] >= a[1]


SMALL_CLAIMS = [
    SmallClaim("(1) the cost counter matches a count by hand", "digits ResNet-8 at a mixed "
               "configuration", "equal", _counter),
    SmallClaim("(2) decoding floors and raises each residual to the previous one's",
               "α = (0.42, 1, 0.42, 0.6, 0.9, 0.5)", "[3, 8, 6, 9, 28, 16]", _decoding),
    SmallClaim("(3) peeling returns the known candidates", "7 hand-made points",
               "[1, 1, 1, 0, 0, 1, 1]", _peeling),
    SmallClaim("(4) the λ search reaches |r − t| ≤ 0.02", f"{LAMBDA_TARGETS} targets, a "
               f"{LAMBDA_GRID}-point uniform-width grid, L = −mean(α)", "≥ 80 %", _lambda),
    SmallClaim("(5) sampled cost ratios cover [lower, 1]", "every Joslim run's history",
               "≥ 1 per fifth", _every_run(_coverage)),
    SmallClaim("(6) the full and smallest nets' losses fall by ≥ 30 %", "cross-entropy on a "
               "validation batch, start vs end, every Joslim run", "end ≤ 0.7 × start",
               _every_run(_losses_fall)),
    SmallClaim("(7) BN recalibration changes the statistics; smallest top-1 after it ≥ shared "
               "− 0.5 points", "every Joslim run, test split", "≥ shared − 0.005",
               _every_run(_recalibration)),
    SmallClaim("soft: MOBO samples within 0.02 of their cost targets", "mean over seeds",
               "≥ 80 %", _on_target, hard=False),
    SmallClaim("soft: area under Joslim's top-1-vs-cost front ≥ Slim's", "test top-1 over "
               "[cost of 0.42·1, 1], mean of 3 seeds", "≥", _area, hard=False),
]
