"""Class selectivity of units (class_selectivity.md §2), as a pure, differentiable function.

For a unit u with activations a_u(x) (a dense unit, or a conv channel averaged over space after
its ReLU): μ_c = mean of a_u over the examples of class c; μ_max = max_c μ_c; μ_−max = mean of the
other classes' means. SI_u = (μ_max − μ_−max) / (μ_max + μ_−max + ε) ∈ [0, 1] for non-negative
activations: 0 for equal class means and for a dead unit, → 1 for a unit that answers one class.

Over a mini-batch (the regularizer) only the classes present count: with K of them, μ_−max =
(Σ_present μ_c − μ_max) / (K − 1). A batch with fewer than two classes present has no
selectivity to measure: SI is defined as 0 there (so the regularizer adds nothing), never NaN.
The gradient reaches μ_max through the argmax (a subgradient).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

DEFAULT_EPS = 1e-7


def unit_activations(feature: jax.Array) -> jax.Array:
    """[B, U] per-unit activations: [B, H, W, C] maps are averaged over space; [B, U] as is."""
    if feature.ndim == 4:
        return jnp.mean(feature, axis=(1, 2))
    if feature.ndim != 2:
        raise ValueError(f"selectivity needs [B, U] or [B, H, W, C] activations, got shape "
                         f"{feature.shape}")
    return feature


def class_sums(acts: jax.Array, labels: jax.Array, num_classes: int
               ) -> tuple[jax.Array, jax.Array]:
    """(Σ_{x in c} a(x) per class and unit [C, U], examples per class [C]): YᵀA and Yᵀ1."""
    onehot = jax.nn.one_hot(labels, num_classes, dtype=acts.dtype)
    return onehot.T @ acts, onehot.sum(0)


def from_class_sums(sums: jax.Array, counts: jax.Array, eps: float = DEFAULT_EPS) -> jax.Array:
    """SI per unit [U] from per-class sums and counts; absent classes (count 0) are ignored."""
    present = counts > 0
    means = sums / jnp.maximum(counts, 1)[:, None]
    k = present.sum()
    mu_max = jnp.max(jnp.where(present[:, None], means, -jnp.inf), axis=0)
    rest = (jnp.sum(jnp.where(present[:, None], means, 0.0), axis=0) - mu_max) / jnp.maximum(
        k - 1, 1)
    denominator = mu_max + rest + eps
    safe = jnp.where(denominator > 0, denominator, 1.0)  # dead units: 0, with finite gradients
    si = jnp.where(denominator > 0, (mu_max - rest) / safe, 0.0)
    return jnp.where(k >= 2, si, 0.0)


def selectivity(acts: jax.Array, labels: jax.Array, num_classes: int,
                eps: float = DEFAULT_EPS) -> jax.Array:
    """SI per unit [U] over the classes present in (acts [B, U], labels [B])."""
    return from_class_sums(*class_sums(unit_activations(acts), labels, num_classes), eps)


def mean_selectivity(features: Mapping[str, jax.Array], labels: jax.Array, num_classes: int,
                     eps: float = DEFAULT_EPS) -> jax.Array:
    """μ̄_SI: the mean over units of each layer, then over layers (the regularizer's term)."""
    if not features:
        raise ValueError("mean_selectivity needs at least one layer")
    return jnp.mean(jnp.stack([jnp.mean(selectivity(a, labels, num_classes, eps))
                               for a in features.values()]))


def select_layers(features: Mapping[str, jax.Array], names) -> dict[str, jax.Array]:
    """The named layers of a model's features dict, with a clear error for unknown names."""
    missing = [n for n in names if n not in features]
    if missing:
        raise ValueError(f"selectivity layers {missing} match no layer; the model's layers: "
                         f"{', '.join(features)}")
    return {n: features[n] for n in names}
