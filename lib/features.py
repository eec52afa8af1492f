"""Features of a trained model over a split, batched and sharded like evaluation: what linear
probes, kNN evaluation, invariance scores and plan2vec's graph read from a frozen encoder."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from lib import sharding


def extract(trainer, state: dict, fn, batches=None) -> dict[str, np.ndarray]:
    """{'features': [N, ...], and every other key of the batches ('label', 'id', …)} over the
    real examples of `batches` (default: the trainer's eval split), in order.

    `fn(model, batch)` returns per-example arrays [B, ...] (e.g. `model(batch["image"],
    train=False, features=True)[1]["pool"]`); it runs jitted on the run's devices with the
    model of `state`, and padding examples are dropped on the host.
    """
    step = jax.jit(lambda st, b: fn(trainer.setup.model(st), b))
    parts: dict[str, list] = {}
    for local in batches if batches is not None else trainer.eval_batches():
        batch = sharding.global_batch(local, trainer.batch_sharding)
        values = {k: v for k, v in batch.items() if k not in ("image", "mask", "views")}
        values["features"] = step(state, batch)
        values["mask"] = batch["mask"]
        if jax.process_count() > 1:
            values = multihost_utils.process_allgather(values, tiled=True)
        values = jax.device_get(values)
        real = np.asarray(values.pop("mask")) > 0
        for k, v in values.items():
            parts.setdefault(k, []).append(np.asarray(v)[real])
    return {k: np.concatenate(v) for k, v in parts.items()}


def transformed(trainer, state: dict, fn, transforms: dict, batches, chunk: int = 1):
    """Per batch of `batches`, the features of every transform of its real examples:
    [T, b, ...] arrays in the order of `transforms` ({name: x -> x'} on device arrays).

    One jitted call per batch applies every transform to the batch's images on device and runs
    `fn(model, batch)` over them, `chunk` transforms at a time (lax.map's batch_size: more is
    faster where memory allows); only features come back to the host. This is how invariance
    scores are measured: 13 transformations × 10 magnitudes over thousands of images.
    """
    names = list(transforms)

    def step(st, batch):
        model = trainer.setup.model(st)
        stacked = jnp.stack([transforms[n](batch["image"]) for n in names])
        return jax.lax.map(lambda x: fn(model, {**batch, "image": x}), stacked,
                           batch_size=min(chunk, len(names)))

    step = jax.jit(step)
    for local in batches:
        batch = sharding.global_batch(local, trainer.batch_sharding)
        values = {"features": step(state, batch), "mask": batch["mask"]}
        if jax.process_count() > 1:
            values = multihost_utils.process_allgather(values, tiled=True)
        values = jax.device_get(values)
        yield np.asarray(values["features"])[:, np.asarray(values["mask"]) > 0]
