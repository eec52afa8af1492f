"""MoCo v2: a query encoder against an EMA key encoder and a FIFO queue of past keys.

    task = "lib.ssl.moco:MoCo"   data.augment = 'views' (or a Views subclass), data.views=(2,)

View 0 goes through the query encoder and projector (trained), view 1 through the key
encoder (an EMA of the query's parameters, ssl.ema_decay, moved after each optimizer step).
InfoNCE (ssl.temperature) takes the key as the positive and the queue (ssl.queue_size keys of
earlier batches) as the negatives; the batch's keys are pushed afterwards, oldest out first.
The queue and key encoder are model state: checkpointed, so a resumed run continues the
same queue. A batch's `negative` / `has_negative` (BG_Swaps) add one hard negative per
query through the key encoder; it is not pushed to the queue (background_aug.md §3).

Shuffled BatchNorm: with model.bn_group_size > 0 every BatchNorm normalises over groups of
that many examples (one device's batch in the original), and the key batch is permuted before
the key encoder and put back after, so a query and its key never share BatchNorm statistics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models import state as model_state
from lib.ssl import losses
from lib.ssl.simclr import Contrastive, SimCLR, check_queue_size


class MomentumContrast(nnx.Module):
    """The trained query network, its EMA copy for keys, and the queue of past keys."""

    def __init__(self, query: Contrastive, queue_size: int, dim: int):
        self.query = query
        self.key = model_state.ema_copy(query)
        self.queue = model_state.FIFOQueue(queue_size, dim)

    def represent(self, x, *, train: bool = False):
        return self.query.represent(x, train=train)

    def __call__(self, x, *, train: bool):
        return self.query(x, train=train)


class MoCo(SimCLR):
    """InfoNCE of query view 0 against key view 1 and the queue."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.queue_size = config.ssl.queue_size
        self.decay = config.ssl.ema_decay
        self.shuffle = config.model.bn_group_size > 0
        check_queue_size(self.queue_size, config.data.batch_size, "MoCo replaces whole "
                         "batches of keys")

    def build_model(self, config, info, rngs) -> nnx.Module:
        query = super().build_model(config, info, rngs)
        return MomentumContrast(query, self.queue_size, self.widths[-1])

    def start(self, model) -> None:
        model_state.copy_into(model.key, model.query)

    def train_loss(self, model, batch, rng, step):
        del step
        view_rng, negative_rng, shuffle_rng = jax.random.split(rng, 3)
        views = self.view_images(batch, view_rng)[0]  # [B, 2, H, W, C]
        b = views.shape[0]
        q = model(views[:, 0], train=True)
        key_inputs = [views[:, 1]]
        if "negative" in batch:
            key_inputs.append(self.negative_image(batch, negative_rng))
        key_inputs = jnp.concatenate(key_inputs)
        if self.shuffle:  # BatchNorm groups mix the batch's keys; put them back in order
            order = jax.random.permutation(shuffle_rng, key_inputs.shape[0])
            keys = model.key(key_inputs[order], train=True)[jnp.argsort(order)]
        else:
            keys = model.key(key_inputs, train=True)
        keys = jax.lax.stop_gradient(keys)
        k, extra = keys[:b], (keys[b:] if "negative" in batch else None)
        per_row = losses.info_nce(q, k, model.queue.items.get_value(), model.queue.valid(),
                                  self.temperature, extra, batch.get("has_negative"))
        model.queue.push(losses.l2_normalize(k))
        loss = per_row.mean()
        return loss, {"loss": loss, "key_similarity": jnp.mean(
            jnp.sum(losses.l2_normalize(q) * losses.l2_normalize(k), axis=-1))}

    def update_state(self, model, step) -> None:
        del step
        model_state.ema_update(model.key, model.query, self.decay)
