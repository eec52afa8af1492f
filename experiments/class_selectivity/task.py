"""Classification with the class-selectivity regularizer (class_selectivity.md §2).

loss = CE − α·μ̄_SI, μ̄_SI the mean over units, then over the configured layers, of each unit's
selectivity over the classes present in the mini-batch (lib.evaluators.selectivity). α < 0
penalises selectivity, α > 0 rewards it; α = 0 trains the baseline and still logs μ̄_SI.
With selectivity.alpha_warmup_steps > 0, α rises linearly from 0 to its value over those steps.
"""

from __future__ import annotations

import jax.numpy as jnp

from lib import losses
from lib.config import ConfigError
from lib.evaluators import selectivity
from lib.task import Classification


class SelectivityRegularized(Classification):
    def __init__(self, config) -> None:
        super().__init__(config)
        s = config.selectivity
        self.alpha, self.eps, self.warmup = s.alpha, s.eps, s.alpha_warmup_steps
        if self.warmup < 0:
            raise ConfigError(f"selectivity.alpha_warmup_steps={self.warmup} must be >= 0")
        self.layers = tuple(name for name in s.layers if name)
        if not self.layers:
            raise ConfigError("selectivity.layers is empty: name the feature layers whose units "
                              "are regularised (e.g. ('dense0', 'dense1') for the mlp)")

    def alpha_at(self, step):
        """α at optimizer step `step` (counted from 0): linear warm-up, then constant."""
        if not self.warmup:
            return self.alpha
        return self.alpha * jnp.minimum(1.0, (step + 1) / self.warmup)

    def train_loss(self, model, batch, rng, step):
        del rng
        logits, feats = model(batch["image"], train=True, features=True)
        try:
            chosen = selectivity.select_layers(feats, self.layers)
        except ValueError as e:
            raise ConfigError(f"selectivity.layers: {e}") from e
        si = selectivity.mean_selectivity(chosen, batch["label"], logits.shape[-1], self.eps)
        ce = losses.softmax_cross_entropy(logits, batch["label"]).mean()
        alpha = self.alpha_at(step)
        loss = ce - alpha * si
        accuracy = losses.topk_correct(logits, batch["label"], 1).mean()
        return loss, {"loss": loss, "cross_entropy": ce, "selectivity": si,
                      "accuracy": accuracy, "alpha": jnp.asarray(alpha, jnp.float32)}
