"""Correlation statistics across runs: Pearson r, Spearman ρ, Kendall τ (tau-b), Fisher-z
intervals.

Used where a paper's claim is a trend over many runs (pruning_stability.md §2: stability versus
best test accuracy). Written out in numpy so each formula is visible and tested by hand.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError(f"correlation needs two 1-D sequences of equal length ≥ 3 (got "
                         f"shapes {x.shape} and {y.shape})")
    return x, y


def pearson(x, y) -> float:
    """Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² Σ(y−ȳ)²); nan when either side is constant."""
    x, y = _pair(x, y)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((dx**2).sum() * (dy**2).sum()))
    return float((dx * dy).sum() / denominator) if denominator > 0 else math.nan


def ranks(values) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    v = np.asarray(values, np.float64)
    order = np.argsort(v, kind="stable")
    out = np.empty(v.size)
    out[order] = np.arange(1, v.size + 1)
    for value in np.unique(v):  # average the ranks of tied values
        tied = v == value
        out[tied] = out[tied].mean()
    return out


def spearman(x, y) -> float:
    """Spearman's ρ: the Pearson correlation of the (average) ranks."""
    x, y = _pair(x, y)
    return pearson(ranks(x), ranks(y))


def kendall_tau(x, y) -> float:
    """Kendall's tau-b: (concordant − discordant) / √((n₀ − ties_x)(n₀ − ties_y)) over pairs."""
    x, y = _pair(x, y)
    i, j = np.triu_indices(x.size, k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = i.size
    denominator = math.sqrt(float((n0 - (sx == 0).sum()) * (n0 - (sy == 0).sum())))
    return float((sx * sy).sum() / denominator) if denominator > 0 else math.nan


def fisher_interval(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a correlation by Fisher's z:
    tanh(atanh(r) ± z_{(1+level)/2}/√(n−3))."""
    if n <= 3:
        raise ValueError(f"a Fisher-z interval needs more than 3 runs (got {n})")
    if math.isnan(r):
        return math.nan, math.nan
    z = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12))
    half = float(scipy_stats.norm.ppf(0.5 + level / 2)) / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def correlations(x, y, level: float = 0.95) -> dict[str, float]:
    """Pearson r and Kendall τ with Fisher-z intervals, and the number of runs."""
    n = len(x)
    out = {"n": n, "pearson": pearson(x, y), "kendall": kendall_tau(x, y)}
    for name in ("pearson", "kendall"):
        low, high = fisher_interval(out[name], n, level) if n > 3 else (math.nan, math.nan)
        out[f"{name}_low"], out[f"{name}_high"] = low, high
    return out
