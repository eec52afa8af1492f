"""Weighted k-nearest-neighbour classification on frozen features (the SSL papers' kNN monitor).

Features are L2-normalised; each test example's k most cosine-similar training examples vote
for their labels with weight exp(similarity / temperature), and the class with the largest
summed weight is the prediction (Wu et al.'s instance-discrimination protocol: k = 200,
temperature 0.07). Test rows go through in chunks, so the similarity matrix never holds more
than chunk × n_train entries.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _normalize(x):
    x = jnp.asarray(x, jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _votes(test, train, train_labels, *, k: int, num_classes: int, temperature):
    sim = test @ train.T                                    # [chunk, n_train]
    top_sim, top_index = jax.lax.top_k(sim, k)
    weights = jnp.exp(top_sim / temperature)
    onehot = jax.nn.one_hot(train_labels[top_index], num_classes)  # [chunk, k, classes]
    return jnp.einsum("nk,nkc->nc", weights, onehot)


def predict(train_x, train_y, test_x, num_classes: int, *, k: int = 200,
            temperature: float = 0.07, chunk: int = 1024) -> np.ndarray:
    """[n_test] predicted classes; k is capped at the training set's size."""
    if k < 1 or temperature <= 0:
        raise ValueError(f"kNN needs k ≥ 1 and temperature > 0, got k={k}, "
                         f"temperature={temperature}")
    train = _normalize(train_x)
    labels = jnp.asarray(train_y, jnp.int32)
    k = min(k, train.shape[0])
    test = np.asarray(test_x)
    out = [np.asarray(jnp.argmax(_votes(_normalize(test[i:i + chunk]), train, labels, k=k,
                                        num_classes=num_classes, temperature=temperature),
                                 axis=-1))
           for i in range(0, len(test), chunk)]
    return np.concatenate(out) if out else np.zeros((0,), np.int64)


def accuracy(train_x, train_y, test_x, test_y, num_classes: int, **kwargs) -> float:
    """Share of test examples whose kNN prediction is their label."""
    return float(np.mean(predict(train_x, train_y, test_x, num_classes, **kwargs)
                         == np.asarray(test_y)))
