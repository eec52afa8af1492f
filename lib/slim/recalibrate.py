"""BatchNorm recalibration before a sub-network is evaluated (joslim.md §2): statistics shared
across widths fit no single width, so the paper's code resets them and takes their cumulative
average over training data in train mode, without gradients (CIFAR: the whole training set;
ImageNet: 2 batches of 1,024). Here: every BatchNorm's running mean and variance become the
average over `batches` of that batch's statistics (each batch weighs the same, as PyTorch's
momentum=None does), for the channels the masks leave active; inactive ones stay put."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def _batch_statistics(graphdef, params, stats, rest, images, masks):
    """One batch's BatchNorm statistics (momentum 0: the running values become the batch's)."""
    m = nnx.merge(graphdef, params, stats, rest)
    m(images, train=True, **({} if masks is None else {"masks": masks}))
    return nnx.state(m, nnx.BatchStat)


class Recalibrator:
    """recalibrate() with its compiled step kept across calls on models of one architecture
    (evaluating many sub-networks of one trained net compiles once)."""

    def __init__(self):
        self._graphdef, self._step = None, None

    def __call__(self, model: nnx.Module, batches, masks: dict | None = None) -> nnx.Module:
        """`model` with its BatchNorm statistics recomputed over `batches` (dicts with
        'image') at the width `masks` gives (None: the full width); updated in place."""
        norms = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
        if not norms:
            raise ValueError("recalibrate: the model has no BatchNorm")
        before = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 0.0  # running statistics ← this batch's
        try:
            graphdef, params, stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
            if self._step is None or graphdef != self._graphdef:
                self._graphdef = graphdef
                self._step = jax.jit(functools.partial(_batch_statistics, graphdef))
            average, count = None, 0
            for batch in batches:
                new = self._step(params, stats, rest, jnp.asarray(batch["image"]), masks)
                count += 1
                # the running mean: exact where every batch leaves a value as it was
                average = new if average is None else jax.tree.map(
                    lambda a, n, k=count: a + (n - a) / k, average, new)
            if not count:
                raise ValueError("recalibrate: no batches")
            nnx.update(model, average)
        finally:
            for m, momentum in zip(norms, before):
                m.momentum = momentum
        return model


def recalibrate(model: nnx.Module, batches, masks: dict | None = None) -> nnx.Module:
    """One recalibration (Recalibrator for many)."""
    return Recalibrator()(model, batches, masks)
