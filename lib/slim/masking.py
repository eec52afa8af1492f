"""Width configurations as channel masks (one compiled step for every width) and as sliced
weights (a narrow network of its own), for the slimmable models of lib.models.slimmable."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx


def masks(channels: dict[str, int], bases: dict[str, int]) -> dict[str, np.ndarray]:
    """{dim: [base_d] float32 with ones on the first channels[d]} for every dim of `bases`."""
    missing = sorted(set(bases) - set(channels))
    if missing:
        raise ValueError(f"the width configuration lacks dims {missing}")
    out = {}
    for dim, base in bases.items():
        if not 1 <= channels[dim] <= base:
            raise ValueError(f"{dim}: {channels[dim]} active channels of {base}; it must be "
                             f"in 1..{base}")
        out[dim] = (np.arange(base) < channels[dim]).astype(np.float32)
    return out


def leading(full, narrow):
    """The leading sub-array of every leaf of `full` with the shape of `narrow`'s leaf (the
    first channels of every weight: slimmable slicing)."""
    return jax.tree.map(lambda f, n: f[tuple(slice(0, k) for k in np.shape(n))], full, narrow)


def sliced(full_model: nnx.Module, narrow_model: nnx.Module) -> nnx.Module:
    """narrow_model (the same architecture built at the sub-network's channel counts) with
    the first channels of every variable of full_model: parameters and BN statistics."""
    nnx.update(narrow_model, leading(nnx.state(full_model), nnx.state(narrow_model)))
    return narrow_model
