"""Width transfer (width_transfer.md §2 "Projection P" and "FLOPs renormalisation"): proxy
multipliers projected onto the target's dims, then scaled back to the target's FLOPs budget.

Multipliers are relative to the network a width optimiser ran on: m_d = w_d / w0_d. The width,
resolution and data axes of a proxy keep the dims, so their projection is the identity on
multipliers. The depth axis changes the number of blocks per stage: stage-level dims
(`stage{s}/residual`, `stem`) map one to one, and the per-block dims of a stage with n_p proxy
and n_t target blocks are stacked by one of three rules (the paper's two are unknown; config
`stacking`):
- replicate (default): target block j takes proxy block floor(j·n_p/n_t): [a, b] → [a, a, b, b];
- tile: the proxy sequence repeated: [a, b] → [a, b, a, b];
- interpolate: linear interpolation of the multipliers over the normalised position
  (j + 0.5)/n_t of the proxy's (i + 0.5)/n_p, held at the ends.
Widths decode as max(1, floor(m_d · w0_d)).

Renormalisation is the expand step of MorphNet: one scale c on every width so that
FLOPs(max(1, floor(c·w))) is at most the budget B and within 1 % of it. c is bisected over
[1/8, 8] (the spec's [1, 8] for MorphNet's expand; projected widths can also lie above the
budget). Where that lands within 1 % it is the answer (pure uniform scaling). Floors move the
FLOPs in steps of a dim's marginal cost, which can exceed 1 % in small nets: then single
channels are added, most-lagging dim first, and where none fits, one channel moves between
dims, until the FLOPs are within 1 %.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

import numpy as np

STACKING = ("replicate", "tile", "interpolate")
SCALE_RANGE = (1 / 8, 8.0)
TOLERANCE = 0.01
BISECTIONS = 60
_BLOCK = re.compile(r"^stage(\d+)/block(\d+)$")


def stack(values, n_target: int, rule: str = "replicate") -> list[float]:
    """The n_target per-block values of a stage from its proxy's (the stacking rule)."""
    values = [float(v) for v in values]
    n_proxy = len(values)
    if rule not in STACKING:
        raise ValueError(f"unknown stacking rule {rule!r}; valid: {', '.join(STACKING)}")
    if n_proxy < 1 or n_target < 1:
        raise ValueError(f"stacking needs at least one block on each side; got {n_proxy} "
                         f"proxy and {n_target} target blocks")
    if n_proxy > n_target:
        raise ValueError(f"the proxy has {n_proxy} blocks in a stage where the target has "
                         f"{n_target}: a proxy may be shallower than its target, not deeper")
    if rule == "replicate":
        return [values[j * n_proxy // n_target] for j in range(n_target)]
    if rule == "tile":
        return [values[j % n_proxy] for j in range(n_target)]
    proxy_at = (np.arange(n_proxy) + 0.5) / n_proxy
    target_at = (np.arange(n_target) + 0.5) / n_target
    return [float(v) for v in np.interp(target_at, proxy_at, values)]


def blocks_per_stage(dims) -> dict[int, int]:
    """{stage: number of `stage{s}/block{j}` dims} of a dim list."""
    counts: dict[int, int] = {}
    for name in dims:
        if m := _BLOCK.match(name):
            counts[int(m.group(1))] = max(counts.get(int(m.group(1)), 0), int(m.group(2)) + 1)
    return counts


def project(proxy: Mapping[str, float], target_dims, rule: str = "replicate"
            ) -> dict[str, float]:
    """Target multipliers {dim: m} from the proxy's: stage-level dims one to one, each
    stage's block dims stacked by `rule`."""
    target_dims = list(target_dims)
    proxy_blocks, target_blocks = blocks_per_stage(proxy), blocks_per_stage(target_dims)
    out = {}
    for name in target_dims:
        if m := _BLOCK.match(name):
            s, j = int(m.group(1)), int(m.group(2))
            if s not in proxy_blocks:
                raise ValueError(f"the proxy has no blocks in stage {s}; the target has "
                                 f"{target_blocks[s]}")
            values = [proxy[f"stage{s}/block{i}"] for i in range(proxy_blocks[s])]
            out[name] = stack(values, target_blocks[s], rule)[j]
        elif name in proxy:
            out[name] = float(proxy[name])
        else:
            raise ValueError(f"the target's dim {name!r} has no counterpart in the proxy "
                             f"(its dims: {', '.join(proxy)})")
    return out


def widths(multipliers: Mapping[str, float], base: Mapping[str, int]) -> dict[str, int]:
    """{dim: max(1, floor(m_d · w0_d))}."""
    return {d: max(1, math.floor(float(multipliers[d]) * base[d] + 1e-9)) for d in base}


def multipliers(counts: Mapping[str, int], base: Mapping[str, int]) -> dict[str, float]:
    """{dim: w_d / w0_d}: widths relative to the network they were optimised on."""
    return {d: counts[d] / base[d] for d in base}


def renormalise(counts: Mapping[str, int], flops: Callable[[dict], float], budget: float,
                tolerance: float = TOLERANCE) -> dict[str, int]:
    """Widths max(1, floor(c·w)) (then single channels added) with flops ≤ budget and
    flops ≥ (1 − tolerance)·budget; a ValueError where no scale can meet the budget."""
    counts = {d: int(v) for d, v in counts.items()}
    scaled = lambda c: {d: max(1, math.floor(c * w)) for d, w in counts.items()}  # noqa: E731
    low, high = SCALE_RANGE
    if flops(scaled(low)) > budget:
        raise ValueError(f"the budget of {budget:,.0f} FLOPs cannot be met: these widths "
                         f"scaled by {low:g} already cost {flops(scaled(low)):,.0f}")
    if flops(scaled(high)) < (1 - tolerance) * budget:
        raise ValueError(f"the budget of {budget:,.0f} FLOPs cannot be met: these widths "
                         f"scaled by {high:g} reach only {flops(scaled(high)):,.0f}")
    for _ in range(BISECTIONS):
        mid = (low + high) / 2
        if flops(scaled(mid)) <= budget:
            low = mid
        else:
            high = mid
    return _fill(scaled(low), {d: high * w for d, w in counts.items()}, flops, budget,
                 tolerance)


def _fill(out: dict, goal: dict, flops, budget: float, tolerance: float) -> dict:
    """The uniformly scaled widths as they are where they are within tolerance; else
    channels added one at a time, the dim furthest below its goal first, and where none
    fits, the best swap (one channel more in one dim, one fewer in another), until they are.
    Every move raises the FLOPs within the budget, so it ends."""
    floor = (1 - tolerance) * budget
    while flops(out) < floor:
        current = flops(out)
        moves = [{**out, d: out[d] + 1} for d in sorted(out, key=lambda d: out[d] / goal[d])]
        fits = [m for m in moves if current < flops(m) <= budget]
        if not fits:
            fits = [m for m in ({**out, a: out[a] + 1, b: out[b] - 1} for a in out for b in out
                                if a != b and out[b] > 1) if current < flops(m) <= budget]
            fits = sorted(fits, key=flops, reverse=True)
        if not fits:
            break
        out = fits[0]
    if flops(out) < (1 - tolerance) * budget:
        raise ValueError(f"the budget of {budget:,.0f} FLOPs cannot be met within "
                         f"{tolerance:.0%}: the closest widths cost {flops(out):,.0f}")
    return out
