"""All-pairs values of a learned function in fixed-size blocks (plan2vec's local metric φ over a
data set): the whole N × N matrix never goes through the model at once, and every block has one
shape, so it compiles once.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np


def chunked(score: Callable, items: np.ndarray, chunk: int, *, args: tuple = (),
            symmetric: bool = False, progress: Callable[[int, int], None] | None = None
            ) -> np.ndarray:
    """The [N, N] float32 matrix M[i, j] = score(items[i], items[j]).

    `score(a, b, *args)` takes two [chunk, ...] blocks (and `args`, e.g. the model's state,
    passed as arguments so they are not baked into the compiled code) and returns the
    [chunk, chunk] block of values; it is jitted here. The last block is padded with copies
    of the first item and cut off. With `symmetric` only blocks on and above the diagonal are
    computed and mirrored (the caller's score must be symmetric, e.g. a symmetrised φ).
    `progress(done, total)` is called after every block.
    """
    items = np.asarray(items)
    n = len(items)
    if n == 0:
        raise ValueError("chunked: no items")
    if chunk < 1:
        raise ValueError(f"chunked: chunk must be ≥ 1, got {chunk}")
    chunk = min(chunk, n)
    blocks = -(-n // chunk)
    padded = np.concatenate([items, np.repeat(items[:1], blocks * chunk - n, axis=0)])
    step = jax.jit(score)
    out = np.empty((blocks * chunk, blocks * chunk), np.float32)
    pairs = [(i, j) for i in range(blocks) for j in range(blocks) if not symmetric or j >= i]
    for done, (i, j) in enumerate(pairs, 1):
        rows, cols = slice(i * chunk, (i + 1) * chunk), slice(j * chunk, (j + 1) * chunk)
        block = np.asarray(step(padded[rows], padded[cols], *args), np.float32)
        if block.shape != (chunk, chunk):
            raise ValueError(f"chunked: score returned a block of shape {block.shape}, not "
                             f"({chunk}, {chunk})")
        out[rows, cols] = block
        if symmetric:
            out[cols, rows] = block.T
        if progress is not None:
            progress(done, len(pairs))
    return out[:n, :n]


def euclidean(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """[N, M] Euclidean distances between the rows of a and of b (default a), in float64 so
    the expanded form ‖a‖² + ‖b‖² − 2a·b keeps small distances exact enough; never negative."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = a if b is None else np.asarray(b, np.float64).reshape(len(b), -1)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))
