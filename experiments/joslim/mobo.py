"""The multi-objective Bayesian optimisation that picks Joslim's width configurations
(joslim.md §2 "MOBO_sample", §6 for the small-scale choices).

Given the history H of visited configurations α ∈ [l, u]^D with their (calibrated) losses and
cost ratios:
1. standardise H's losses and costs; fit a GP to the losses (and, with cost_model='gp', to the
   costs; 'exact' uses the cost counter itself);
2. U_L, U_C = the UCB mean + √β·std (BoTorch's convention, which the paper's code used for
   quantities it minimises: pessimistic; kept for fidelity);
3. draw a cost target t (uniform over linspace(lower, 1, 50), or PareCO's area-weighted
   histogram), then binary-search λ: λ = 0.5 on [0, 1], at most 10 steps, each minimising the
   augmented Tchebyshev scalarisation T_λ over the candidates, until the chosen α's exact cost
   ratio r is within 0.02 of t (r < t: less weight on cost, hi = λ; else lo = λ).

  T_λ(α) = max((1−λ)(U_L − b), λ(U_C − b)) + ρ[(1−λ)(U_L − b) + λ(U_C − b)],  b = −3, ρ = 1e-6

The GPs see inputs scaled to [0, 1]^D and standardised targets. surrogate=fixed is spec §6's
small-scale GP: exact, Matérn-5/2 with fixed hyperparameters (lengthscale 0.5, output scale 1,
noise 1e-4). surrogate=fitted is spec §2's (experiments.joslim.fitted_gp, on tinygp): priors,
MAP hyperparameters, an additive kernel for the cost. acquisition=candidates minimises T_λ over
a finite set (`candidates`: uniform random configurations, uniform widths, and Gaussian
perturbations of the current front's members); acquisition=restarts refines that set's best
by L-BFGS-B on the GPs' UCBs, as BoTorch's optimize_acqf did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lib.slim import pareto

REFERENCE = -3.0  # b
RHO = 1e-6
TOLERANCE = 0.02
LAMBDA_STEPS = 10
TARGETS = 50


@dataclasses.dataclass(frozen=True)
class Matern52GP:
    """Exact GP regression with a Matérn-5/2 kernel and fixed hyperparameters."""

    lengthscale: float = 0.5
    outputscale: float = 1.0
    noise: float = 1e-4

    def kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        r = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))
        s = np.sqrt(5.0) * r / self.lengthscale
        return self.outputscale * (1.0 + s + s**2 / 3.0) * np.exp(-s)

    def fit(self, x: np.ndarray, y: np.ndarray) -> Callable:
        """(mean, std) of the posterior at new points, as a function."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        k = self.kernel(x, x) + self.noise * np.eye(len(x))
        chol = np.linalg.cholesky(k)
        weights = np.linalg.solve(chol.T, np.linalg.solve(chol, y))

        def posterior(z):
            ks = self.kernel(np.asarray(z, np.float64), x)
            v = np.linalg.solve(chol, ks.T)
            var = np.maximum(self.outputscale - np.sum(v**2, axis=0), 1e-12)
            return ks @ weights, np.sqrt(var)

        return posterior


def standardise(v: np.ndarray) -> tuple[np.ndarray, float, float]:
    v = np.asarray(v, np.float64)
    mean, std = float(v.mean()), float(v.std())
    std = std if std > 1e-12 else 1.0
    return (v - mean) / std, mean, std


def ucb(mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
    return mean + np.sqrt(beta) * std


def tchebyshev(loss, cost, lam):
    """The augmented Tchebyshev scalarisation T_λ of standardised loss and cost (numpy or
    jnp arrays, so the gradient restarts can differentiate it)."""
    a, c = (1 - lam) * (loss - REFERENCE), lam * (cost - REFERENCE)
    xp = jnp if isinstance(a, jax.Array) or isinstance(c, jax.Array) else np
    return xp.maximum(a, c) + RHO * (a + c)


def search_lambda(objective: Callable[[float], object], ratio: Callable[[object], float],
                  target: float) -> tuple[object, float, int]:
    """(the chosen configuration, its cost ratio, steps taken): the binary search on λ toward
    a cost target. `objective(λ)` is the configuration minimising T_λ; `ratio(α)` its exact
    cost ratio."""
    lam, lo, hi, steps = 0.5, 0.0, 1.0, 0
    while steps < LAMBDA_STEPS:
        steps += 1
        best = objective(lam)
        r = ratio(best)
        if abs(r - target) <= TOLERANCE:
            break
        if r < target:
            hi, lam = lam, (lam + lo) / 2
        else:
            lo, lam = lam, (lam + hi) / 2
    return best, r, steps


def uniform_target(lower: float, rng: np.random.Generator) -> float:
    return float(rng.choice(np.linspace(lower, 1.0, TARGETS)))


def area_target(losses: np.ndarray, costs: np.ndarray, lower: float, full_loss: float,
                rng: np.random.Generator) -> float:
    """PareCO's target (`--pas`): a cost drawn from a 50-bin histogram over [0.01, 0.99]
    weighted by the area each segment of the current (cost, loss) front adds, the front
    padded with (lower, 8) and (1, full_loss)."""
    keep = pareto.efficient(np.stack([losses, costs], axis=1))
    order = np.argsort(costs[keep])
    c = np.concatenate([[lower], costs[keep][order], [1.0]])
    v = np.concatenate([[8.0], losses[keep][order], [full_loss]])
    bins = np.linspace(0.01, 0.99, TARGETS + 1)
    weights = np.zeros(TARGETS)
    for i in range(len(c) - 1):
        area = (c[i + 1] - c[i]) * max(v[i] - v[i + 1], 0.0)
        inside = (bins[:-1] >= c[i]) & (bins[:-1] < c[i + 1])
        if inside.any() and area > 0:
            weights[inside] += area / inside.sum()
    if weights.sum() == 0:
        return uniform_target(lower, rng)
    b = rng.choice(TARGETS, p=weights / weights.sum())
    return float(rng.uniform(bins[b], bins[b + 1]))


def candidates(history: np.ndarray, losses: np.ndarray, costs: np.ndarray, low: float,
               high: float, rng: np.random.Generator, random: int = 1024, uniform: int = 64,
               perturbed: int = 256, sigma: float = 0.05) -> np.ndarray:
    """The acquisition's search set (spec §6): uniform random configurations, uniform widths,
    and Gaussian (σ·(high − low)) perturbations of the current front's members, clipped to
    [low, high]."""
    d = history.shape[1]
    parts = [rng.uniform(low, high, (random, d)),
             np.repeat(np.linspace(low, high, uniform)[:, None], d, axis=1)]
    front = history[pareto.efficient(np.stack([losses, costs], axis=1))]
    if len(front):
        base = front[rng.integers(len(front), size=perturbed)]
        parts.append(base + rng.normal(0, sigma * (high - low), base.shape))
    return np.clip(np.concatenate(parts), low, high)


SURROGATES = ("fixed", "fitted")
COST_MODELS = ("exact", "gp")
TARGET_RULES = ("uniform", "area")
ACQUISITIONS = ("candidates", "restarts")
RESTARTS = 5


def surrogates(kind: str, ard: bool = True) -> tuple:
    """(loss GP, cost GP): spec §6's fixed Matern52GP for both, or spec §2's fitted GPs
    (experiments.joslim.fitted_gp: ARD Matérn for the loss, additive for the cost)."""
    if kind == "fixed":
        return Matern52GP(), Matern52GP()
    if kind == "fitted":
        from experiments.joslim import fitted_gp
        fitted_gp.tinygp()
        return fitted_gp.FittedGP("ard", ard=ard), fitted_gp.FittedGP("additive")
    raise ValueError(f"surrogate {kind!r}; valid choices: {', '.join(SURROGATES)}")


def restarts_search(loss_posterior, cost_posterior, u_loss, u_cost, pool_scaled, beta):
    """objective(λ) for search_lambda by gradient restarts: the RESTARTS best candidates under
    T_λ start L-BFGS-B on T_λ of the two GPs' UCBs over [0, 1]^D (scaled configurations)."""
    from experiments.joslim import fitted_gp

    def scalarised(z, lam):
        loss = ucb(*loss_posterior.jax(z), beta)
        cost = ucb(*cost_posterior.jax(z), beta)
        return tchebyshev(loss, cost, lam)[0]

    minimise = fitted_gp.minimiser(scalarised)

    def objective(lam):
        order = np.argsort(tchebyshev(u_loss, u_cost, lam))[:RESTARTS]
        return minimise(pool_scaled[order], lam)

    return objective


def sample(history: np.ndarray, losses: np.ndarray, costs: np.ndarray, *, low: float,
           high: float, cost_of: Callable[[np.ndarray], np.ndarray], lower: float,
           rng: np.random.Generator, beta: float = 0.1, cost_model: str = "exact",
           target_rule: str = "uniform", full_loss: float | None = None,
           surrogate: str = "fixed", acquisition: str = "candidates", ard: bool = True
           ) -> dict:
    """One MOBO sample: {'alpha', 'target', 'ratio', 'steps'} (spec §2 MOBO_sample).
    `cost_of(configs) -> exact cost ratios` of [N, D] configurations. acquisition=restarts
    refines the candidates by gradient (BoTorch's way) and needs cost_model=gp and
    surrogate=fitted: the exact counter has no gradient."""
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"acquisition {acquisition!r}; valid choices: {', '.join(ACQUISITIONS)}")
    if acquisition == "restarts" and (cost_model, surrogate) != ("gp", "fitted"):
        raise ValueError("acquisition=restarts needs cost_model=gp and surrogate=fitted "
                         f"(got cost_model={cost_model!r}, surrogate={surrogate!r})")
    scale = lambda a: (np.asarray(a) - low) / (high - low)  # noqa: E731
    loss_gp, cost_gp = surrogates(surrogate, ard)
    pool = candidates(history, losses, costs, low, high, rng)
    y_loss, _, _ = standardise(losses)
    loss_posterior = loss_gp.fit(scale(history), y_loss)
    u_loss = ucb(*loss_posterior(scale(pool)), beta)
    y_cost, mean, std = standardise(costs)
    if cost_model == "gp":
        cost_posterior = cost_gp.fit(scale(history), y_cost)
        u_cost = ucb(*cost_posterior(scale(pool)), beta)
    elif cost_model == "exact":
        u_cost = (cost_of(pool) - mean) / std
    else:
        raise ValueError(f"cost_model {cost_model!r}; valid choices: {', '.join(COST_MODELS)}")
    if target_rule == "uniform":
        target = uniform_target(lower, rng)
    elif target_rule == "area":
        target = area_target(losses, costs, lower, full_loss, rng)
    else:
        raise ValueError(f"target_rule {target_rule!r}; valid choices: "
                         f"{', '.join(TARGET_RULES)}")
    if acquisition == "candidates":
        objective = lambda lam: pool[int(np.argmin(tchebyshev(u_loss, u_cost, lam)))]  # noqa: E731
    else:
        search = restarts_search(loss_posterior, cost_posterior, u_loss, u_cost, scale(pool),
                                 beta)
        objective = lambda lam: low + (high - low) * search(lam)  # noqa: E731
    alpha, r, steps = search_lambda(objective, lambda a: float(cost_of(a[None])[0]), target)
    return {"alpha": alpha, "target": target, "ratio": r, "steps": steps}
