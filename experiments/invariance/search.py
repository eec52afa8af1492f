"""Factors of variation by similarity search (invariance.md §2.4).

For pairs (i, j) of images of one class and each candidate transformation T:
Δ = s(i, T(j)) − s(i, j), with s the cosine similarity of their embeddings. A T that raises the
similarity of most pairs is a factor along which the class's images vary. Per (class, T):

- proportion_boosted = frac(Δ > 0);
- avg_percent_similarity_change = mean(Δ / s);
- mean / std of Δ, of the positive Δ and of the negative Δ (0 where there are none);
- weighted_boost = avg_percent_boost × proportion_boosted, with avg_percent_boost = mean(Δ / s)
  over the pairs with Δ > 0 (the spec's reading of the code's naming).

`rank` orders a class's candidates by (proportion_boosted, mean Δ), largest first; its head is
that class's top-k factors of variation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RANK_KEYS = ("proportion_boosted", "mean_delta")


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N] row-wise cosine similarity of [N, D] embeddings (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / np.maximum(
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    return (float(x.mean()), float(x.std())) if len(x) else (0.0, 0.0)


def statistics(base: np.ndarray, transformed: np.ndarray) -> dict:
    """The §2.4 statistics of one (class, T) from s(i, j) and s(i, T(j)) over its pairs."""
    base, transformed = np.asarray(base, np.float64), np.asarray(transformed, np.float64)
    delta = transformed - base
    up, down = delta > 0, delta < 0
    percent = delta / base
    out = {"proportion_boosted": float(up.mean()),
           "avg_percent_similarity_change": float(percent.mean()),
           "avg_percent_boost": float(percent[up].mean()) if up.any() else 0.0}
    for name, part in (("delta", delta), ("positive_delta", delta[up]),
                       ("negative_delta", delta[down])):
        out[f"mean_{name}"], out[f"std_{name}"] = _mean_std(part)
    out["weighted_boost"] = out["avg_percent_boost"] * out["proportion_boosted"]
    return out


def search(embed: Callable[[np.ndarray], np.ndarray], left: np.ndarray, right: np.ndarray,
           labels: np.ndarray, candidates: dict[str, Callable[[np.ndarray], np.ndarray]]
           ) -> dict[int, dict[str, dict]]:
    """{class: {candidate: statistics}} over the pairs (left[n], right[n]) of class labels[n];
    each candidate transforms the right image of every pair."""
    z_left, z_right = embed(left), embed(right)
    base = cosine_similarity(z_left, z_right)
    out: dict[int, dict[str, dict]] = {int(c): {} for c in np.unique(labels)}
    for name, transform in candidates.items():
        moved = cosine_similarity(z_left, embed(transform(right)))
        for c in out:
            rows = labels == c
            out[c][name] = statistics(base[rows], moved[rows])
    return out


def rank(per_candidate: dict[str, dict], keys=RANK_KEYS) -> list[str]:
    """A class's candidates by the statistics `keys`, largest first (ties: name order)."""
    return sorted(sorted(per_candidate),
                  key=lambda n: tuple(-per_candidate[n][k] for k in keys))
