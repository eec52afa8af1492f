"""Contrastive losses on embeddings, batch-global under jit (every device's rows are negatives
of every other's: the result does not depend on the device count)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

_MASKED = -1e9  # a logit that takes no part in the softmax (finite: no NaN gradients)


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    x = x.astype(jnp.float32)
    return x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps))


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float,
            extra_negatives: jax.Array | None = None,
            extra_mask: jax.Array | None = None) -> jax.Array:
    """SimCLR's NT-Xent per row, [2B]: each of the 2B views against its partner, with the
    other 2B − 2 views as negatives, on cosine similarities / temperature.

    extra_negatives [B, D] (optional): one more negative per example, appended to the
    denominator of its view-0 row only (BG_Swaps' hard negative for the anchor); extra_mask
    [B] in {0, 1} switches it off where not drawn.
    """
    b = z1.shape[0]
    z = l2_normalize(jnp.concatenate([z1, z2]))
    logits = z @ z.T / temperature
    logits = jnp.where(jnp.eye(2 * b, dtype=bool), _MASKED, logits)
    partner = (jnp.arange(2 * b) + b) % (2 * b)
    if extra_negatives is not None:
        extra = jnp.sum(z[:b] * l2_normalize(extra_negatives), axis=-1) / temperature
        on = jnp.ones(b, bool) if extra_mask is None else extra_mask > 0
        column = jnp.concatenate([jnp.where(on, extra, _MASKED), jnp.full(b, _MASKED)])
        logits = jnp.concatenate([logits, column[:, None]], axis=1)
    positive = jnp.take_along_axis(logits, partner[:, None], axis=1)[:, 0]
    return jax.nn.logsumexp(logits, axis=1) - positive


def info_nce(q: jax.Array, k: jax.Array, queue: jax.Array, queue_valid: jax.Array,
             temperature: float, extra_negatives: jax.Array | None = None,
             extra_mask: jax.Array | None = None) -> jax.Array:
    """MoCo's InfoNCE per row, [B]: query q_i against its key k_i (the positive) and every
    valid queue row (negatives), on cosine similarities / temperature. q, k [B, D]; queue
    [K, D] with queue_valid [K] (rows not yet filled take no part).

    extra_negatives [B, D] (optional): one more negative logit per query (BG_Swaps' hard
    negative), switched off by extra_mask [B] = 0.
    """
    q, k = l2_normalize(q), l2_normalize(k)
    positive = jnp.sum(q * k, axis=-1, keepdims=True) / temperature
    negatives = jnp.where(queue_valid[None, :], q @ l2_normalize(queue).T / temperature,
                          _MASKED)
    logits = [positive, negatives]
    if extra_negatives is not None:
        extra = jnp.sum(q * l2_normalize(extra_negatives), axis=-1) / temperature
        on = jnp.ones(q.shape[0], bool) if extra_mask is None else extra_mask > 0
        logits.append(jnp.where(on, extra, _MASKED)[:, None])
    return jax.nn.logsumexp(jnp.concatenate(logits, axis=1), axis=1) - positive[:, 0]


def sinkhorn(scores: jax.Array, epsilon: float, iterations: int,
             weights: jax.Array | None = None) -> jax.Array:
    """SwAV's Sinkhorn-Knopp codes, [N, K]: soft assignments of N samples to K prototypes from
    their scores (cosine similarities), exp(scores / ε) rescaled `iterations` times so every
    prototype gets an equal share of the batch (1/K of it) and every sample a unit of mass.
    Each row sums to 1 exactly; the prototype totals N/K up to the finite iterations. Batch-
    global under jit, like the original's all-reduced sums. No gradient flows.

    weights [N] in {0, 1} (optional): rows that take no part (a queue not filled yet); their
    codes are 0 and N counts only the others.
    """
    logits = jax.lax.stop_gradient(scores.astype(jnp.float32)) / epsilon
    w = jnp.ones(scores.shape[0]) if weights is None else weights.astype(jnp.float32)
    logits = logits - jnp.max(jnp.where(w[:, None] > 0, logits, -jnp.inf))
    q = jnp.where(w[:, None] > 0, jnp.exp(logits), 0.0)  # masked rows: no inf · 0
    n, k = jnp.sum(w), scores.shape[1]
    q = q / jnp.sum(q)
    for _ in range(iterations):
        q = q / jnp.sum(q, axis=0, keepdims=True) / k
        rows = jnp.sum(q, axis=1, keepdims=True)
        q = jnp.where(rows > 0, q / jnp.where(rows > 0, rows, 1.0), 0.0) / n
    return q * n
