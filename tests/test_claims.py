"""Small-scale claims of every landed paper, decided on hand-built measurements.

Per paper: a fixture shaped like its `claims.measure()` output on which every claim passes;
changes that make one claim's statement false (ordering reversed, margin missed by a little),
each asserted to fail exactly the claims it should; at stated margins, changes that keep the
claim just true; and missing measurements, reported as failures by `repro.evaluate_small`.
The numbers come from the claims' descriptions and the papers' specs (§6), not from the claims'
code (bar documented margins).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType

import pytest

from experiments.batchnorm_only import claims as bn_claims
from experiments.class_selectivity import claims as cs_claims
from experiments.early_phase import claims as ep_claims
from experiments.pruning_stability import claims as ps_claims
from lib import repro

EPS = 1e-4  # "a little" either side of a stated margin (accuracies, fractions)
Mutation = Callable[[dict], None]


# --- shared helpers ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Paper:
    slug: str
    claims: ModuleType  # experiments.<slug>.claims
    build: Callable[[], dict]  # a fresh fixture on which every small claim passes

    def rows(self, m: dict) -> dict[str, repro.Row]:
        return {r.id: r for r in repro.evaluate_small(self.claims, m)}

    def failing(self, m: dict) -> set[str]:
        return {i for i, r in self.rows(m).items() if not r.passed}


def spread(mean: float, n: int, scale: float, shift: int = 0) -> list[float]:
    """n unequal, skewed per-seed values averaging `mean`, rotated by `shift` and mirrored for
    odd `shift`: near a margin, a claim that read one seed, the median or the maximum instead
    of the seed mean would decide differently."""
    squares = [i * i for i in range(n)]
    centre = sum(squares) / n
    offsets = [(-1) ** shift * scale * (s - centre) for s in squares]
    k = shift % n
    return [mean + o for o in offsets[k:] + offsets[:k]]


def _node(m, path):
    for p in path:
        m = m[p]
    return m


def at(*path, mean: float, key: str | None = None) -> Mutation:
    """Shifts the per-seed values at `path` (or each run's `key` there) to average `mean`."""

    def mutate(m):
        runs = _node(m, path)
        shift = mean - sum(r if key is None else r[key] for r in runs) / len(runs)
        for i, r in enumerate(runs):
            if key is None:
                runs[i] = r + shift
            else:
                r[key] += shift

    return mutate


def put(*path, value) -> Mutation:
    def mutate(m):
        _node(m, path[:-1])[path[-1]] = value

    return mutate


def drop(*path) -> Mutation:
    def mutate(m):
        del _node(m, path[:-1])[path[-1]]

    return mutate


def chain(*mutations: Mutation) -> Mutation:
    def mutate(m):
        for f in mutations:
            f(m)

    return mutate


def case(paper: Paper, name: str, mutation: Mutation, *fails: str):
    """The fixture changed by `mutation` fails exactly the claims `fails` (none: all pass)."""
    return pytest.param(paper, mutation, frozenset(fails), id=f"{paper.slug}: {name}")


# --- batchnorm_only ------------------------------------------------------------------------

GRIDS = ("fashion_mnist", "digits")
BN_ACCURACY = {  # seed means, best first; every neighbour gap well above its margin
    "fashion_mnist": {"all": 0.86, "bn_and_output": 0.78, "bn_only": 0.72, "output_only": 0.64,
                      "random_k_per_channel": 0.30, "none": 0.10},
    "digits": {"all": 0.98, "bn_and_output": 0.93, "bn_only": 0.85, "output_only": 0.78,
               "random_k_per_channel": 0.33, "none": 0.10},
}
ORDER = tuple(BN_ACCURACY["digits"])
BN_MARGINS = {
    "fashion_mnist": bn_claims.FASHION_MNIST_MARGINS,  # calibrated here: the documented margins
    "digits": {  # the spec's hard assertions (batchnorm_only.md §6)
        ("all", "bn_and_output"): 0.02, ("bn_and_output", "bn_only"): 0.04,
        ("bn_only", "output_only"): 0.03, ("output_only", "random_k_per_channel"): 0.15,
        ("random_k_per_channel", "none"): 0.15,
    },
}
BN_GAMMA = {  # (all, bn_only) seed means: BN-only training leaves more small γ
    "fashion_mnist": {"f_0.01": (0.01, 0.10), "f_0.05": (0.04, 0.30),  # B3: "a third"
                      "f_0.1": (0.08, 0.38), "off_after_relu_0.05": (0.03, 0.12)},
    "digits": {"f_0.01": (0.007, 0.015), "f_0.05": (0.042, 0.062), "f_0.1": (0.09, 0.14),
               "off_after_relu_0.05": (0.03, 0.06)},
}
BN_PARAMS = {"all": 77_754, "bn_only": 672}  # ResNet-8, 1 input channel (§6)


def bn_build() -> dict:
    out = {}
    for grid, accuracy in BN_ACCURACY.items():
        g = {"accuracy": {s: spread(a, 3, 0.005, i) for i, (s, a) in enumerate(accuracy.items())},
             "trainable_params": dict(BN_PARAMS),
             "ablation_change_0.05": {"bn_only": spread(0.002, 3, 0.001)},
             "init_f_0.05": spread(0.05, 3, 0.001)}
        for j, (key, (full, bn)) in enumerate(BN_GAMMA[grid].items()):
            g[key] = {"all": spread(full, 3, 0.001, j), "bn_only": spread(bn, 3, 0.002, j + 1)}
        out[grid] = g
    return out


BN = Paper("batchnorm_only", bn_claims, bn_build)


def bn_gap_cases():
    """Each neighbour gap of each grid: its margin kept, and missed, by EPS."""
    for grid, margins in BN_MARGINS.items():
        for better, worse in zip(ORDER, ORDER[1:]):
            claim = f"{grid}: {better} > {worse}"
            edge = BN_ACCURACY[grid][better] - margins[(better, worse)]
            yield case(BN, f"{claim}, margin kept", at(grid, "accuracy", worse, mean=edge - EPS))
            yield case(BN, f"{claim}, margin missed",
                       at(grid, "accuracy", worse, mean=edge + EPS), claim)


def bn_gamma_cases():
    for grid in GRIDS:
        for key, (_, bn) in BN_GAMMA[grid].items():
            claim = f"{grid}: {key}(bn_only) > {key}(all)"  # hard for f_0.05 only
            yield case(BN, f"{claim} reversed", at(grid, key, "all", mean=bn + EPS), claim)
        claim, change = f"{grid}: zero-small-γ ablation", (grid, "ablation_change_0.05", "bn_only")
        yield case(BN, f"{claim} just small", at(*change, mean=0.01 - EPS))
        yield case(BN, f"{claim} too large", at(*change, mean=0.01 + EPS), claim)
        yield case(BN, f"{claim} too negative", at(*change, mean=-0.01 - EPS), claim)


def bn_level_cases():
    """Each level claim just kept and just missed; `prep` moves a neighbour so that the gaps
    between neighbours still hold."""
    fm, dg = "fashion_mnist", "digits"
    for claim, grid, setting, bound, above, prep in (
        ("fashion_mnist: acc(bn_only) ≥ 0.50", fm, "bn_only", 0.50, True, ("output_only", 0.45)),
        ("digits: acc(none) ≤ 0.20", dg, "none", 0.20, False, ("random_k_per_channel", 0.40)),
        ("digits: acc(bn_only) ≥ 0.75", dg, "bn_only", 0.75, True, ("output_only", 0.70)),
        ("digits: acc(all) ≥ 0.95", dg, "all", 0.95, True, ("bn_and_output", 0.90)),
    ):
        inside = EPS if above else -EPS
        for delta, fails in ((inside, ()), (-inside, (claim,))):
            yield case(BN, f"{claim}, {delta:+g}",
                       chain(at(grid, "accuracy", prep[0], mean=prep[1]),
                             at(grid, "accuracy", setting, mean=bound + delta)), *fails)
    # bn_only ≥ 0.75 and none ≤ 0.20 imply bn_only − none ≥ 0.55: this one cannot fail alone
    yield case(BN, "digits: bn_only − none just below 0.50",
               chain(at("digits", "accuracy", "output_only", mean=0.70),
                     at("digits", "accuracy", "random_k_per_channel", mean=0.45),
                     at("digits", "accuracy", "bn_only", mean=0.76),
                     at("digits", "accuracy", "none", mean=0.26 + EPS)),
               "digits: acc(bn_only) − acc(none) ≥ 0.50", "digits: acc(none) ≤ 0.20")


B3 = "fashion_mnist: B3 a third of γ ≈ 0"
BN_COUNT = "fashion_mnist: bn_only count"
BN_CASES = [
    *bn_gap_cases(), *bn_gamma_cases(), *bn_level_cases(),
    case(BN, "bn_only count one channel short",
         put("fashion_mnist", "trainable_params", "bn_only", value=672 - 2), BN_COUNT),
    case(BN, "bn_only count of every parameter",
         put("fashion_mnist", "trainable_params", "bn_only", value=77_754), BN_COUNT),
    *(case(BN, f"B3 at {f:g}", at("fashion_mnist", "f_0.05", "bn_only", mean=f), *fails)
      for f, fails in ((0.20 + EPS, ()), (0.40 - EPS, ()), (0.20 - EPS, (B3,)),
                       (0.40 + EPS, (B3,)), (0.07, (B3,)))),
]


# --- early_phase ---------------------------------------------------------------------------

EP_ACCURACY = {  # seed means at 0.78 % remaining (early_phase.md §6 reference)
    "dense": 0.991, "rewind_40": 0.964, "rewind_0": 0.948, "reinit": 0.886,
    "reinit_keep_sign": 0.950, "shuffle_layer": 0.898, "shuffle_layer_keep_sign": 0.955,
}
EP_MARGIN = 0.03  # the spec's hard margin for reinit and shuffle_layer
EP_LEVELS = 7  # at 50 % per level


def ep_build() -> dict:
    return {"accuracy": {k: spread(a, 5, 0.001, i) for i, (k, a) in enumerate(EP_ACCURACY.items())},
            "remaining": {str(level): 0.5**level for level in range(EP_LEVELS + 1)}}


EP = Paper("early_phase", ep_claims, ep_build)
REWIND = EP_ACCURACY["rewind_40"]
EP_SPARSITY = "digits: sparsity of the last level"
EP_CASES = [
    *(case(EP, f"rewind_40 − {worse} {sign * EPS:+g} from the margin",
           at("accuracy", worse, mean=REWIND - EP_MARGIN - sign * EPS), *fails)
      for worse in ("shuffle_layer", "reinit")
      for sign, fails in ((1, ()), (-1, (f"digits: rewind_40 − {worse}",)))),
    *(case(EP, f"rewind_40 − {worse} {sign * EPS:+g}",
           at("accuracy", worse, mean=REWIND - sign * EPS), *fails)
      for worse in ("reinit_keep_sign", "shuffle_layer_keep_sign", "rewind_0")
      for sign, fails in ((1, ()), (-1, (f"digits: rewind_40 − {worse}",)))),
    case(EP, "one level fewer", put("remaining", "7", value=0.5**6), EP_SPARSITY),
    case(EP, "one level more", put("remaining", "7", value=0.5**8), EP_SPARSITY),
    case(EP, "the paper's 20 % per level", put("remaining", "7", value=0.8**7), EP_SPARSITY),
]


# --- pruning_stability ---------------------------------------------------------------------

# conv 3 keeps 45 of 64 filters (3×3×32 kernels), conv 4 32 of 64 (3×3×64), each removed filter
# with its γ and β (the claim's description; widths 16/32/64/64, pruning_stability.md §6)
CONV4_FILTER = 3 * 3 * 64 + 2
PS_SCHEDULED = 19 * (3 * 3 * 32 + 2) + 32 * CONV4_FILTER
PS_MEANS = {  # setting: {target: (mean instability, best test accuracy)}, seed means
    "digits": {"S": (0.0088, 0.9905), "R": (0.0153, 0.9899), "L": (0.0248, 0.9905)},  # §6 ref
    "digits_lr1e-3": {"S": (0.0060, 0.990), "R": (0.0080, 0.990), "L": (0.0110, 0.990)},
    "fmnist": {"none": (0.0, 0.80), "S": (0.020, 0.81), "L": (0.045, 0.82)},
}
PS_SEEDS = {"digits": 12, "digits_lr1e-3": 6, "fmnist": 3}


def ps_build() -> dict:
    out: dict = {}
    for setting, targets in PS_MEANS.items():
        n = PS_SEEDS[setting]
        for j, (target, (instability, best)) in enumerate(targets.items()):
            drops = spread(instability, n, 2e-6, j) if instability else [0.0] * n
            out.setdefault(setting, {})[target] = [
                {"mean_instability": d, "mean_stability": 100 * (1 - d),
                 "best_test_accuracy": b, "generalization_gap": 100 * (0.999 - b),
                 "max_drop_points": 150 * d, "pruned": PS_SCHEDULED if instability else 0}
                for d, b in zip(drops, spread(best, n, 1e-4, j))]
    return out


PS = Paper("pruning_stability", ps_claims, ps_build)
PS_ORDER, PS_RATIOS = "digits: instability L > R > S", "digits: ordering margins ≥ 1.2×"
PS_FILTERS = "digits: every run removed the scheduled filters"


def instability(setting: str, target: str, mean: float) -> Mutation:
    return at(setting, target, key="mean_instability", mean=mean)


def best(target: str, mean: float) -> Mutation:
    return at("fmnist", target, key="best_test_accuracy", mean=mean)


_S, _R = PS_MEANS["digits"]["S"][0], PS_MEANS["digits"]["R"][0]
PS_CASES = [
    case(PS, "L just above R", instability("digits", "L", _R * (1 + 1e-3)), PS_RATIOS),
    case(PS, "L just below R", instability("digits", "L", _R * (1 - 1e-3)), PS_ORDER, PS_RATIOS),
    case(PS, "R just below S", instability("digits", "R", _S * (1 - 1e-3)), PS_ORDER, PS_RATIOS),
    case(PS, "L/R just above 1.2", instability("digits", "L", 1.2 * _R * (1 + 1e-3))),
    case(PS, "L/R just below 1.2", instability("digits", "L", 1.2 * _R * (1 - 1e-3)), PS_RATIOS),
    case(PS, "R/S just above 1.2", instability("digits", "R", 1.2 * _S * (1 + 1e-3))),
    case(PS, "R/S just below 1.2", instability("digits", "R", 1.2 * _S * (1 - 1e-3)), PS_RATIOS),
    case(PS, "lr 1e-3: S above R", instability("digits_lr1e-3", "S", 0.0081),
         "digits at the spec's Adam 1e-3: L > R > S"),
    case(PS, "S instability exactly 0: no ratio, no crash", instability("digits", "S", 0.0)),
    case(PS, "S and R negative, in order: ratios do not apply",
         chain(instability("digits", "S", -0.02), instability("digits", "R", -0.01))),
    case(PS, "S and R negative, out of order",
         chain(instability("digits", "S", -0.01), instability("digits", "R", -0.02)),
         PS_ORDER, PS_RATIOS),
    case(PS, "one run one conv-4 filter short",
         put("digits", "R", 5, "pruned", value=PS_SCHEDULED - CONV4_FILTER), PS_FILTERS),
    case(PS, "one run without BN γ, β masked",
         put("digits", "L", 0, "pruned", value=19 * 3 * 3 * 32 + 32 * 3 * 3 * 64), PS_FILTERS),
    case(PS, "fmnist L just below S", best("L", PS_MEANS["fmnist"]["S"][1] - EPS),
         "fmnist: best test acc L − S"),
    case(PS, "fmnist unpruned just above L", best("none", PS_MEANS["fmnist"]["L"][1] + EPS),
         "fmnist: best test acc L − unpruned"),
]


# --- class_selectivity ---------------------------------------------------------------------

CS_SI = {"-2": (0.064, 0.066, 0.069), "0": (0.55, 0.57, 0.58), "2": (0.88, 0.90, 0.89)}
CS_MEANS = {  # α: seed means (class_selectivity.md §6 reference run, rounded)
    "-2": {"clean_accuracy": 0.835, "accuracy/fgsm_0.05": 0.20,
           "relative_accuracy/noise_0.4": 0.55, "relative_corruption_accuracy": 0.62,
           "pca_dim/dense0": 21.0, "gradient_cv/mean": 0.60},
    "0": {"clean_accuracy": 0.881, "accuracy/fgsm_0.05": 0.345,
          "relative_accuracy/noise_0.4": 0.44, "relative_corruption_accuracy": 0.58,
          "pca_dim/dense0": 64.0, "gradient_cv/mean": 0.75},
    "2": {"clean_accuracy": 0.880, "accuracy/fgsm_0.05": 0.42,
          "relative_accuracy/noise_0.4": 0.50, "relative_corruption_accuracy": 0.55,
          "pca_dim/dense0": 19.0, "gradient_cv/mean": 0.90},
}
CS_CHANGE_DIMS = {"fgsm_0.05": 40.0, "corruption_mean": 25.0, "noise_0.4": 30.0}


def cs_build() -> dict:
    out = {}
    for alpha, means in CS_MEANS.items():
        per_key = {k: spread(v, 3, 0.01 * v, j) for j, (k, v) in enumerate(means.items())}
        per_key |= {f"pca_dim_change/{k}/dense0": spread(v, 3, 0.2, j)
                    for j, (k, v) in enumerate(CS_CHANGE_DIMS.items())}
        out[alpha] = [{"selectivity/mean": CS_SI[alpha][s]} | {k: v[s] for k, v in per_key.items()}
                      for s in range(3)]
    return out


CS = Paper("class_selectivity", cs_claims, cs_build)
CS_SI_CLAIM = "fmnist: SI(−2) < SI(0) < SI(+2), SI(−2) < 0.5·SI(0)"
CS_ACC = "fmnist: acc(+2) ≤ acc(0) + 0.01"
CS_FGSM = "fmnist: FGSM acc (ε 0.05) α=+2 ≥ α=−2 + 0.10"
FGSM = "accuracy/fgsm_0.05"


def cs_mean(alpha: str, key: str) -> float:
    return CS_MEANS[alpha][key]


def cs_soft_cases():
    """Each soft comparison reversed by EPS."""
    for claim, (alpha, key, mean) in {
        "fmnist: relative noise acc (σ 0.4) α=−2 ≥ α=+2":
            ("-2", "relative_accuracy/noise_0.4", cs_mean("2", "relative_accuracy/noise_0.4")),
        "fmnist: relative corruption acc α=−2 ≥ α=+2":
            ("-2", "relative_corruption_accuracy", cs_mean("2", "relative_corruption_accuracy")),
        "fmnist: PCA-95 dim of layer 1, α=−2 > α=+2":
            ("-2", "pca_dim/dense0", cs_mean("2", "pca_dim/dense0")),
        "fmnist: dim of the change in layer 1, FGSM > corruptions (α = 0)":
            ("0", "pca_dim_change/fgsm_0.05/dense0", CS_CHANGE_DIMS["corruption_mean"]),
        "fmnist: input-gradient variability α=+2 > α=−2":
            ("2", "gradient_cv/mean", cs_mean("-2", "gradient_cv/mean")),
    }.items():
        yield case(CS, f"{claim} reversed", at(alpha, key=key, mean=mean - EPS), claim)


CS_HALF = 0.5 * CS_SI["0"][1]  # seed 1's SI(−2) bound
CS_CASES = [
    case(CS, "seed 1 SI(−2) just below 0.5·SI(0)",
         put("-2", 1, "selectivity/mean", value=CS_HALF - EPS)),
    case(CS, "seed 1 SI(−2) just above 0.5·SI(0)",
         put("-2", 1, "selectivity/mean", value=CS_HALF + EPS), CS_SI_CLAIM),
    case(CS, "seed 2 SI(+2) below SI(0)",
         put("2", 2, "selectivity/mean", value=CS_SI["0"][2] - EPS), CS_SI_CLAIM),
    case(CS, "a seed missing at α = +2", drop("2", 2), CS_SI_CLAIM),
    case(CS, "seed 0 SI(−2) above SI(0)",
         put("-2", 0, "selectivity/mean", value=CS_SI["0"][0] + EPS), CS_SI_CLAIM),
    *(case(CS, f"acc(+2) = acc(0) + 0.01 {sign * EPS:+g}",
           at("2", key="clean_accuracy", mean=cs_mean("0", "clean_accuracy") + 0.01 + sign * EPS),
           *fails)
      for sign, fails in ((-1, ()), (1, (CS_ACC,)))),
    *(case(CS, f"FGSM(+2) = FGSM(−2) + 0.10 {sign * EPS:+g}",
           at("2", key=FGSM, mean=cs_mean("-2", FGSM) + 0.10 + sign * EPS), *fails)
      for sign, fails in ((1, ()), (-1, (CS_FGSM,)))),
    *cs_soft_cases(),
]


# --- the tests -----------------------------------------------------------------------------

PAPERS = [BN, EP, PS, CS]
CASES = [*BN_CASES, *EP_CASES, *PS_CASES, *CS_CASES]


@pytest.mark.parametrize("paper", PAPERS, ids=lambda p: p.slug)
def test_every_claim_passes_on_the_passing_fixture(paper):
    rows = repro.evaluate_small(paper.claims, paper.build())
    assert rows and len({r.id for r in rows}) == len(rows)
    assert all(r.passed for r in rows), repro.table(rows)


@pytest.mark.parametrize("paper, mutation, expected", CASES)
def test_claims_fail_exactly_where_their_statement_is_false(paper, mutation, expected):
    m = paper.build()
    mutation(m)
    assert paper.failing(m) == expected, repro.table(list(paper.rows(m).values()))


@pytest.mark.parametrize("paper", PAPERS, ids=lambda p: p.slug)
def test_every_hard_claim_has_a_case_where_it_fails(paper):
    failed = set().union(*(c.values[2] for c in CASES if c.values[0] is paper))
    hard = {c.id for c in paper.claims.SMALL_CLAIMS if c.hard}
    assert hard <= failed, hard - failed


@pytest.mark.parametrize("paper, mutation, expected", [
    case(BN, "digits f_0.05", drop("digits", "f_0.05"), "digits: f_0.05(bn_only) > f_0.05(all)"),
    case(BN, "fashion_mnist none", drop("fashion_mnist", "accuracy", "none"),
         "fashion_mnist: random_k_per_channel > none"),
    case(EP, "last level", drop("remaining", "7"), EP_SPARSITY),
    case(EP, "reinit", drop("accuracy", "reinit"), "digits: rewind_40 − reinit"),
    case(PS, "digits R", drop("digits", "R"), PS_ORDER, PS_RATIOS),
    case(CS, "FGSM of one α=+2 seed", drop("2", 1, FGSM), CS_FGSM),
])
def test_a_missing_measurement_fails_its_claims(paper, mutation, expected):
    m = paper.build()
    mutation(m)
    rows = paper.rows(m)
    assert paper.failing(m) == expected
    assert all(rows[i].measured.startswith("missing measurement") for i in expected)


@pytest.mark.parametrize("paper", PAPERS, ids=lambda p: p.slug)
def test_no_measurements_fail_every_claim(paper):
    rows = repro.evaluate_small(paper.claims, {})
    assert rows and not any(r.passed for r in rows)
    assert all(r.measured.startswith("missing measurement") for r in rows)
