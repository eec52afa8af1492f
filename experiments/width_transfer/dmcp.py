"""DMCP (differentiable Markov channel pruning) as width_transfer.md §2 names it, reconstructed:
per-dim keep probabilities as a Markov chain over channel groups, trained jointly with the
network under an expected-FLOPs penalty.

A dim of w0 channels is cut into G = min(`dmcp_groups`, w0) contiguous groups (channel c is
in group floor(c·G/w0)). Group 1 is always kept; group k + 1 is kept, given group k is, with
probability σ(a_{d,k}), so its marginal is p_{d,k+1} = p_{d,k}·σ(a_{d,k}). In training, every
channel's output is scaled by its group's marginal (the masks of lib.models.slimmable), and
the loss adds λ·max(0, E[FLOPs]/B − ρ): E[FLOPs] is the FLOPs at the expected widths
E[w_d] = Σ_c p_{d,group(c)} (lib.slim.cost.expected_macs; exact, the dims being independent).
The penalty's form is our choice; the spec names only "an expected-FLOPs penalty". Widths:
round(E[w_d]) (at least 1), then the expand step back to B (transfer.renormalise).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.width_transfer import nets, transfer
from lib.slim import cost


def groups(family: nets.Family, count: int) -> np.ndarray:
    """[D, max w0] int: each channel's group (−1 past a dim's w0), in the family's dim
    order."""
    width = max(family.base.values())
    out = np.full((len(family.dims), width), -1, np.int32)
    for i, d in enumerate(family.dims):
        base = family.base[d]
        g = min(count, base)
        out[i, :base] = np.arange(base) * g // base
    return out


def marginals(logits: jax.Array) -> jax.Array:
    """[D, G] keep probabilities of the groups: 1, then cumulative products of σ(a)."""
    keep = jnp.cumprod(jax.nn.sigmoid(logits), axis=-1)
    return jnp.concatenate([jnp.ones(logits.shape[:-1] + (1,), keep.dtype), keep], axis=-1)


def channel_masks(logits: jax.Array, family: nets.Family, count: int) -> dict:
    """{dim: [w0_d] marginal keep probability of each channel}."""
    p = marginals(logits)
    table = groups(family, count)
    return {d: p[i, table[i, :family.base[d]]] for i, d in enumerate(family.dims)}


def expected_widths(logits: jax.Array, family: nets.Family, count: int) -> dict:
    """{dim: E[w_d]}."""
    return {d: m.sum() for d, m in channel_masks(logits, family, count).items()}


def expected_flops(logits: jax.Array, family: nets.Family, count: int) -> jax.Array:
    return cost.expected_macs(family.arch, {**family.arch.space.fixed,
                                            **expected_widths(logits, family, count)})


def penalty(logits: jax.Array, family: nets.Family, count: int, ratio: float) -> jax.Array:
    """max(0, E[FLOPs]/B − ρ)."""
    budget = family.flops(family.base)
    return jax.nn.relu(expected_flops(logits, family, count) / budget - ratio)


def initial_logits(family: nets.Family, count: int, value: float) -> np.ndarray:
    """[D, G − 1] transition logits, all `value` (those past a dim's groups are unused)."""
    return np.full((len(family.dims), count - 1), value, np.float32)


def optimise(logits, family: nets.Family, count: int) -> dict[str, int]:
    """round(E[w_d]) (at least 1), expanded back to B = FLOPs(w0): DMCP's widths."""
    expected = expected_widths(jnp.asarray(logits), family, count)
    counts = {d: max(1, int(round(float(v)))) for d, v in expected.items()}
    return transfer.renormalise(counts, family.flops, family.flops(family.base))
