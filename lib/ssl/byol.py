"""BYOL: an online network regresses an EMA target's projection of the other view.

    task = "lib.ssl.byol:BYOL"   data.augment = 'views' (or a Views subclass), data.views=(2,)

Online: encoder → projector (ssl.projector_widths) → predictor (ssl.predictor_hidden, then the
projection's width), trained.
Target: an EMA copy of the online encoder and projector, no predictor, never differentiated.
Loss, symmetric over the two views: ‖p̂₁ − ẑ₂‖² + ‖p̂₂ − ẑ₁‖² on L2-normalised vectors, i.e.
2 − 2·cos per term, averaged over the batch. The target's decay follows the cosine schedule
τ_k = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2 from τ_base = ssl.ema_decay at step 0 to 1 at
total_steps K (ssl.ema_schedule = cosine; constant keeps τ_base). BYOL has no negatives:
BG_Swaps' hard negative does not apply (background_aug's procedure refuses it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lib.config import ConfigError
from lib.models import state as model_state
from lib.ssl import losses
from lib.ssl.simclr import Contrastive, Projector, SimCLR

EMA_SCHEDULES = ("constant", "cosine")


def target_decay(step, total_steps: int, base: float, schedule: str):
    """τ at (0-based) optimizer step `step`: base, or BYOL's cosine from base to 1."""
    if schedule == "constant":
        return jnp.asarray(base, jnp.float32)
    progress = jnp.asarray(step, jnp.float32) / total_steps
    return 1 - (1 - base) * (jnp.cos(jnp.pi * progress) + 1) / 2


def regression_loss(p: jax.Array, z: jax.Array) -> jax.Array:
    """[B] squared distance of the normalised prediction and target: 2 − 2·cos(p, z)."""
    return jnp.sum(jnp.square(losses.l2_normalize(p) - losses.l2_normalize(z)), axis=-1)


class Bootstrap(nnx.Module):
    """The online network with its predictor, and the EMA target of encoder and projector."""

    def __init__(self, online: Contrastive, predictor: Projector):
        self.online = online
        self.predictor = predictor
        self.target = model_state.ema_copy(online)

    def represent(self, x, *, train: bool = False):
        return self.online.represent(x, train=train)

    def __call__(self, x, *, train: bool):
        return self.predictor(self.online(x, train=train), train=train)


class BYOL(SimCLR):
    """The symmetric regression of each view's prediction onto the target's other view."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.predictor_widths = (*config.ssl.predictor_hidden, self.widths[-1])
        self.base, self.schedule = config.ssl.ema_decay, config.ssl.ema_schedule
        self.total_steps = config.total_steps
        if self.schedule not in EMA_SCHEDULES:
            raise ConfigError(f"ssl.ema_schedule={self.schedule!r}; valid choices: "
                              f"{', '.join(EMA_SCHEDULES)}")

    def build_model(self, config, info, rngs) -> nnx.Module:
        online = super().build_model(config, info, rngs)
        return Bootstrap(online, Projector(self.widths[-1], self.predictor_widths,
                                           batchnorm=self.head_layers, rngs=rngs))

    def start(self, model) -> None:
        model_state.copy_into(model.target, model.online)

    def train_loss(self, model, batch, rng, step):
        views = self.view_images(batch, rng)[0]  # [B, 2, H, W, C]
        b = views.shape[0]
        both = jnp.concatenate([views[:, 0], views[:, 1]])
        p = model(both, train=True)
        z = jax.lax.stop_gradient(model.target(both, train=True))
        per_row = regression_loss(p[:b], z[b:]) + regression_loss(p[b:], z[:b])
        loss = per_row.mean()
        return loss, {"loss": loss, "target_decay": self.decay(step)}

    def decay(self, step):
        return target_decay(step, self.total_steps, self.base, self.schedule)

    def update_state(self, model, step) -> None:
        model_state.ema_update(model.target, model.online, self.decay(step))
