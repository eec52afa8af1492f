"""The invariance score of invariance.md §2.2, exact.

For N images with embeddings z_i = f(x_i), their transformed embeddings z_i^t = f(t_k(x_i)) and
one seeded random permutation π of the N indices:

    d_i = dist(z_i, z_i^t)     b_i = dist(z_i, z_π(i)^t)     inv_i = (b_i − d_i) / (b_i + 1e-8)

1 = invariant, 0 = as far as a random other image's transform, < 0 = farther. dist is the
cosine distance 1 − cos (primary) or the L2 distance. A (model, t, k) is summarised by the
median of inv and its percentiles 0–99 (exact, numpy's linear interpolation); the invariance
gap of a trained model is mean over k = 3..7 of median(trained) − median(untrained).
"""

from __future__ import annotations

import numpy as np

DISTANCES = ("cosine", "l2")
EPS = 1e-8
GAP_MAGNITUDES = tuple(range(3, 8))


def permutation(n: int, seed: int) -> np.ndarray:
    """The seeded random permutation π of 0..n−1, the same for every model and transform, drawn
    without fixed points (uniform over derangements, by redrawing). A fixed point would compare
    z_i with its own transform: b_i = d_i, so inv_i = 0 even at k = 0, where the spec's check
    (§6, hard assertion 1) requires 1 for every sample."""
    if n < 2:
        raise ValueError(f"the permutation baseline needs at least 2 images, got {n}")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def distance(a: np.ndarray, b: np.ndarray, kind: str = "cosine") -> np.ndarray:
    """[N] row-wise distance between [N, D] embeddings (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if kind == "cosine":
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return 1.0 - np.sum(a * b, axis=1) / np.maximum(norms, 1e-30)
    if kind == "l2":
        return np.linalg.norm(a - b, axis=1)
    raise ValueError(f"distance {kind!r}; valid choices: {', '.join(DISTANCES)}")


def scores(z: np.ndarray, z_t: np.ndarray, perm: np.ndarray, kind: str = "cosine"
           ) -> np.ndarray:
    """[N] per-sample invariance inv_i = (b_i − d_i) / (b_i + 1e-8)."""
    z, z_t = np.asarray(z), np.asarray(z_t)
    if z.shape != z_t.shape or z.ndim != 2:
        raise ValueError(f"embeddings must be two [N, D] arrays of one shape; got {z.shape} "
                         f"and {z_t.shape}")
    perm = np.asarray(perm)
    if sorted(perm.tolist()) != list(range(len(z))):
        raise ValueError(f"perm must be a permutation of 0..{len(z) - 1}")
    return from_distances(distance(z, z_t, kind), distance(z, z_t[perm], kind))


def from_distances(d: np.ndarray, b: np.ndarray) -> np.ndarray:
    """inv_i = (b_i − d_i) / (b_i + 1e-8) from the distances to the own and the baseline
    partner's transformed embedding."""
    d, b = np.asarray(d, np.float64), np.asarray(b, np.float64)
    return (b - d) / (b + EPS)


def summary(inv: np.ndarray) -> dict:
    """The median and the 0–99 percentiles of one per-sample distribution."""
    inv = np.asarray(inv, np.float64)
    return {"median": float(np.median(inv)),
            "percentiles": np.percentile(inv, np.arange(100)).tolist()}


def invariance_gap(trained: dict, untrained: dict, magnitudes=GAP_MAGNITUDES) -> float:
    """mean over k of median(trained at k) − median(untrained at k); {k: median} each."""
    missing = [k for k in magnitudes if k not in trained or k not in untrained]
    if missing:
        raise ValueError(f"the invariance gap needs the medians at magnitudes "
                         f"{list(magnitudes)}; missing {missing}")
    return float(np.mean([trained[k] - untrained[k] for k in magnitudes]))
