"""Input–unit gradient variability (class_selectivity.md §2, from the "Linking" version): how
much the input gradient ∂a_u/∂x of a unit's activation varies across samples and units.

The measure is reconstructed: the coefficient of variation (std / mean) of the per-sample,
per-unit gradient norms ‖∂a_u(x)/∂x‖₂ over the split and the chosen units of a layer. The
paper's claim is that it is higher in high-selectivity networks. Examples are independent in
eval mode, so one backward pass of Σ_i a_u(x_i) gives every example's gradient for unit u;
units go one after another (lax.map) to keep memory at one batch of input gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def chosen_units(width: int, count: int) -> np.ndarray:
    """`count` units spread evenly over a layer of `width` (all of them if count ≥ width)."""
    if count >= width:
        return np.arange(width)
    return np.unique(np.linspace(0, width - 1, count).round().astype(int))


def unit_gradient_norms(activations: Callable, x: jax.Array, units) -> jax.Array:
    """[len(units), B]: ‖∂a_u(x_i)/∂x_i‖₂, `activations(x) -> [B, U]` per-example in x."""
    acts, pullback = jax.vjp(activations, x)

    def norms(unit):
        cotangent = jnp.zeros_like(acts).at[:, unit].set(1.0)
        (grad,) = pullback(cotangent)
        return jnp.sqrt(jnp.sum(grad.reshape(len(x), -1) ** 2, axis=1))

    return jax.lax.map(norms, jnp.asarray(units))


def moments(norms: jax.Array, mask: jax.Array):
    """(count, Σ n, Σ n²) over units and real examples: summable over batches."""
    weights = jnp.broadcast_to(mask, norms.shape)
    return jnp.sum(weights), jnp.sum(norms * weights), jnp.sum(norms**2 * weights)


def variability(count, total, squares) -> tuple[float, float]:
    """(mean norm, coefficient of variation = population std / mean; 0 when the mean is 0)."""
    count = float(count)
    mean = float(total) / count
    std = float(np.sqrt(max(float(squares) / count - mean**2, 0.0)))
    return mean, std / mean if mean > 0 else 0.0
