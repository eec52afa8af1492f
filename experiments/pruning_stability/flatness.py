"""Flatness of a trained network (pruning_stability.md §2, Figure 6).

On the first `flatness.examples` test images, eval-mode BatchNorm, mean cross-entropy, all
parameters (masked weights are 0 and have zero curvature along them):
- the top Hessian eigenvalues, by deflated power iteration (the paper's method: at most
  `iterations` products per eigenvalue, relative tolerance `tolerance`) or by Lanczos with full
  reorthogonalisation; Hessian-vector products are forward-over-reverse (jvp of grad);
- the "gradient covariance trace" (1/n) Σ_i ‖∇θ ℓ_i‖² with per-example gradients (the
  uncentred second moment, as the public code computes it);
- test accuracy and loss at θ + ε·v_j along the top `curve_vectors` unit eigenvectors, for
  `curve_epsilons` values of ε evenly spaced on [−0.4, 0.4] (81: steps of 0.01).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lib import data, losses

METHODS = ("power", "lanczos")


def hvp_fn(loss: Callable, params) -> tuple[Callable, int]:
    """v ↦ H v for the Hessian of `loss` at `params`, on flat vectors; and the dimension."""
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def product(x, v):  # the point is an argument, not a (large) compile-time constant
        return jax.jvp(jax.grad(lambda y: loss(unravel(y))), (x,), (v,))[1]

    return (lambda v: product(flat, v)), flat.size


def power_top(hvp: Callable, dim: int, k: int, iterations: int = 20, tolerance: float = 1e-4,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenvalues (largest first, as found) and unit eigenvectors by power iteration
    with deflation: each new vector is iterated on H − Σ_j λ_j v_j v_jᵀ, stopping after
    `iterations` products or when |λ − λ_prev| ≤ tolerance·|λ|."""
    key = jax.random.key(seed)
    values, vectors = [], []
    for _ in range(k):
        key, sub = jax.random.split(key)
        v = jax.random.normal(sub, (dim,))
        v = v / jnp.linalg.norm(v)
        value = None
        for _ in range(iterations):
            w = hvp(v)
            for lam, u in zip(values, vectors):
                w = w - lam * jnp.dot(u, v) * u
            new = float(jnp.dot(v, w))
            v = w / jnp.linalg.norm(w)
            converged = value is not None and abs(new - value) <= tolerance * abs(new)
            value = new
            if converged:
                break
        values.append(value)
        vectors.append(v)
    return np.asarray(values), np.stack([np.asarray(v) for v in vectors])


def lanczos_top(hvp: Callable, dim: int, k: int, steps: int | None = None, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenvalues (largest first) and unit Ritz vectors from `steps` Lanczos iterations
    (default min(dim, 2k + 20)) with full reorthogonalisation."""
    steps = min(dim, steps or 2 * k + 20)
    v = jax.random.normal(jax.random.key(seed), (dim,))
    basis = [v / jnp.linalg.norm(v)]
    alphas, betas = [], []
    for i in range(steps):
        w = hvp(basis[i])
        alphas.append(float(jnp.dot(basis[i], w)))
        q = jnp.stack(basis)
        w = w - q.T @ (q @ w)
        w = w - q.T @ (q @ w)  # twice is enough (Kahan–Parlett)
        beta = float(jnp.linalg.norm(w))
        if i == steps - 1 or beta < 1e-10:
            break
        betas.append(beta)
        basis.append(w / beta)
    tri = np.diag(alphas) + np.diag(betas[:len(alphas) - 1], 1) + np.diag(
        betas[:len(alphas) - 1], -1)
    values, vectors = np.linalg.eigh(tri)
    top = np.argsort(values)[::-1][:k]
    ritz = vectors[:, top].T @ np.asarray(jnp.stack(basis[:len(alphas)]))
    return values[top], ritz


def gradient_second_moment(example_loss: Callable, params, batch: dict, chunk: int = 32
                           ) -> float:
    """(1/n) Σ_i ‖∇θ ℓ_i‖² over the examples of `batch`, in chunks of per-example gradients."""

    @jax.jit
    def chunk_sum(params, images, labels):
        def norm2(x, y):
            grads = jax.grad(example_loss)(params, x[None], y[None])
            return sum(jnp.sum(g**2) for g in jax.tree.leaves(grads))

        return jnp.sum(jax.vmap(norm2)(images, labels))

    n = batch["image"].shape[0]
    total = sum(float(chunk_sum(params, batch["image"][i:i + chunk],
                                batch["label"][i:i + chunk]))
                for i in range(0, n, chunk))
    return total / n


def first_examples(data_cfg, n: int) -> dict:
    """The first n examples of the eval split (the paper: the first 512 test images)."""
    images, labels = [], []
    for batch in data.eval_batches(data_cfg):
        real = np.asarray(batch["mask"]) > 0
        images.append(np.asarray(batch["image"])[real])
        labels.append(np.asarray(batch["label"])[real])
        if sum(len(x) for x in labels) >= n:
            break
    images, labels = np.concatenate(images)[:n], np.concatenate(labels)[:n]
    if len(labels) < n:
        raise ValueError(f"flatness.examples={n} but the eval split has {len(labels)} examples")
    return {"image": jnp.asarray(images), "label": jnp.asarray(labels)}


def check(cfg) -> None:
    if cfg.method not in METHODS:
        raise ValueError(f"flatness.method={cfg.method!r}; valid choices: {', '.join(METHODS)}")


def measure(setup, state: dict, batch: dict, cfg) -> dict:
    """Top-eigenvalue sum and gradient second moment of a trained state on `batch`."""
    check(cfg)
    params = state["params"]
    batch_stats = jax.tree.map(jnp.asarray, state["batch_stats"])

    def example_loss(params, images, labels):
        logits = setup.merge(params, batch_stats)(images, train=False)
        return losses.softmax_cross_entropy(logits, labels).mean()

    hvp, dim = hvp_fn(lambda p: example_loss(p, batch["image"], batch["label"]), params)
    if cfg.method == "power":
        values, vectors = power_top(hvp, dim, cfg.eigenvalues, cfg.iterations, cfg.tolerance)
    else:
        values, vectors = lanczos_top(hvp, dim, cfg.eigenvalues)
    out = {
        "hessian_top_eigenvalues": [float(v) for v in values],
        "hessian_top_sum": float(np.sum(values)),
        "gradient_covariance_trace": gradient_second_moment(example_loss, params, batch),
        "flatness_examples": int(batch["image"].shape[0]),
    }
    return out, vectors[:cfg.curve_vectors]


def eigenvector_curves(evaluate: Callable, params, vectors: np.ndarray, epsilons) -> dict:
    """Test accuracy and loss at θ + ε·v_j for each unit eigenvector v_j and each ε
    (`evaluate(params) -> {'eval/accuracy', 'eval/loss', …}` over the whole test set)."""
    flat, unravel = ravel_pytree(params)
    curves = {"epsilons": [float(e) for e in epsilons], "accuracy": [], "loss": []}
    for v in vectors:
        results = [evaluate(unravel(flat + eps * jnp.asarray(v, flat.dtype)))
                   for eps in epsilons]
        curves["accuracy"].append([r["eval/accuracy"] for r in results])
        curves["loss"].append([r["eval/loss"] for r in results])
    return curves
