"""SwAV: swapped prediction of Sinkhorn-Knopp codes over learned prototypes, with multi-crop.

    task = "lib.ssl.swav:SwAV"   data.augment = 'views' (or a Views subclass),
    data.views = (2, 6), data.view_sizes = (224, 96)   (2 global + 6 local crops)

Every view goes through encoder → projector, is L2-normalised (z) and scored against
ssl.prototypes unit vectors (s = z·c). Each of the first ssl.assign_views views of the first
group (the global crops) gets codes q from Sinkhorn-Knopp (ε, iterations) on its scores; every
other view predicts them: loss = mean over assignment views i and views v ≠ i of
−Σ_k q_ik · log softmax(s_v / τ)_k. The codes are targets, never differentiated.

Prototypes are normalised in the forward pass (the original renormalises the weights before
each step: the same forward values; the gradient loses its radial part, which that
renormalisation discards anyway). Before step ssl.freeze_prototypes_steps their loss gradient
is zero; unlike the original, which skips them in the optimizer, weight decay and momentum
still move them, which the normalisation makes invisible in the forward pass.

Queue (ssl.queue_size > 0, one per assignment view): from step ssl.queue_start_step each
batch's z are pushed; once full, the queue's scores join the batch's in Sinkhorn so small
batches still spread over all prototypes (its rows get codes too, but only the batch's are
used). Views of one crop size go through the encoder together (its BatchNorm over them), and
all views through the projector at once, as in the original. SwAV has no negatives: BG_Swaps'
hard negative does not apply.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lib.config import ConfigError
from lib.models import state as model_state
from lib.ssl import losses
from lib.ssl.simclr import Contrastive, SimCLR, check_queue_size


class SwappedAssignment(nnx.Module):
    """The network, its prototypes [dim, K] and a queue of past z per assignment view."""

    def __init__(self, net: Contrastive, dim: int, prototypes: int, queues: int,
                 queue_size: int, *, rngs: nnx.Rngs):
        self.net = net
        self.prototypes = nnx.Linear(dim, prototypes, use_bias=False, rngs=rngs)
        self.queues = nnx.List([model_state.FIFOQueue(queue_size, dim)
                                for _ in range(queues if queue_size else 0)])

    def represent(self, x, *, train: bool = False):
        return self.net.represent(x, train=train)

    def __call__(self, x, *, train: bool):
        """The normalised projections z."""
        return losses.l2_normalize(self.net(x, train=train))

    def embed_groups(self, groups, *, train: bool):
        """The normalised projections of view groups (each [n·B, S, S, C]): the encoder on one
        crop size at a time, the projector once over all views (as the original's head)."""
        reps = [self.net.represent(g, train=train).astype(jnp.float32) for g in groups]
        return losses.l2_normalize(self.net.projector(jnp.concatenate(reps), train=train))

    def unit_prototypes(self, frozen=False) -> jax.Array:
        """[dim, K] prototypes of unit length; `frozen` (traced bool) stops their gradient."""
        c = self.prototypes.kernel.get_value()
        c = jnp.where(frozen, jax.lax.stop_gradient(c), c)
        return losses.l2_normalize(c.T).T


def swapped_prediction(codes: jax.Array, log_p: jax.Array) -> jax.Array:
    """[B] cross-entropy −Σ_k q_k log p_k of one view's predictions against codes."""
    return -jnp.sum(codes * log_p, axis=-1)


class SwAV(SimCLR):
    """Swapped prediction between each assignment view's codes and every other view."""

    def __init__(self, config) -> None:
        super().__init__(config)
        s = config.ssl
        self.prototypes, self.assign = s.prototypes, s.assign_views
        self.epsilon, self.iterations = s.sinkhorn_epsilon, s.sinkhorn_iterations
        self.queue_size, self.queue_start = s.queue_size, s.queue_start_step
        self.freeze_steps = s.freeze_prototypes_steps
        if self.queue_size:
            check_queue_size(self.queue_size, config.data.batch_size,
                             "SwAV's queue takes whole batches of embeddings (0 turns it off)")

    def check_data(self, info) -> None:
        counts = [n for n, _ in info.views]
        if not counts or counts[0] < self.assign or sum(counts) < 2:
            raise ConfigError(
                f"SwAV takes ssl.assign_views={self.assign} views from the first view group "
                f"and at least 2 views in all (e.g. data.views=(2, 6)); this data gives view "
                f"groups {counts or 'none'}")

    def build_model(self, config, info, rngs) -> nnx.Module:
        net = super().build_model(config, info, rngs)
        return SwappedAssignment(net, self.widths[-1], self.prototypes, self.assign,
                                 self.queue_size, rngs=rngs)

    def train_loss(self, model, batch, rng, step):
        groups = self.view_images(batch, rng)
        b = groups[0].shape[0]
        flat = []
        for group in groups:  # [B, n, S, S, C] → view-major rows v·B + i
            views = jnp.swapaxes(group, 0, 1)
            flat.append(views.reshape(-1, *views.shape[2:]))
        z = model.embed_groups(flat, train=True)
        n_views = z.shape[0] // b
        c = model.unit_prototypes(frozen=step < self.freeze_steps)
        scores = z @ c
        log_p = jax.nn.log_softmax(scores / self.temperature, axis=-1)
        per_row, used = 0.0, []
        for i in range(self.assign):
            codes = self.codes(model, i, scores[i * b:(i + 1) * b], c)
            if model.queues:
                model.queues[i].push(jax.lax.stop_gradient(z[i * b:(i + 1) * b]),
                                     when=step >= self.queue_start)
            others = [swapped_prediction(codes, log_p[v * b:(v + 1) * b])
                      for v in range(n_views) if v != i]
            per_row = per_row + sum(others) / len(others)
            used.append(jnp.argmax(codes, axis=-1))
        loss = jnp.mean(per_row) / self.assign
        return loss, {"loss": loss, "prototypes_used": _share_used(
            jnp.concatenate(used), self.prototypes)}

    def codes(self, model, i: int, scores: jax.Array, c: jax.Array) -> jax.Array:
        """Sinkhorn codes [B, K] of assignment view i, with its queue's scores once full."""
        if not model.queues:
            return losses.sinkhorn(scores, self.epsilon, self.iterations)
        queue = model.queues[i]
        past = queue.items.get_value() @ jax.lax.stop_gradient(c)
        weights = jnp.concatenate([jnp.full(queue.size, queue.full(), jnp.float32),
                                   jnp.ones(scores.shape[0])])
        return losses.sinkhorn(jnp.concatenate([past, scores]), self.epsilon, self.iterations,
                               weights)[queue.size:]


def _share_used(assigned: jax.Array, k: int) -> jax.Array:
    """Distinct strongest codes over the most there could be, min(K, assignments): 1 when
    every assignment picks its own prototype; a collapse shows as it falls to 1/that."""
    return jnp.sum(jnp.zeros(k).at[assigned].set(1.0)) / min(k, assigned.shape[0])
