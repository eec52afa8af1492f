"""The Task protocol: what a paper plugs into the one trainer (DESIGN.md rule 3).

A task turns (model, batch) into a training loss and into evaluation sums. The trainer owns
everything else: state, optimizer, sharding, data, checkpoints, logging. Papers that need more
(regularizers, extra metrics) subclass `Classification` or write their own class with the same
methods, and name it in config: `task = "experiments.slug.task:Name"`.
"""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp

from lib import losses
from lib.config import ConfigError


class Task(Protocol):
    def __init__(self, config) -> None: ...

    def train_loss(self, model, batch: dict, rng: jax.Array, step: jax.Array
                   ) -> tuple[jax.Array, dict]:
        """Scalar loss to minimise and a dict of scalar metrics (batch means) to log; `step`
        (traced) is the optimizer step, for terms whose weight follows a schedule."""

    def eval_sums(self, model, batch: dict) -> dict:
        """Per-batch sums of metrics over real examples (batch['mask'] = 1), with 'count'."""

    # Optional:
    #   check_data(info) raises ConfigError for data the task cannot take (views, no labels),
    #       when the run is built, before anything is written.
    #   build_model(config, info, rngs) -> the module to train, instead of
    #       models.build(config.model, num_classes=info.num_classes, ...): heads, towers,
    #       targets; its output need not be the class count.
    #   start(model): sets state that derives from the starting parameters (an EMA target as a
    #       copy), for a fresh run, one from init.workdir, or a stage; not on resume.
    #   update_state(model, step): inside the jitted step, after the optimizer update (an EMA
    #       of the updated parameters). train_loss may also change the model's non-parameter
    #       variables (a queue push): every nnx.Variable goes through the step.
    #   Eval sums may carry 'count/<metric>': that metric's own denominator (tokens).
    #   corpus_metrics(trainer, state, batches) -> {name: value}: metrics of a whole eval pass
    #       that are no sum over batches (BLEU of decoded text), logged beside the sums.
    #
    # Optional, for tasks that change the train state between steps (pruning during training):
    #   mask_names(roles, shapes) -> names of the parameters whose pruning masks the hook sets
    #       (they start dense; Trainer.with_masks replaces them).
    #   hook_due(step) -> bool: whether `hook` runs after optimizer step `step` (0: before the
    #       first step of a fresh run).
    #   hook(trainer, state, step) -> (state, values): host code between steps; it may
    #       evaluate (trainer.evaluate) and change the state (trainer.place puts it back on the
    #       devices; no two entries may share a buffer: the train step donates the state);
    #       `values` are logged at `step`.
    #   extra_state(shapes) -> dict of arrays kept in state["extra"]: what the hook must
    #       remember across steps (checkpointed with the rest).
    #   update_extra(extra, update, step) -> extra: inside the jitted step, when train_loss's
    #       metrics carry "extra_update" (popped before logging): e.g. running statistics.


class Classification:
    """Softmax cross-entropy; top-1 and top-k accuracy."""

    def __init__(self, config) -> None:
        self.top_k = config.eval.top_k
        self.smoothing = config.label_smoothing

    def check_data(self, info) -> None:
        if info.views:
            raise ConfigError(
                f"{type(self).__name__} classifies one image per example, but data.augment="
                f"'views' gives {sum(n for n, _ in info.views)} views per example; use another "
                "data.augment, or a task that takes views (e.g. a self-supervised one)")
        if not info.num_classes:
            raise ConfigError(f"{type(self).__name__} needs class labels; {info.name} has none")

    def train_loss(self, model, batch, rng, step):
        del rng, step
        logits = model(batch["image"], train=True)
        if self.smoothing:
            loss = losses.smoothed_cross_entropy(logits, batch["label"], self.smoothing).mean()
        else:
            loss = losses.softmax_cross_entropy(logits, batch["label"]).mean()
        accuracy = losses.topk_correct(logits, batch["label"], 1).mean()
        return loss, {"loss": loss, "accuracy": accuracy}

    def eval_sums(self, model, batch):
        logits = model(batch["image"], train=False)
        mask = batch["mask"]
        sums = {
            "loss": jnp.sum(losses.softmax_cross_entropy(logits, batch["label"]) * mask),
            "accuracy": jnp.sum(losses.topk_correct(logits, batch["label"], 1) * mask),
            "count": jnp.sum(mask),
        }
        if self.top_k and self.top_k < logits.shape[-1]:
            sums[f"top{self.top_k}_accuracy"] = jnp.sum(
                losses.topk_correct(logits, batch["label"], self.top_k) * mask
            )
        return sums
