"""Pareto utilities for slimmable networks' trade-offs (joslim.md §4): the non-dominated set,
the peeling extraction of candidates from a training history, and the area under an
accuracy-vs-cost front."""

from __future__ import annotations

import numpy as np


def efficient(points) -> np.ndarray:
    """[N] bool: the points (rows, every column minimised) that no other point dominates
    (≤ in every column and < in one); of identical points only the first counts."""
    p = np.asarray(points, np.float64)
    if p.ndim != 2:
        raise ValueError(f"points must be [N, objectives]; got shape {p.shape}")
    keep = np.zeros(len(p), bool)
    for i, row in enumerate(p):
        dominated = np.all(p <= row, axis=1) & np.any(p < row, axis=1)
        earlier_copy = np.all(p[:i] == row, axis=1).any()
        keep[i] = not dominated.any() and not earlier_copy
    return keep


def peel(losses, costs, stop: float = 0.9) -> np.ndarray:
    """[N] bool: candidates from a history of (loss, cost ratio) points by peeling, as the
    paper's code selects the sub-networks to evaluate: take the non-dominated set among the
    points whose cost is at least the largest cost taken so far, move those points to (1, 1)
    so the next round finds the layer beneath them, and repeat until that largest cost
    reaches `stop` or no new point is found. A point taken once is not taken again: at
    (1, 1) it can stay non-dominated, and the code's loop then never ends."""
    losses, costs = np.asarray(losses, np.float64), np.asarray(costs, np.float64)
    work = np.stack([losses, costs], axis=1)
    taken = np.zeros(len(work), bool)
    largest = 0.0
    while largest < stop:
        mask = efficient(work) & (costs >= largest) & ~taken
        if not mask.any():
            break
        largest = float(costs[mask].max())
        taken |= mask
        work[mask] = 1.0
    return taken


def front(costs, accuracies) -> tuple[np.ndarray, np.ndarray]:
    """The (cost, accuracy) points no other point beats (lower cost and higher accuracy),
    sorted by cost."""
    costs, accuracies = np.asarray(costs, np.float64), np.asarray(accuracies, np.float64)
    keep = efficient(np.stack([costs, -accuracies], axis=1))
    order = np.argsort(costs[keep], kind="stable")
    return costs[keep][order], accuracies[keep][order]


def area(costs, accuracies, low: float, high: float) -> float:
    """∫ best accuracy available at a cost budget c, over c in [low, high] (a step function:
    the best accuracy among the points of cost ≤ c, 0 below the cheapest). Two methods
    compare on the same [low, high]."""
    if not low < high:
        raise ValueError(f"area needs low < high; got [{low}, {high}]")
    c, a = front(costs, accuracies)
    edges = np.concatenate([[low], np.clip(c, low, high), [high]])
    values = np.concatenate([[0.0], a])  # the value on [edges[i], edges[i + 1])
    return float(np.sum(np.diff(edges) * values))
