"""The width optimisers' training runs, on a family's network at w0 (nets.family_of).

MorphNetShrink (experiments.width_transfer.morphnet): classification with the FLOPs-weighted γ
penalty λ · Σ_d cost_d · Σ_c g_c / FLOPs(w0) added to the loss; the penalty is logged as
train/penalty, the plain cross-entropy as train/cross_entropy.
AutoSlimSupernet (experiments.width_transfer.autoslim): the slimmable supernet, trained by the
sandwich rule with in-place distillation (lib.slim.sandwich); its sub-networks are drawn on
device from the step's key, so a resumed run draws what an uninterrupted one would.
DMCPTraining (experiments.width_transfer.dmcp): the network with every channel scaled by its
group's keep probability, the transition logits (the model's `dmcp_logits`, no weight decay)
learnt with it under the expected-FLOPs penalty, logged as train/penalty and
train/expected_flops (a ratio of B).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from experiments.width_transfer import autoslim, dmcp, morphnet, nets
from lib import losses, models
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


class DMCPLogits(nnx.Param):
    """DMCP's transition logits [dims, groups − 1]."""


class DMCPTraining(_AtBaseWidths):
    """config.task = "experiments.width_transfer.task:DMCPTraining"."""

    def build_model(self, config, info, rngs):
        model = super().build_model(config, info, rngs)
        model.dmcp_logits = DMCPLogits(jnp.asarray(dmcp.initial_logits(
            self.family, self.cfg.dmcp_groups, self.cfg.dmcp_init)))
        return model

    def train_loss(self, model, batch, rng, step):
        del rng, step
        logits_a = model.dmcp_logits.value
        logits = model(batch["image"], train=True, masks=self.masks(model))
        ce = losses.smoothed_cross_entropy(logits, batch["label"], self.smoothing).mean()
        penalty = dmcp.penalty(logits_a, self.family, self.cfg.dmcp_groups, self.cfg.ratio)
        total = ce + self.cfg.dmcp_penalty * penalty
        expected = (dmcp.expected_flops(logits_a, self.family, self.cfg.dmcp_groups)
                    / self.family.flops(self.family.base))
        return total, {"loss": total, "cross_entropy": ce, "penalty": penalty,
                       "expected_flops": expected,
                       "accuracy": losses.topk_correct(logits, batch["label"], 1).mean()}

    def masks(self, model) -> dict:
        return dmcp.channel_masks(model.dmcp_logits.value, self.family, self.cfg.dmcp_groups)

    def eval_sums(self, model, batch):
        """The network as it trains: every channel scaled by its keep probability."""
        masked = lambda x, train: model(x, train=train, masks=self.masks(model))  # noqa: E731
        return super().eval_sums(masked, batch)
