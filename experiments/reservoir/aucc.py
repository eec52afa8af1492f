"""Area under the convergence curve (spec §2; the formula is reconstructed).

AUCC = ∫_0^T̂ g(t) dt over a validation curve g observed at checkpoints (t_k, g_k): the curve
starts at (0, 0) for metrics where 0 is the untrained value (BLEU, accuracy), is integrated
by trapezoids, is clipped at T̂ (the segment crossing T̂ interpolated), and carries its last
value forward to T̂ when training stopped earlier. t is the training clock (compilation,
evaluation and checkpointing excluded) or, hardware-independent, the step.
Lower-is-better metrics (BPC, perplexity) are integrated as they are and reported with that
direction stated: a smaller area is better.
"""

from __future__ import annotations

import numpy as np


def aucc(times, values, horizon: float, *, start_at_zero: bool = True) -> float:
    """∫_0^horizon of the piecewise-linear curve through (times, values)."""
    t = np.asarray(times, np.float64)
    g = np.asarray(values, np.float64)
    if t.shape != g.shape or t.ndim != 1 or not len(t):
        raise ValueError(f"need equal, non-empty 1-D times and values, got {t.shape} and "
                         f"{g.shape}")
    if horizon <= 0 or np.any(np.diff(t) < 0) or t[0] < 0:
        raise ValueError("times must be non-negative and non-decreasing, and the horizon > 0")
    if start_at_zero and t[0] > 0:
        t, g = np.concatenate([[0.0], t]), np.concatenate([[0.0], g])
    if t[-1] < horizon:  # stopped early: the last value holds to the horizon
        t, g = np.append(t, horizon), np.append(g, g[-1])
    inside = t <= horizon
    if not inside.all():  # clip: interpolate the value at the horizon
        g_at = np.interp(horizon, t, g)
        t, g = np.append(t[inside], horizon), np.append(g[inside], g_at)
    return float(np.sum((t[1:] - t[:-1]) * (g[1:] + g[:-1]) / 2))


def time_to(times, values, target: float) -> float | None:
    """The first time the curve reaches `target` (at a checkpoint), or None."""
    for t, g in zip(times, values):
        if g >= target:
            return float(t)
    return None
