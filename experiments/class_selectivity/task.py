"""Classification with the class-selectivity regularizer (class_selectivity.md §2).

loss = CE − α·μ̄_SI, μ̄_SI the mean over units, then over the configured layers, of each unit's
selectivity over the classes present in the mini-batch (lib.evaluators.selectivity). α < 0
penalises selectivity, α > 0 rewards it; α = 0 trains the baseline and still logs μ̄_SI.
"""

from __future__ import annotations

from lib import losses
from lib.config import ConfigError
from lib.evaluators import selectivity
from lib.task import Classification


class SelectivityRegularized(Classification):
    def __init__(self, config) -> None:
        super().__init__(config)
        s = config.selectivity
        self.alpha, self.eps = s.alpha, s.eps
        self.layers = tuple(name for name in s.layers if name)
        if not self.layers:
            raise ConfigError("selectivity.layers is empty: name the feature layers whose units "
                              "are regularised (e.g. ('dense0', 'dense1') for the mlp)")

    def train_loss(self, model, batch, rng):
        del rng
        logits, feats = model(batch["image"], train=True, features=True)
        try:
            chosen = selectivity.select_layers(feats, self.layers)
        except ValueError as e:
            raise ConfigError(f"selectivity.layers: {e}") from e
        si = selectivity.mean_selectivity(chosen, batch["label"], logits.shape[-1], self.eps)
        ce = losses.softmax_cross_entropy(logits, batch["label"]).mean()
        loss = ce - self.alpha * si
        accuracy = losses.topk_correct(logits, batch["label"], 1).mean()
        return loss, {"loss": loss, "cross_entropy": ce, "selectivity": si,
                      "accuracy": accuracy}
