"""MorphNet as width_transfer.md §2 reconstructs it: shrink, prune, expand.

Shrink: train the network at w0 with loss CE + λ · Σ_d cost_d · Σ_{c∈d} g_c / FLOPs(w0), where
g_c reduces |γ_c| over the BatchNorm layers that scale channel c of the fused dim d
(`group_reduce`: sum or max) and cost_d is the FLOPs one more channel of d adds at w0 (the cost
counter's difference). Prune (`prune_rule`): `threshold` keeps the channels with g_c ≥ τ;
`budget` drops channels in ascending g_c over all dims until FLOPs ≤ ρ·B; each dim keeps at
least one. Expand: transfer.renormalise back to the budget B = FLOPs(w0). One iteration.

The BN layers of each dim: the family's `bn_groups` (experiments.width_transfer.nets).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from experiments.width_transfer import nets, transfer

GROUP_REDUCE = ("sum", "max")
PRUNE_RULES = ("budget", "threshold")


def _module(model, path: str):
    for name in path.split("/"):
        model = getattr(model, name)
    return model


def channel_scores(model, family: nets.Family, reduce: str = "sum", xp=jnp) -> dict:
    """{dim: g [channels]}: |γ| of the dim's BN layers, summed or maxed per channel."""
    if reduce not in GROUP_REDUCE:
        raise ValueError(f"group_reduce {reduce!r}; valid: {', '.join(GROUP_REDUCE)}")
    out = {}
    for dim, paths in family.bn_groups().items():
        scales = xp.stack([xp.abs(xp.asarray(_module(model, p).scale.value)) for p in paths])
        out[dim] = scales.sum(0) if reduce == "sum" else scales.max(0)
    return out


@functools.lru_cache(maxsize=32)
def marginal_costs(family: nets.Family) -> dict[str, int]:
    """{dim: FLOPs(w0 + one channel of dim) − FLOPs(w0)}."""
    base = family.base
    f0 = family.flops(base)
    return {d: family.flops({**base, d: base[d] + 1}) - f0 for d in family.dims}


def penalty(scores: dict, family: nets.Family):
    """Σ_d cost_d · Σ_c g_c / FLOPs(w0)."""
    cost = marginal_costs(family)
    return sum(cost[d] * scores[d].sum() for d in family.dims) / family.flops(family.base)


def prune(scores: dict, family: nets.Family, rule: str = "budget", threshold: float = 0.01,
          ratio: float = 0.5) -> dict[str, int]:
    """Channel counts after pruning the network at w0 by its channel scores {dim: g}."""
    scores = {d: np.asarray(g, np.float64) for d, g in scores.items()}
    if rule == "threshold":
        return {d: max(1, int((g >= threshold).sum())) for d, g in scores.items()}
    if rule != "budget":
        raise ValueError(f"prune_rule {rule!r}; valid: {', '.join(PRUNE_RULES)}")
    counts = {d: len(g) for d, g in scores.items()}
    goal = ratio * family.flops(family.base)
    ranked = sorted((float(v), d) for d, g in scores.items() for v in g)
    for _, d in ranked:
        if family.flops(counts) <= goal:
            break
        if counts[d] > 1:
            counts[d] -= 1
    return counts


def optimise(scores: dict, family: nets.Family, rule: str = "budget",
             threshold: float = 0.01, ratio: float = 0.5) -> dict[str, int]:
    """Prune, then expand back to FLOPs(w0): the widths one MorphNet iteration finds."""
    pruned = prune(scores, family, rule, threshold, ratio)
    return transfer.renormalise(pruned, family.flops, family.flops(family.base))
