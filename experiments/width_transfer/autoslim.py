"""AutoSlim as width_transfer.md §2 reconstructs it: a slimmable supernet, greedy cuts, expand.

Supernet: the network at w0 trained by the sandwich rule with in-place distillation
(lib.slim.sandwich, as Joslim's Slim baseline): every step the full width, `samples`
sub-networks and the smallest. A sub-network's channel counts are max(1, floor(α_d · w0_d))
with α = f·1, f ~ U(low, 1) (`uniform`, Slim's rule and the default) or α_d ~ U(low, 1) per
dim (`layerwise`, a one-shot supernet's), drawn on device from the step's key; the smallest
is α = low·1.

Greedy cuts: from w0, one step at a time, every dim is tried with a tenth of its w0 channels
(at least one) removed, and the cut that keeps the highest validation top-1 is taken (ties:
the larger FLOPs saving, then the dims' order), until FLOPs ≤ ρ·B, never below the widths the
supernet trained (floor(low·w0_d)). Then expand: transfer.renormalise back to B = FLOPs(w0).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments.width_transfer import nets, transfer

SAMPLING = ("uniform", "layerwise")
CUT = 0.1  # a greedy step removes this share of a dim's w0 channels
EXPECTATION_DRAWS = 256  # layerwise: Monte Carlo draws of a sub-network's expected MACs


def bases(family: nets.Family) -> np.ndarray:
    """w0 in the family's dim order."""
    return np.array([family.base[d] for d in family.dims], np.int32)


def smallest(family: nets.Family, low: float) -> np.ndarray:
    """The channel counts of the smallest sub-network, α = low·1."""
    return np.maximum(1, np.floor(low * bases(family) + 1e-6)).astype(np.int32)


def sample_rows(rng: jax.Array, family: nets.Family, samples: int, low: float,
                sampling: str = "uniform") -> jax.Array:
    """[samples + 1, dims] int32: `samples` random sub-networks, then the smallest."""
    if sampling not in SAMPLING:
        raise ValueError(f"supernet sampling {sampling!r}; valid: {', '.join(SAMPLING)}")
    base = jnp.asarray(bases(family), jnp.float32)
    shape = (samples, 1) if sampling == "uniform" else (samples, len(base))
    alpha = jax.random.uniform(rng, shape, minval=low, maxval=1.0)
    rows = jnp.maximum(1, jnp.floor(alpha * base)).astype(jnp.int32)
    return jnp.concatenate([rows, jnp.asarray(smallest(family, low))[None]], axis=0)


def training_macs(family: nets.Family, samples: int, low: float, sampling: str = "uniform"
                  ) -> float:
    """Expected conv MACs of one image's forward passes in a supernet step: the full width,
    `samples` random sub-networks (uniform: the mean over 101 evenly spaced f in [low, 1];
    layerwise: over EXPECTATION_DRAWS seeded draws) and the smallest."""
    base = bases(family)

    def macs(alpha) -> float:
        counts = np.maximum(1, np.floor(np.asarray(alpha) * base + 1e-6)).astype(int)
        return family.flops(dict(zip(family.dims, counts.tolist())))

    if sampling == "uniform":
        draws = [np.full(len(base), f) for f in np.linspace(low, 1.0, 101)]
    else:
        draws = np.random.default_rng(0).uniform(low, 1.0, (EXPECTATION_DRAWS, len(base)))
    sampled = float(np.mean([macs(a) for a in draws]))
    return family.flops(family.base) + samples * sampled + macs(np.full(len(base), low))


def reachable(family: nets.Family, low: float, goal: float) -> dict[str, int]:
    """The supernet's smallest widths, or a ValueError where even they cost more than goal."""
    floor = dict(zip(family.dims, smallest(family, low).tolist()))
    if family.flops(floor) > goal:
        raise ValueError(f"AutoSlim cannot cut to {goal:,.0f} FLOPs: the supernet's smallest "
                         f"widths (α = {low}) cost {family.flops(floor):,.0f}; lower "
                         "width_transfer.supernet_low or raise width_transfer.ratio")
    return floor


def greedy(family: nets.Family, score: Callable[[dict], float], goal: float,
           low: float) -> tuple[dict[str, int], list[dict]]:
    """(channel counts with FLOPs ≤ goal, the trace: one entry per cut) by greedy cuts from
    w0; `score(counts)` is a sub-network's validation top-1. A ValueError where the goal is
    below what the supernet's smallest widths reach."""
    floor = reachable(family, low, goal)
    counts = dict(family.base)
    trace = []
    while family.flops(counts) > goal:
        tried = []
        for i, d in enumerate(family.dims):
            cut = max(1, math.floor(CUT * family.base[d] + 1e-9))
            if counts[d] - cut < floor[d]:
                cut = counts[d] - floor[d]
            if cut <= 0:
                continue
            candidate = {**counts, d: counts[d] - cut}
            tried.append((score(candidate), -family.flops(candidate), -i, d, candidate))
        best = max(tried)
        counts = best[4]
        trace.append({"dim": best[3], "top1": best[0], "flops": -best[1],
                      "candidates": len(tried)})
    return counts, trace


def optimise(family: nets.Family, score: Callable[[dict], float], low: float,
             ratio: float = 0.5) -> tuple[dict[str, int], list[dict]]:
    """Greedy cuts to ratio·B, then expand back to B = FLOPs(w0): AutoSlim's widths."""
    budget = family.flops(family.base)
    cut, trace = greedy(family, score, ratio * budget, low)
    return transfer.renormalise(cut, family.flops, budget), trace
