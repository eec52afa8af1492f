"""Perturbations of the rewound weights (early_phase.md §2).

Applied to the prunable weights at unpruned positions only (mask = 1); biases, γ, β and BN
statistics stay as rewound, and pruned positions stay 0. Per tensor l, σ_l = √(2/fan_in) is the
Kaiming-normal init std, Z ~ N(0, σ_l²) fresh draws and π a seeded permutation of the unpruned
positions. Used as `init.transform = "experiments.early_phase.perturb:transform"`, which reads
`perturb.name`, `perturb.epsilon`, `perturb.noise_ref` and `perturb.seed`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

PERTURBATIONS = ("rewind", "reinit", "reinit_keep_sign", "shuffle_layer",
                 "shuffle_layer_keep_sign", "gaussian_noise")
NOISE_REFS = ("init_std", "rewound_std")


def init_std(shape: tuple[int, ...]) -> float:
    """Kaiming-normal std √(2/fan_in); Flax kernels hold fan_in in every axis but the last."""
    return math.sqrt(2.0 / math.prod(shape[:-1]))


def _sign(w: np.ndarray) -> np.ndarray:
    return np.where(w >= 0, 1.0, -1.0)  # sign(0) := +1


def perturb_tensor(w: np.ndarray, mask: np.ndarray, name: str, rng: np.random.Generator,
                   epsilon: float = 1.0, noise_ref: str = "init_std") -> np.ndarray:
    """One tensor's new values: `name` at the unpruned positions, 0 at the pruned ones."""
    w = np.asarray(w, np.float64)
    alive = np.asarray(mask) > 0
    values = w[alive]
    sigma = init_std(w.shape)
    if name == "rewind":
        new = values
    elif name == "reinit":
        new = rng.normal(0.0, sigma, values.shape)
    elif name == "reinit_keep_sign":
        new = np.abs(rng.normal(0.0, sigma, values.shape)) * _sign(values)
    elif name == "shuffle_layer":
        new = values[rng.permutation(values.size)]
    elif name == "shuffle_layer_keep_sign":
        new = np.abs(values)[rng.permutation(values.size)] * _sign(values)
    elif name == "gaussian_noise":
        if epsilon < 0:
            raise ValueError(f"perturb.epsilon={epsilon} must be >= 0")
        if noise_ref not in NOISE_REFS:
            raise ValueError(f"perturb.noise_ref={noise_ref!r}; valid choices: "
                             f"{', '.join(NOISE_REFS)}")
        scale = sigma if noise_ref == "init_std" else float(values.std())
        new = values + epsilon * scale * rng.standard_normal(values.shape)
    else:
        raise ValueError(f"unknown perturbation {name!r}; valid choices: "
                         f"{', '.join(PERTURBATIONS)}")
    out = np.zeros_like(w)
    out[alive] = new
    return out.astype(np.float32)


def perturb(params: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], name: str,
            seed: int, epsilon: float = 1.0, noise_ref: str = "init_std") -> dict:
    """Every masked (prunable) tensor perturbed; other parameters returned unchanged.

    Each tensor draws from its own generator, seeded by (seed, its sorted position), so a
    tensor's draw does not depend on which other tensors are masked.
    """
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; valid choices: "
                         f"{', '.join(PERTURBATIONS)}")
    out = dict(params)
    for i, k in enumerate(sorted(masks)):
        rng = np.random.default_rng([seed, i])
        out[k] = perturb_tensor(params[k], masks[k], name, rng, epsilon, noise_ref)
    return out


def transform(params: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], config) -> dict:
    """The trainer's `init.transform` hook: the perturbation `config.perturb` names."""
    p = config.perturb
    return perturb(params, masks, p.name, p.seed, p.epsilon, p.noise_ref)
