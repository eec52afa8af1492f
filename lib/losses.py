"""Pure loss and metric functions on logits; each has a known-value test."""

import jax
import jax.numpy as jnp


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example −log softmax(logits)[label], computed in float32."""
    logits = logits.astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_probs, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]


def smoothed_cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float
                           ) -> jax.Array:
    """Per-example cross-entropy against (1 − ε)·one-hot + ε/K over the K classes (the
    Inception / timm form: the target class gets 1 − ε + ε/K)."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
    return (1.0 - smoothing) * nll - smoothing * jnp.mean(log_probs, axis=-1)


def topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """Per-example 1.0 if the label is among the k largest logits (ties: lowest index first)."""
    _, top = jax.lax.top_k(logits.astype(jnp.float32), k)
    return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)


def token_cross_entropy(logits: jax.Array, targets: jax.Array, label_smoothing: float = 0.0
                        ) -> jax.Array:
    """Per-token cross-entropy of [..., V] logits against integer targets, in float32.

    With label smoothing ε the target distribution is fairseq's: 1 − ε on the target token and
    ε/(V − 1) on each other one. Padding is the caller's: multiply by the token weights and
    divide by their sum (`masked_mean`)."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    if not label_smoothing:
        return nll
    vocab = logits.shape[-1]
    others = -jnp.sum(log_probs, axis=-1) - nll
    return (1.0 - label_smoothing) * nll + label_smoothing / (vocab - 1) * others


def masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Σ values·weights / Σ weights (0 when every weight is 0): a mean over real tokens."""
    weights = weights.astype(jnp.float32)
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def sigmoid_binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Elementwise −[y·log σ(z) + (1 − y)·log(1 − σ(z))] for targets y in [0, 1], from logits
    (stable for large |z|: max(z, 0) − z·y + log(1 + e^−|z|)); PyTorch's BCEWithLogits."""
    logits = logits.astype(jnp.float32)
    labels = labels.astype(jnp.float32)
    return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def smooth_l1(predictions: jax.Array, targets: jax.Array, beta: float = 1.0) -> jax.Array:
    """Elementwise smooth-L1 (PyTorch's SmoothL1Loss): 0.5·d²/β where |d| < β, else |d| − β/2."""
    if beta <= 0:
        raise ValueError(f"smooth_l1 needs β > 0, got {beta}")
    d = jnp.abs(predictions.astype(jnp.float32) - targets.astype(jnp.float32))
    return jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise (prediction − target)²; its mean is the MSE."""
    return jnp.square(predictions.astype(jnp.float32) - targets.astype(jnp.float32))


def gaussian_kl(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_variance)) ‖ N(0, I)) per example, summed over the last axis: the VAE
    prior term, −½·Σ(1 + log σ² − μ² − σ²)."""
    mean, log_variance = mean.astype(jnp.float32), log_variance.astype(jnp.float32)
    return -0.5 * jnp.sum(1.0 + log_variance - mean * mean - jnp.exp(log_variance), axis=-1)
