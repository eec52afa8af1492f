"""Pruning: which tensors are prunable, masks, magnitude/random pruning, filter pruning.

Masks are {0,1} float32 arrays keyed like the flat parameter dict ("stage1/block0/conv1/kernel").
They keep pruned weights exactly zero through training when the weights are multiplied by
them once (`apply`) and the optimizer is wrapped by `lib.optim.element_masked`, which zeroes
their gradients before the optax chain and their updates after it, so momentum, Adam moments
and weight decay never revive them (lth_common.md §5).

Unstructured pruning follows lth_common.md §5; filter pruning, its scores, targets and
schedule follow pruning_stability.md §2. Every function here is pure numpy on host arrays:
pruning happens between training stages or at epoch boundaries, never inside a jitted step.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping

import numpy as np
from etils import epath
from scipy import stats

from lib import files

PRUNABLE_ROLES = ("conv_kernel", "linear_kernel", "head_kernel")
SCOPES = ("global", "layerwise")
FILTER_SCORES = ("L2", "L1", "EBN", "EBN_alt")
TARGETS = ("S", "L", "R")


def _choice(kind: str, value: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(choices)}")
    return value


def check_fraction(fraction: float, what: str = "pruning fraction") -> float:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{what}={fraction} must lie in [0, 1): the share of the remaining "
                         "weights removed (0.2 removes a fifth)")
    return fraction


def prunable_names(roles: Mapping[str, str], include: str = "", exclude: str = "") -> list[str]:
    """Conv and linear kernels (never biases or BatchNorm) whose path matches `include` and not
    `exclude` (regexes; '' = no filter), sorted.

    An `include` or `exclude` that matches no kernel is an error: a typo would otherwise prune
    everything or nothing without a word.
    """
    kernels = sorted(k for k, r in roles.items() if r in PRUNABLE_ROLES)
    names = kernels
    for pattern, keep in ((include, True), (exclude, False)):
        if not pattern:
            continue
        matched = [k for k in kernels if re.search(pattern, k)]
        if not matched:
            raise ValueError(f"layer pattern {pattern!r} matches no prunable kernel; prunable "
                             f"kernels: {', '.join(kernels)}")
        names = [k for k in names if (k in matched) == keep]
    return names


def dense(shapes: Mapping[str, tuple[int, ...]], names) -> dict[str, np.ndarray]:
    return {k: np.ones(shapes[k], np.float32) for k in names}


def apply(params: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> dict:
    """Parameters with every masked entry set to exactly 0."""
    return {k: (v * masks[k].astype(v.dtype) if k in masks else v) for k, v in params.items()}


def save(path, masks: Mapping[str, np.ndarray]) -> None:
    """Masks as an .npz (written atomically; local or gs://)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v, np.uint8) for k, v in masks.items()})
    files.write_bytes_atomic(path, buffer.getvalue())


def load(path, shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Masks saved by `save`, checked against the model's parameter shapes when given."""
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"mask file {str(path)!r} does not exist")
    with np.load(io.BytesIO(path.read_bytes())) as stored:
        masks = {k: stored[k].astype(np.float32) for k in stored.files}
    for k, m in masks.items() if shapes is not None else ():
        if k not in shapes:
            raise ValueError(f"mask file {str(path)!r} masks {k!r}, which the model does not "
                             f"have; its parameters: {', '.join(sorted(shapes))}")
        if tuple(m.shape) != tuple(shapes[k]):
            raise ValueError(f"mask {k!r} in {str(path)!r} has shape {m.shape}, the parameter "
                             f"{tuple(shapes[k])}")
    return masks


def sparsity(masks: Mapping[str, np.ndarray]) -> float:
    """Fraction of the prunable weights that are pruned."""
    total = sum(m.size for m in masks.values())
    return 1.0 - sum(float(m.sum()) for m in masks.values()) / total


def _drop_smallest(values: np.ndarray, alive: np.ndarray, n: int, openlth_threshold: bool
                   ) -> np.ndarray:
    """Alive flags after removing the n smallest alive values (ties: lower flat index first).

    open_lth parity: the threshold is the sorted value at 0-based index n and only values above
    it survive, which removes n+1 weights when there are no ties.
    """
    keep = alive.copy()
    idx = np.flatnonzero(alive)
    if n <= 0 or idx.size == 0:
        return keep
    order = idx[np.argsort(values[idx], kind="stable")]
    if openlth_threshold:
        threshold = values[order[min(n, order.size - 1)]]
        keep[idx[values[idx] <= threshold]] = False
    else:
        keep[order[:n]] = False
    return keep


def magnitude_prune(params: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
                    fraction: float, scope: str = "global", openlth_threshold: bool = False
                    ) -> dict[str, np.ndarray]:
    """Removes ceil(fraction · remaining) of the unpruned weights with the smallest |w|.

    global: one ranking across all masked tensors jointly; layerwise: the same rule per tensor.
    """
    check_fraction(fraction)
    _choice("pruning scope", scope, SCOPES)
    names = sorted(masks)
    groups = [names] if scope == "global" else [[k] for k in names]
    out = {}
    for group in groups:
        values = np.concatenate([np.abs(np.asarray(params[k], np.float64)).ravel()
                                 for k in group])
        alive = np.concatenate([np.asarray(masks[k]).ravel() > 0 for k in group])
        n = math.ceil(fraction * alive.sum())
        keep = _drop_smallest(values, alive, n, openlth_threshold)
        for k, part in zip(group, np.split(keep, np.cumsum([masks[k].size for k in group])[:-1])):
            out[k] = part.reshape(masks[k].shape).astype(np.float32)
    return out


def random_like(masks: Mapping[str, np.ndarray], rng: np.random.Generator,
                scope: str = "layerwise") -> dict[str, np.ndarray]:
    """Random masks with the same number of kept weights per tensor (layerwise) or in total
    (global, positions shuffled across all tensors)."""
    _choice("random pruning scope", scope, SCOPES)
    names = sorted(masks)
    if scope == "layerwise":
        return {k: rng.permutation(masks[k].ravel()).reshape(masks[k].shape) for k in names}
    flat = rng.permutation(np.concatenate([masks[k].ravel() for k in names]))
    parts = np.split(flat, np.cumsum([masks[k].size for k in names])[:-1])
    return {k: p.reshape(masks[k].shape).astype(np.float32) for k, p in zip(names, parts)}


# --- filter (structured) pruning: pruning_stability.md §2 -----------------------------------


def filter_norms(kernel: np.ndarray, score: str = "L2") -> np.ndarray:
    """Norm of each output filter of a conv kernel (…, C_out): the last axis indexes filters."""
    _choice("filter score", score, ("L2", "L1"))
    flat = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    return np.sqrt((flat**2).sum(0)) if score == "L2" else np.abs(flat).sum(0)


def expected_bn_output(gamma: np.ndarray, beta: np.ndarray, use_abs: bool = True) -> np.ndarray:
    """E[ReLU(γ·z + β)] for z ~ N(0, 1), per BN channel: (1 − Φ(α))·β + φ(α)·|γ|, α = −β/|γ|.

    γ = 0 gives the limit max(β, 0). `use_abs=False` is the EBN_alt variant: γ in place of
    |γ| in both places, α = −β/γ and φ(α)·γ (the literal reading of the spec; it differs only
    for γ < 0).
    """
    gamma, beta = np.asarray(gamma, np.float64), np.asarray(beta, np.float64)
    scale = np.abs(gamma)
    factor = scale if use_abs else gamma
    safe = np.where(scale > 0, factor, 1.0)
    alpha = -beta / safe
    value = (1.0 - stats.norm.cdf(alpha)) * beta + stats.norm.pdf(alpha) * factor
    return np.where(scale > 0, value, np.maximum(beta, 0.0))


def select_filters(scores: np.ndarray, alive: np.ndarray, k: int, target: str,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of the k alive filters to prune: S lowest scores, L highest, R uniformly random.

    Ties: the lower index first (S) or the higher index first (L), by a stable sort.
    """
    _choice("pruning target", target, TARGETS)
    candidates = np.flatnonzero(alive)
    if k > candidates.size:
        raise ValueError(f"cannot prune {k} filters: only {candidates.size} are unpruned")
    if k <= 0:
        return np.zeros(0, np.int64)
    if target == "R":
        if rng is None:
            raise ValueError("target 'R' needs a random generator")
        return np.sort(rng.choice(candidates, size=k, replace=False))
    order = candidates[np.argsort(np.asarray(scores)[candidates], kind="stable")]
    chosen = order[:k] if target == "S" else order[::-1][:k]
    return np.sort(chosen)


def event_epochs(start: int, end: int, period: int) -> list[int]:
    """Epochs after which a layer is pruned: start, start+period, … up to end."""
    if period < 1 or end < start:
        raise ValueError(f"filter schedule needs period >= 1 and end >= start (got start={start},"
                         f" end={end}, period={period})")
    return list(range(start, end + 1, period))


def kept_filters(num_filters: int, fraction: float, num_events: int) -> list[int]:
    """Filters a layer keeps after each of its events: linear in the filter count from F to
    ceil((1 − f)·F) (pruning_stability.md §2)."""
    check_fraction(fraction, "final pruned fraction")
    final = math.ceil((1.0 - fraction) * num_filters)
    return [math.ceil(final + (num_filters - final) * (num_events - i) / num_events)
            for i in range(1, num_events + 1)]


def filter_schedule(num_filters: int, fraction: float, start: int, end: int, period: int
                    ) -> list[tuple[int, int]]:
    """(epoch, filters to prune at it) for one layer; events that remove nothing included."""
    epochs = event_epochs(start, end, period)
    kept = [num_filters, *kept_filters(num_filters, fraction, len(epochs))]
    return [(e, kept[i] - kept[i + 1]) for i, e in enumerate(epochs)]
