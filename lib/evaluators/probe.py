"""Linear probes on frozen features: softmax regression fitted full-batch, on host arrays.

The small-scale protocol of the SSL papers (background_aug.md §6): features standardised with
the probe's training statistics, then loss = mean CE + l2·‖W‖² (bias not penalised),
minimised by Adam from zeros for a fixed number of full-batch steps. The problem is convex and
the start fixed, so the probe is deterministic. Paper-scale probes (augmented images, SGD over
epochs) are training stages instead (lib.procedure.stage_from with optim.freeze).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class Standardizer:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, floor: float = 1e-6) -> Standardizer:
        f = np.asarray(features, np.float64)
        return cls(f.mean(axis=0), np.maximum(f.std(axis=0), floor))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, np.float64) - self.mean) / self.std).astype(np.float32)


def objective(params: dict, features, labels, l2: float):
    logits = features @ params["w"] + params["b"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return ce + l2 * jnp.sum(params["w"] ** 2)


def fit_softmax(features: np.ndarray, labels: np.ndarray, num_classes: int, *, steps: int,
                lr: float, l2: float) -> dict:
    """{'w': [D, K], 'b': [K]} after `steps` full-batch Adam steps from zeros."""
    x = jnp.asarray(features, jnp.float32)
    y = jnp.asarray(labels, jnp.int32)
    params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros(num_classes)}
    tx = optax.adam(lr)

    @jax.jit
    def run(params):
        def step(carry, _):
            params, opt_state = carry
            grads = jax.grad(objective)(params, x, y, l2)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None
        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), length=steps)
        return params

    return jax.device_get(run(params))


def accuracy(params: dict, features: np.ndarray, labels: np.ndarray) -> float:
    logits = np.asarray(features, np.float32) @ params["w"] + params["b"]
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))
