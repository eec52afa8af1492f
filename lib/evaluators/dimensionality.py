"""Dimensionality of a representation: principal components for a share of the variance
(class_selectivity.md §2: PCA-95 of block activations and of perturbation-induced changes).

Over a whole eval split the N×U matrix need not be kept: `moments` of each batch sum to the
count, the row sum and the Gram matrix, from which `pca_dimension_of_moments` gets the
covariance spectrum.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _check(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValueError(f"variance threshold {threshold} must lie in (0, 1]")


def _components(variances: np.ndarray, threshold: float) -> int:
    variances = np.sort(np.maximum(variances, 0.0))[::-1]
    total = variances.sum()
    if total <= 0:
        return 0
    explained = np.cumsum(variances) / total
    return int(np.searchsorted(explained, threshold - 1e-12) + 1)


def pca_dimension(matrix, threshold: float = 0.95) -> int:
    """Smallest number of principal components of the centred N×U matrix whose variance
    reaches `threshold` of the total; 0 for a matrix without variance."""
    _check(threshold)
    x = np.asarray(matrix, np.float64)
    if x.ndim != 2:
        raise ValueError(f"pca_dimension needs an N×U matrix, got shape {x.shape}")
    x = x - x.mean(0)
    return _components(np.linalg.svd(x, compute_uv=False) ** 2, threshold)


def moments(matrix, weights):
    """(Σ w, Σ w·row, Σ w·row rowᵀ) of an N×U matrix with row weights (the eval mask, so
    padding rows count 0); jittable, and summable over batches."""
    weighted = matrix * weights[:, None]
    return jnp.sum(weights), jnp.sum(weighted, 0), weighted.T @ matrix


def pca_dimension_of_moments(count, total, outer, threshold: float = 0.95) -> int:
    """pca_dimension of the rows whose summed `moments` these are."""
    _check(threshold)
    count = float(count)
    if count <= 0:
        return 0
    mean = np.asarray(total, np.float64) / count
    covariance = np.asarray(outer, np.float64) / count - np.outer(mean, mean)
    return _components(np.linalg.eigvalsh((covariance + covariance.T) / 2), threshold)
