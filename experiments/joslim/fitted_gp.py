"""The paper-scale surrogates of Joslim's MOBO (joslim.md §2 "MOBO_sample"): GPs whose
hyperparameters are fitted, on tinygp (the `[gp]` extra), and the acquisition's gradient
restarts.

As BoTorch's SingleTaskGP in the paper's code: zero mean on standardised targets, Gaussian
noise, and the hyperparameters at the maximum of the exact log marginal likelihood plus their
log priors (MAP; L-BFGS-B from the priors' modes, as BoTorch fits with scipy's L-BFGS-B):
- the loss GP (`kernel="ard"`): outputscale · Matérn-5/2 over r = ‖(x − x′)/ℓ‖₂, one ℓ per
  dimension (BoTorch's default; `ard=False` shares one ℓ);
- the cost GP (`kernel="additive"`): outputscale · Σ_d Matérn-5/2(|x_d − x′_d| / ℓ), one 1-D
  kernel shared by every dimension;
- priors Gamma(3, 6) on ℓ and Gamma(2, 0.15) on the outputscale (shape, rate), from the spec;
  on the noise BoTorch's default Gamma(1.1, 0.05) with noise ≥ 1e-4 (the spec names none).
The posterior is that of the latent f (no observation noise), as BoTorch's UCB reads it. All of
it runs in float64 (`jax.enable_x64` around each call), whatever the training's precision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import gamma
from scipy import optimize

LENGTHSCALE_PRIOR = (3.0, 6.0)  # Gamma(shape, rate)
OUTPUTSCALE_PRIOR = (2.0, 0.15)
NOISE_PRIOR = (1.1, 0.05)
MIN_NOISE = 1e-4
LOG_BOUNDS = (-9.0, 9.0)  # L-BFGS-B box on the log lengthscales and outputscale
NOISE_LOG_BOUNDS = (-30.0, 9.0)  # on log(noise − 1e-4): the noise may sit at its floor


def tinygp():
    """The tinygp module, or a clear error naming the extra that installs it."""
    try:
        import tinygp as module
    except ImportError as error:
        raise ImportError("joslim.surrogate=fitted fits its GPs with tinygp, which is not "
                          "installed: pip install -e '.[gp]' (or set joslim.surrogate=fixed)"
                          ) from error
    return module


def log_gamma_prior(value, shape_rate: tuple[float, float]):
    shape, rate = shape_rate
    return gamma.logpdf(value, shape, scale=1.0 / rate)


def mode(shape_rate: tuple[float, float]) -> float:
    shape, rate = shape_rate
    return (shape - 1.0) / rate


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Constrained hyperparameters: lengthscale [D] (or [1], shared), outputscale, noise."""

    lengthscale: np.ndarray
    outputscale: float
    noise: float


@dataclasses.dataclass(frozen=True)
class FittedGP:
    """`fit(x, y)` → a posterior function z ↦ (mean, std) with MAP hyperparameters; the same
    interface as mobo.Matern52GP. `fit(...).jax` is the posterior in jnp, differentiable in z
    (call it under `jax.enable_x64(True)`), for the acquisition's gradient restarts."""

    kernel: str = "ard"  # ard (loss) | additive (cost)
    ard: bool = True
    max_iterations: int = 200

    def __post_init__(self):
        if self.kernel not in ("ard", "additive"):
            raise ValueError(f"kernel {self.kernel!r}; valid choices: ard, additive")

    def covariance(self, hyper: Hyper, dims: int):
        """The tinygp kernel of these hyperparameters over `dims` input dimensions."""
        tg = tinygp()
        matern = tg.kernels.Matern52(distance=tg.kernels.distance.L2Distance())
        if self.kernel == "ard":
            return hyper.outputscale * tg.transforms.Linear(1.0 / hyper.lengthscale, matern)
        one = tg.transforms.Linear(1.0 / hyper.lengthscale, matern)
        total = tg.transforms.Subspace(0, one)
        for d in range(1, dims):
            total = total + tg.transforms.Subspace(d, one)
        return hyper.outputscale * total

    def process(self, hyper: Hyper, x):
        return tinygp().GaussianProcess(self.covariance(hyper, x.shape[1]), x, diag=hyper.noise)

    def log_posterior(self, hyper: Hyper, x, y):
        """Exact log marginal likelihood plus the log priors (the MAP objective)."""
        return (self.process(hyper, x).log_probability(y)
                + log_gamma_prior(hyper.lengthscale, LENGTHSCALE_PRIOR).sum()
                + log_gamma_prior(hyper.outputscale, OUTPUTSCALE_PRIOR)
                + log_gamma_prior(hyper.noise, NOISE_PRIOR))

    def _unpack(self, theta, dims: int) -> Hyper:
        n = dims if self.ard and self.kernel == "ard" else 1
        return Hyper(jnp.exp(theta[:n]), jnp.exp(theta[n]), MIN_NOISE + jnp.exp(theta[n + 1]))

    def hyperparameters(self, x: np.ndarray, y: np.ndarray) -> Hyper:
        """The MAP hyperparameters for data (x [N, D], y [N])."""
        d = x.shape[1]
        n = d if self.ard and self.kernel == "ard" else 1
        start = np.concatenate([np.full(n, np.log(mode(LENGTHSCALE_PRIOR))),
                                [np.log(mode(OUTPUTSCALE_PRIOR)),
                                 np.log(mode(NOISE_PRIOR) - MIN_NOISE)]])
        with jax.enable_x64(True):
            xs, ys = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
            value_and_grad = jax.jit(jax.value_and_grad(
                lambda t: -self.log_posterior(self._unpack(t, d), xs, ys)))

            def objective(theta):
                value, grad = value_and_grad(jnp.asarray(theta))
                return float(value), np.asarray(grad, np.float64)

            result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                       bounds=[LOG_BOUNDS] * (n + 1) + [NOISE_LOG_BOUNDS],
                                       options={"maxiter": self.max_iterations})
            hyper = self._unpack(jnp.asarray(result.x), d)
            return Hyper(np.asarray(hyper.lengthscale), float(hyper.outputscale),
                         float(hyper.noise))

    def fit(self, x: np.ndarray, y: np.ndarray) -> Callable:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        hyper = self.hyperparameters(x, y)
        with jax.enable_x64(True):
            gp = self.process(hyper, jnp.asarray(x))
            ys = jnp.asarray(y)

        def posterior_jax(z):
            conditioned = gp.condition(ys, jnp.atleast_2d(z)).gp
            return conditioned.loc, jnp.sqrt(jnp.maximum(conditioned.variance, 1e-12))

        jitted = jax.jit(posterior_jax)

        def posterior(z):
            with jax.enable_x64(True):
                mean, std = jitted(jnp.asarray(z, jnp.float64))
                return np.asarray(mean), np.asarray(std)

        posterior.jax = posterior_jax
        posterior.hyper = hyper
        return posterior


def minimiser(objective: Callable) -> Callable:
    """`minimise(starts, *args)`: the best of L-BFGS-B runs on the jnp scalar
    `objective(z, *args)` over [0, 1]^D from each start (BoTorch's optimize_acqf with q = 1,
    its starts taken from a raw candidate set). Compiled once for every call."""
    value_and_grad = jax.jit(jax.value_and_grad(objective))

    def minimise(starts: np.ndarray, *args, max_iterations: int = 200) -> np.ndarray:
        with jax.enable_x64(True):
            def wrapped(z):
                value, grad = value_and_grad(jnp.asarray(z), *args)
                return float(value), np.asarray(grad, np.float64)

            starts = np.asarray(starts, np.float64)
            best, best_value = starts[0], wrapped(starts[0])[0]  # kept if no run improves
            for start in starts:
                result = optimize.minimize(wrapped, start, jac=True, method="L-BFGS-B",
                                           bounds=[(0.0, 1.0)] * start.size,
                                           options={"maxiter": max_iterations})
                if np.isfinite(result.fun) and result.fun < best_value:
                    best, best_value = np.clip(result.x, 0.0, 1.0), result.fun
        return best

    return minimise
