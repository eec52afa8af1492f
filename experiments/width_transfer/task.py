"""The width optimisers' training runs, on a family's network at w0 (nets.family_of).

MorphNetShrink (experiments.width_transfer.morphnet): classification with the FLOPs-weighted γ
penalty λ · Σ_d cost_d · Σ_c g_c / FLOPs(w0) added to the loss; the penalty is logged as
train/penalty, the plain cross-entropy as train/cross_entropy.
AutoSlimSupernet (experiments.width_transfer.autoslim): the slimmable supernet, trained by the
sandwich rule with in-place distillation (lib.slim.sandwich); its sub-networks are drawn on
device from the step's key, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

from experiments.width_transfer import autoslim, morphnet, nets
from lib import models
from lib.config import ConfigError
from lib.slim import sandwich
from lib.task import Classification


class _AtBaseWidths(Classification):
    """Builds the network of config.model at w0 and keeps its family."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.config, self.cfg = config, config.width_transfer
        self.family = None

    def build_model(self, config, info, rngs):
        if config.model.name not in nets.MODELS or tuple(config.model.widths):
            raise ConfigError(f"the width optimisers run on the network at its base widths: "
                              f"model.name in {' | '.join(nets.MODELS)} with model.widths=() "
                              f"(got {config.model.name!r}, {tuple(config.model.widths)})")
        h, _, c = info.image_shape
        self.family = nets.family_of(config.model, h, c, info.num_classes)
        return models.build(config.model, num_classes=info.num_classes, in_channels=c,
                            image_size=info.image_shape[:2], rngs=rngs)


class MorphNetShrink(_AtBaseWidths):
    """config.task = "experiments.width_transfer.task:MorphNetShrink"."""

    def __init__(self, config) -> None:
        super().__init__(config)
        if self.cfg.group_reduce not in morphnet.GROUP_REDUCE:
            raise ConfigError(f"width_transfer.group_reduce={self.cfg.group_reduce!r}; valid "
                              f"choices: {', '.join(morphnet.GROUP_REDUCE)}")

    def train_loss(self, model, batch, rng, step):
        loss, metrics = super().train_loss(model, batch, rng, step)
        scores = morphnet.channel_scores(model, self.family, self.cfg.group_reduce)
        penalty = morphnet.penalty(scores, self.family)
        total = loss + self.cfg.penalty * penalty
        return total, {**metrics, "loss": total, "cross_entropy": loss, "penalty": penalty}


class AutoSlimSupernet(_AtBaseWidths):
    """config.task = "experiments.width_transfer.task:AutoSlimSupernet"."""

    def __init__(self, config) -> None:
        super().__init__(config)
        if self.cfg.supernet_sampling not in autoslim.SAMPLING:
            raise ConfigError(f"width_transfer.supernet_sampling="
                              f"{self.cfg.supernet_sampling!r}; valid choices: "
                              f"{', '.join(autoslim.SAMPLING)}")

    def train_loss(self, model, batch, rng, step):
        del step
        rows = autoslim.sample_rows(rng, self.family, self.cfg.supernet_samples,
                                    self.cfg.supernet_low, self.cfg.supernet_sampling)
        return sandwich.sandwich_loss(model, batch, rows, self.config.label_smoothing)
