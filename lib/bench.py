"""Throughput benchmarks, printed as JSON (never part of the test suite).

    python -m lib.bench [--steps 20] [--batch 128] [--models 20,56]

- train-step images/s and compile time of CIFAR ResNets at batch 128 on 32×32 (synthetic
  inputs: the step's cost does not depend on pixel values);
- the trainer's overhead: `lib.train`'s loop (data pipeline, global-array assembly, on-device
  metric collection, logging) against a bare loop of the same jitted step over batches already
  on device. Target ≤ 2 %.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import jax
import numpy as np

from configs import base
from lib import checkpoint, data, metrics, sharding, train


def _config(depth: int, batch: int, steps: int, dataset: str = "fashion_mnist"):
    c = base.get_config()
    c.model.name = "cifar_resnet"
    c.model.depth = depth
    c.data.name = dataset
    c.data.batch_size = batch
    c.data.eval_batch_size = batch
    c.total_steps = steps
    c.log_every = max(1, steps // 4)
    c.checkpoint_every = 0
    c.progress = False
    return c


def _block(tree):
    jax.block_until_ready(tree)
    return tree


def step_throughput(depth: int, batch: int, steps: int) -> dict:
    """Images/s of the jitted train step on 32×32×3 inputs, and its compile time."""
    setup = train.build(_config(depth, batch, steps),
                        info=data.DatasetInfo("synthetic_cifar", (32, 32, 3), 10, 50_000, 10_000))
    step = jax.jit(lambda s, b: train.train_step(setup, s, b), donate_argnums=0)
    rng = np.random.default_rng(0)
    batch_arrays = {"image": rng.normal(size=(batch, 32, 32, 3)).astype(np.float32),
                    "label": rng.integers(0, 10, size=(batch,)).astype(np.int32)}
    device_batch = jax.device_put(batch_arrays)
    state = jax.device_put(setup.init_state)
    t0 = time.perf_counter()
    compiled = step.lower(state, device_batch).compile()
    compile_s = time.perf_counter() - t0
    state, m = _block(compiled(state, device_batch))  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = compiled(state, device_batch)
    _block(m)
    elapsed = time.perf_counter() - t0
    return {"model": f"cifar_resnet_{depth}", "batch": batch, "input": "32x32x3",
            "images_per_s": round(batch * steps / elapsed, 1),
            "step_ms": round(1000 * elapsed / steps, 2), "compile_s": round(compile_s, 2),
            "device": jax.devices()[0].device_kind, "devices": jax.device_count()}


def trainer_overhead(depth: int, batch: int, steps: int, rounds: int = 3) -> dict:
    """lib.train's loop vs a bare loop of the same compiled step, on Fashion-MNIST (28×28).

    `rounds` alternations of `steps` bare steps and `steps` trainer steps; the overhead compares
    the medians, which damps the noise of a shared machine. The trainer's loop reads batches
    through the Grain pipeline, assembles global arrays, sums metrics on device and logs every
    `steps // 2` steps; the bare loop iterates over batches already on device.
    """
    config = _config(depth, batch, steps)
    config.log_every = max(1, steps // 2)
    trainer = train.Trainer(config)
    it = trainer.train_batches()
    state = trainer.initial_state()
    warm = sharding.global_batch(next(it), trainer.batch_sharding)
    state, m = _block(trainer.train_step(state, warm))  # compile outside both timings
    metrics.StepMetrics().add(m, 0)  # and the trainer's on-device metric sum

    bare, looped = [], []
    with tempfile.TemporaryDirectory() as workdir:
        ckpt = checkpoint.Checkpointer(f"{workdir}/checkpoints", keep=1)
        writer = metrics.MetricWriter(workdir)
        for _ in range(rounds):
            batches = _block([sharding.global_batch(next(it), trainer.batch_sharding)
                              for _ in range(steps)])
            t0 = time.perf_counter()
            for b in batches:
                state, m = trainer.train_step(state, b)
            _block((state, m))
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # checkpoint_every=0: the loop itself never saves
            state = _block(train._loop(trainer, state, it, config.total_steps - steps, ckpt,
                                       writer))
            looped.append(time.perf_counter() - t0)
        ckpt.close()
        writer.close()
    bare_s, trainer_s = float(np.median(bare)), float(np.median(looped))
    return {"model": f"cifar_resnet_{depth}", "batch": batch, "input": "fashion_mnist 28x28x1",
            "steps_per_round": steps, "rounds": rounds,
            "bare_s": [round(t, 3) for t in bare], "trainer_s": [round(t, 3) for t in looped],
            "overhead_pct": round(100 * (trainer_s - bare_s) / bare_s, 2), "target_pct": 2.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the overhead test")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--models", default="20,56", help="CIFAR ResNet depths")
    args = parser.parse_args()
    metrics.quiet_library_logs()
    depths = [int(d) for d in args.models.split(",")]
    report = {
        "train_step": [step_throughput(d, args.batch, args.steps) for d in depths],
        "trainer_overhead": trainer_overhead(depths[0], args.batch, args.steps, args.rounds),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
