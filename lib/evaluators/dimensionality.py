"""Dimensionality of a representation: principal components for a share of the variance
(class_selectivity.md §2: PCA-95 of block activations and of perturbation-induced changes)."""

from __future__ import annotations

import numpy as np


def pca_dimension(matrix, threshold: float = 0.95) -> int:
    """Smallest number of principal components of the centred N×U matrix whose variance
    reaches `threshold` of the total; 0 for a matrix without variance."""
    if not 0 < threshold <= 1:
        raise ValueError(f"variance threshold {threshold} must lie in (0, 1]")
    x = np.asarray(matrix, np.float64)
    if x.ndim != 2:
        raise ValueError(f"pca_dimension needs an N×U matrix, got shape {x.shape}")
    x = x - x.mean(0)
    variance = np.linalg.svd(x, compute_uv=False) ** 2
    total = variance.sum()
    if total <= 0:
        return 0
    explained = np.cumsum(variance) / total
    return int(np.searchsorted(explained, threshold - 1e-12) + 1)
