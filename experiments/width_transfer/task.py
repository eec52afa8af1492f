"""MorphNet's shrink run (experiments.width_transfer.morphnet): classification of the network
at w0 with the FLOPs-weighted γ penalty λ · Σ_d cost_d · Σ_c g_c / FLOPs(w0) added to the loss.
The penalty is logged as train/penalty, the plain cross-entropy as train/cross_entropy."""

from __future__ import annotations

from experiments.width_transfer import morphnet, nets
from lib import models
from lib.config import ConfigError
from lib.models.slimmable import SlimCifarResNet
from lib.task import Classification


class MorphNetShrink(Classification):
    """config.task = "experiments.width_transfer.task:MorphNetShrink"."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.cfg = config.width_transfer
        if self.cfg.group_reduce not in morphnet.GROUP_REDUCE:
            raise ConfigError(f"width_transfer.group_reduce={self.cfg.group_reduce!r}; valid "
                              f"choices: {', '.join(morphnet.GROUP_REDUCE)}")
        self.family = None

    def build_model(self, config, info, rngs):
        if config.model.name != nets.MODEL or tuple(config.model.widths):
            raise ConfigError(f"MorphNet shrinks the network at its base widths: model.name="
                              f"{nets.MODEL!r} with model.widths=() (got "
                              f"{config.model.name!r}, {tuple(config.model.widths)})")
        h, _, c = info.image_shape
        self.family = nets.family_of(config.model, h, c, info.num_classes)
        model = models.build(config.model, num_classes=info.num_classes, in_channels=c,
                             image_size=info.image_shape[:2], rngs=rngs)
        assert isinstance(model, SlimCifarResNet)
        return model

    def train_loss(self, model, batch, rng, step):
        loss, metrics = super().train_loss(model, batch, rng, step)
        scores = morphnet.channel_scores(model, self.family, self.cfg.group_reduce)
        penalty = morphnet.penalty(scores, self.family)
        total = loss + self.cfg.penalty * penalty
        return total, {**metrics, "loss": total, "cross_entropy": loss, "penalty": penalty}
