"""Training and scoring the sub-networks of one slimmable network (joslim.md §2; the
supernets of width_transfer's AutoSlim).

Training (the sandwich rule with in-place distillation): every step trains the full width
with (label-smoothed) cross-entropy and each sampled sub-network, usually including the
smallest, by distillation from the full width's predictions: −mean Σ softmax(stopgrad(full
logits)) · log_softmax(sub-network logits); the gradients add up. A sub-network is a row of
channel counts, one per dim in the model's `dims()` order, applied as channel masks, so one
compiled step serves every width.

Scoring (`SubnetEvaluator`): BatchNorm statistics shared across widths fit no single width,
so a sub-network is scored after its statistics are recomputed on training batches
(lib.slim.recalibrate), then by top-1 and top-5 over an eval split.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from lib import config as config_lib
from lib import data, losses, sharding
from lib.slim import recalibrate


def masks_of(model, row: jax.Array) -> dict:
    """{dim: [base] mask} of one row of channel counts (traced)."""
    return {d: (jnp.arange(model.channels[d]) < row[i]).astype(jnp.float32)
            for i, d in enumerate(model.dims())}


def distillation(teacher_logits: jax.Array, student_logits: jax.Array) -> jax.Array:
    """Batch mean of −Σ softmax(teacher)·log_softmax(student), the teacher held fixed."""
    p = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits).astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.sum(p * jax.nn.log_softmax(student_logits.astype(jnp.float32),
                                                    axis=-1), axis=-1))


def sandwich_loss(model, batch: dict, rows: jax.Array, label_smoothing: float
                  ) -> tuple[jax.Array, dict]:
    """(loss, metrics) of one step: the full width's smoothed cross-entropy plus the
    distillation loss of every row of `rows` [N, dims] (the last: logged as loss_smallest,
    the others as kd_{k})."""
    x, y = batch["image"], batch["label"]
    logits = model(x, train=True)
    full = losses.smoothed_cross_entropy(logits, y, label_smoothing).mean()
    total, metrics = full, {"loss_full": full}
    for k in range(rows.shape[0]):
        kd = distillation(logits, model(x, train=True, masks=masks_of(model, rows[k])))
        total = total + kd
        metrics["loss_smallest" if k == rows.shape[0] - 1 else f"kd_{k}"] = kd
    accuracy = losses.topk_correct(logits, y, 1).mean()
    return total, {"loss": total, "accuracy": accuracy, **metrics}


class SubnetEvaluator:
    """Sub-networks of one trained state, each a row of channel counts: recalibrated on the
    first `recalibration_batches` batches of the train split (0: all of it), then scored
    (jitted, the masks traced: one compilation for every width)."""

    def __init__(self, trainer, config, recalibration_batches: int):
        self.trainer, self.config = trainer, config
        self.recalibration_batches = recalibration_batches
        self.train_split = data.eval_batches(config_lib.updated(config.data, {
            "eval_split": config.data.train_split}))
        self.validation = data.eval_batches(config.data, split="validation")
        self.test = trainer.eval_batches()
        setup = trainer.setup

        def sums(state, batch, row):
            model = setup.model(state)
            logits = model(batch["image"], train=False, masks=masks_of(model, row))
            mask, y = batch["mask"], batch["label"]
            return {"top1": jnp.sum(losses.topk_correct(logits, y, 1) * mask),
                    "top5": jnp.sum(losses.topk_correct(logits, y, min(5, logits.shape[-1]))
                                    * mask),
                    "count": jnp.sum(mask)}

        self._sums = jax.jit(sums)
        self._recalibrate = recalibrate.Recalibrator()

    def recalibrated(self, state, row) -> dict:
        """`state` with BatchNorm statistics recomputed at the width of `row`."""
        setup = self.trainer.setup
        model = setup.model(state)
        masks = masks_of(model, jnp.asarray(row))
        batches = itertools.islice(self.train_split, self.recalibration_batches or None)
        self._recalibrate(model, batches, masks)
        return self.trainer.place({**state, **setup.variables(model)})

    def accuracy(self, state, row, batches) -> tuple[float, float]:
        """(top-1, top-5) of the sub-network `row` over `batches`."""
        row = jnp.asarray(np.asarray(row, np.int32))
        total = None
        for b in batches:
            out = self._sums(state, sharding.global_batch(b, self.trainer.batch_sharding), row)
            total = out if total is None else jax.tree.map(jnp.add, total, out)
        if total is None:
            raise ValueError("no batches to score the sub-network on")
        total = jax.device_get(total)
        return float(total["top1"] / total["count"]), float(total["top5"] / total["count"])
