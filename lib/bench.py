"""Throughput benchmarks, printed as JSON (never part of the test suite).

    python -m lib.bench [--steps 20] [--batch 128] [--models 20,56] [--only a,b]

- train-step images/s and compile time of CIFAR ResNets at batch 128 on 32×32 (synthetic
  inputs: the step's cost does not depend on pixel values);
- the trainer's overhead: `lib.train`'s loop (data pipeline, global-array assembly, on-device
  metric collection, logging) against a bare loop of the same jitted step over batches already
  on device. Target ≤ 2 %;
- the train-step time of one config as 1 process × 8 devices and as 2 processes × 4 devices
  (jax.distributed on 127.0.0.1, CPU devices: the cost of crossing processes);
- checkpoint save and restore time of a ResNet-50-sized train state (parameters, momentum, BN
  statistics), synchronous and asynchronous;
- the train step with pruning masks against the dense step (target ≤ 5 %), and the host work
  of one IMP level (magnitude ranking, mask file) on ResNet-20 state;
- the train step carrying an EMA copy of the model (updated every step) and a 65,536 × 128
  FIFO queue (a push every step) against the plain step, on ResNet-18 (target ≤ 5 %): what
  MoCo / BYOL pay for their state, without their extra forward passes;
- one MoCo v2 step and one SwAV multi-crop step (with their on-device colour recipes) in
  records/s against the supervised step of the same ResNet-18 (`--only ssl_steps`);
- PGD-10 (L∞, random start) throughput in images/s on a CIFAR ResNet at batch 128, and the
  clean forward pass for reference;
- the Joslim step (full width + 2 sampled + the smallest sub-network) against the plain step
  of the slimmable ResNet, and a 0.42-width sub-network masked against sliced
  (`--only slimmable`);
- the invariance measurement (130 transforms of each image through ResNet-18's GAP) batched
  in one jitted call per batch against a loop over transforms (`--only invariance --size S`);
- the reservoir paper's train step in target tokens/s per encoder type (regular, FFN, T,
  BiGRU and light-conv reservoirs, LayerDrop, backskipped), and the backward-pass saving of
  reservoir and backskipped layers against the regular encoder (`--only reservoir`);
- where the step's time goes: XLA's per-op profile of the ResNet train step, and each
  ResNet-20 convolution's forward, input and weight gradient alone (lib.bench_ops).

    python -m lib.bench --suite gpu [--tiny] [--budget 360] [--steps 20]

the accelerator suite (lib.bench_gpu): ResNet-50 images/s, ViT-B/16 MFU, the compile time
cold and from the persistent cache, and the papers' paper-scale train steps, in bfloat16.

    python -m lib.bench --compare torch [--steps 10 --rounds 3]

times ResNet-20 in our train step against a plain PyTorch loop of our own (lib.bench_torch,
the [bench] extra), all parameters and BN-only, on 1 core and on all cores, and prints ratios.
Our step runs twice: as configured (model.conv_weight_grad=auto) and with XLA's own
convolution weight gradient (xla), in the same alternating rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
from etils import epath
from flax import nnx

from configs import base
from lib import (
    bench_ops,
    bench_torch,
    checkpoint,
    data,
    distributed,
    losses,
    metrics,
    models,
    precision,
    runinfo,
    sharding,
    sparsity,
    train,
)
from lib import config as config_lib
from lib import task as task_lib
from lib.evaluators import adversarial
from lib.models import state as model_state


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


def say(message: str) -> None:
    """Progress on stderr: stdout carries the JSON."""
    print(message, file=sys.stderr, flush=True)


def _block(tree):
    jax.block_until_ready(tree)
    return tree


SYNTHETIC_CIFAR = data.DatasetInfo("synthetic_cifar", (32, 32, 3), 10, 50_000, 10_000)


def synthetic_batch(info: data.DatasetInfo, batch: int) -> dict:
    """Images of info's shape, or info's view groups [B, n, S, S, C], pixels in [0, 1]."""
    rng = np.random.default_rng(0)
    c = info.image_shape[-1]
    arrays = {"label": rng.integers(0, 10, size=(batch,)).astype(np.int32)}
    if info.views:
        arrays["views"] = [{"image": rng.uniform(size=(batch, n, side, side, c))
                            .astype(np.float32)} for n, side in info.views]
    else:
        arrays["image"] = rng.uniform(size=(batch, *info.image_shape)).astype(np.float32)
    return arrays


def token_batch(info: data.DatasetInfo, batch: int, length: int) -> dict:
    """Full-length random token rows for every feature of a token dataset (ids ≥ 3, so no
    padding): the step's cost is that of batch × length tokens per feature."""
    rng = np.random.default_rng(0)
    rows = {k: rng.integers(3, info.vocab_size, size=(batch, length)).astype(np.int32)
            for k in info.keys}
    return {**rows, "mask": np.ones(batch, np.float32), "index": np.arange(batch, dtype=np.int32)}


def compiled_step(setup: train.Setup, batch: int, arrays: dict | None = None):
    """(compiled step, device state, device batch, compile seconds) on synthetic inputs of
    setup.info's shape (32×32×3 unless a benchmark says otherwise), or on `arrays`."""
    step = jax.jit(lambda s, b: train.train_step(setup, s, b), donate_argnums=0)
    device_batch = jax.device_put(synthetic_batch(setup.info, batch) if arrays is None
                                  else arrays)
    state = jax.device_put(setup.init_state)
    t0 = time.perf_counter()
    compiled = step.lower(state, device_batch).compile()
    return compiled, state, device_batch, time.perf_counter() - t0


def step_throughput(depth: int, batch: int, steps: int) -> dict:
    """Images/s of the jitted train step on 32×32×3 inputs, and its compile time."""
    setup = train.build(_config(depth, batch, steps), info=SYNTHETIC_CIFAR)
    compiled, state, device_batch, compile_s = compiled_step(setup, batch)
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


def _magnitude_masks(setup: train.Setup, fraction: float) -> dict:
    names = sparsity.prunable_names(setup.roles)
    params = jax.device_get(setup.init_state["params"])
    return sparsity.magnitude_prune(params, sparsity.dense(setup.param_shapes(), names), fraction)


def losses_then_timed(compiled, state, device_batch, compared: int, steps: int) -> dict:
    """The losses of the first `compared` steps (to compare precisions from the same start),
    then `steps` timed steps: the GPU checks' measurement. Peak memory is the device's own
    statistic (0 where the backend keeps none, as the CPU)."""
    losses = []
    for _ in range(compared):
        state, step_metrics = compiled(state, device_batch)
        losses.append(float(step_metrics["loss"]))
    t0 = time.perf_counter()
    for _ in range(steps):
        state, step_metrics = compiled(state, device_batch)
    jax.block_until_ready(step_metrics)
    elapsed = time.perf_counter() - t0
    memory = jax.local_devices()[0].memory_stats() or {}
    return {"losses": losses, "seconds": elapsed,
            "peak_memory_gib": round(memory.get("peak_bytes_in_use", 0) / 2**30, 2)}


def _jax_runner(setup: train.Setup, batch: int, arrays: dict | None = None):
    """A function(steps) -> seconds running the compiled train step `steps` times."""
    compiled, state, device_batch, _ = compiled_step(setup, batch, arrays)
    holder = [_block(compiled(state, device_batch))[0]]

    def run(steps: int) -> float:
        state = holder[0]
        t0 = time.perf_counter()
        for _ in range(steps):
            state, m = compiled(state, device_batch)
        _block((state, m))
        holder[0] = state
        return time.perf_counter() - t0

    return run


def _alternate(runners: dict, steps: int, rounds: int) -> list[float]:
    """Median seconds of `steps` steps per runner, over `rounds` rounds that alternate between
    the runners (so drifts in machine speed hit all of them alike). Each round starts with one
    untimed step, which absorbs the previous runner's threads winding down."""
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            run(1)
            times[name].append(run(steps))
    return [float(np.median(times[name])) for name in runners]


def _alternating_rounds(setups: dict, batch: int, steps: int, rounds: int) -> list[float]:
    """`_alternate` over the train steps of `setups` on synthetic 32×32×3 batches."""
    return _alternate({name: _jax_runner(s, batch) for name, s in setups.items()}, steps, rounds)


def masked_step_overhead(depth: int, batch: int, steps: int, rounds: int = 3) -> dict:
    """The train step with pruning masks (80 % of every kernel pruned, global magnitude)
    against the same step without masks: medians of `rounds` alternating rounds. Target ≤ 5 %.
    """
    config = _config(depth, batch, steps)
    dense = train.build(config, info=SYNTHETIC_CIFAR)
    with tempfile.TemporaryDirectory() as tmp:
        sparsity.save(f"{tmp}/mask.npz", _magnitude_masks(dense, 0.8))
        config.sparsity.mask = f"{tmp}/mask.npz"
        masked = train.build(config, info=SYNTHETIC_CIFAR)
    dense_s, masked_s = _alternating_rounds({"dense": dense, "masked": masked}, batch, steps,
                                            rounds)
    return {"model": f"cifar_resnet_{depth}", "batch": batch, "pruned": 0.8,
            "steps_per_round": steps, "rounds": rounds,
            "dense_step_ms": round(1000 * dense_s / steps, 2),
            "masked_step_ms": round(1000 * masked_s / steps, 2),
            "overhead_pct": round(100 * (masked_s - dense_s) / dense_s, 2), "target_pct": 5.0}


QUEUE_ROWS, QUEUE_DIM = 65_536, 128


class _CarriesState(nnx.Module):
    """A classifier plus what MoCo / BYOL carry: an EMA copy of it and a key queue."""

    def __init__(self, net: nnx.Module):
        self.net = net
        self.target = model_state.ema_copy(net)
        self.queue = model_state.FIFOQueue(QUEUE_ROWS, QUEUE_DIM)

    def __call__(self, images, *, train: bool):
        return self.net(images, train=train)


class CarryingTask(task_lib.Classification):
    """Classification whose step also pushes the batch's (padded) logits to the queue and moves
    the EMA target: the state-carrying cost alone."""

    def build_model(self, config, info, rngs):
        return _CarriesState(models.build(config.model, num_classes=info.num_classes,
                                          in_channels=info.image_shape[-1], rngs=rngs))

    def start(self, model):
        model_state.copy_into(model.target, model.net)

    def train_loss(self, model, batch, rng, step):
        del rng, step
        logits = model(batch["image"], train=True)
        keys = jax.lax.stop_gradient(logits)
        model.queue.push(jax.numpy.pad(keys, ((0, 0), (0, QUEUE_DIM - keys.shape[-1]))))
        loss = losses.softmax_cross_entropy(logits, batch["label"]).mean()
        return loss, {"loss": loss}

    def update_state(self, model, step):
        model_state.ema_update(model.target, model.net, 0.99)


def state_carrying_overhead(batch: int, steps: int, rounds: int = 3) -> dict:
    """ResNet-18 (ImageNet stem, 32×32×3 synthetic) step with and without an EMA target and a
    queue: medians of `rounds` alternating rounds. Target ≤ 5 %."""
    config = _config(18, batch, steps)
    config.model.name, config.model.width = "imagenet_resnet", 64
    plain = train.build(config, info=SYNTHETIC_CIFAR)
    config.task = "lib.bench:CarryingTask"
    carrying = train.build(config, info=SYNTHETIC_CIFAR)
    plain_s, carrying_s = _alternating_rounds({"plain": plain, "carrying": carrying}, batch,
                                              steps, rounds)
    return {"model": "imagenet_resnet_18 (32×32)", "batch": batch,
            "queue": f"{QUEUE_ROWS}×{QUEUE_DIM}", "ema_decay": 0.99,
            "steps_per_round": steps, "rounds": rounds,
            "plain_step_ms": round(1000 * plain_s / steps, 2),
            "carrying_step_ms": round(1000 * carrying_s / steps, 2),
            "overhead_pct": round(100 * (carrying_s - plain_s) / plain_s, 2), "target_pct": 5.0}


SSL_METHODS = {  # the paper recipes' structure at 32² (background_aug.md §2), ResNet-18 widths
    "mocov2": ({"task": "lib.ssl.moco:MoCo", "data.views": (2,), "data.view_sizes": (32,),
                "ssl.queue_size": 4096, "ssl.temperature": 0.2, "ssl.color": "mocov2",
                "model.bn_group_size": 32}, ((2, 32),)),
    "swav": ({"task": "lib.ssl.swav:SwAV", "data.views": (2, 6), "data.view_sizes": (32, 16),
              "data.view_min_scale": (0.14, 0.05), "data.view_max_scale": (1.0, 0.14),
              "ssl.prototypes": 300, "ssl.queue_size": 0, "ssl.color": "swav",
              "ssl.projector_batchnorm": True}, ((2, 32), (6, 16))),
}


def ssl_step_throughput(batch: int, steps: int, rounds: int = 3) -> dict:
    """Records (images before augmentation) per second of one MoCo v2 step (2 views of 32²,
    a 4,096-key queue, BatchNorm over groups of 32, its colour recipe on device) and one SwAV
    multi-crop step (2 × 32² + 6 × 16², 300 prototypes, Sinkhorn 3 × ε 0.05) against the
    supervised step of the same ResNet-18 (ImageNet stem) on 32² images: medians of
    `rounds` alternating rounds on synthetic pixels."""
    config = _config(18, batch, steps)
    config.model.name, config.model.width = "imagenet_resnet", 64
    setups = {"supervised": train.build(config, info=SYNTHETIC_CIFAR)}
    for name, (changes, views) in SSL_METHODS.items():
        ssl = config_lib.updated(config, {
            "data.augment": "views", "data.normalization": "none",
            "ssl.input_normalization": "cifar10", "ssl.projector_widths": (512, 128),
            **changes})
        setups[name] = train.build(ssl, info=dataclasses.replace(SYNTHETIC_CIFAR,
                                                                 views=views))
    seconds = dict(zip(setups, _alternating_rounds(setups, batch, steps, rounds)))
    out = {"model": "imagenet_resnet_18 (32×32)", "batch": batch, "steps_per_round": steps,
           "rounds": rounds}
    for name, s in seconds.items():
        out[f"{name}_records_per_s"] = round(batch * steps / s, 1)
    for name in SSL_METHODS:
        out[f"{name}_vs_supervised"] = round(seconds["supervised"] / seconds[name], 3)
    return out


def imp_level_cost(depth: int, rounds: int = 3) -> dict:
    """Host-side work one IMP level adds to its training run, on ResNet-`depth` state: the
    global magnitude ranking over every kernel (20 % of the remaining pruned) and the mask
    file written and read back. Medians of `rounds`."""
    setup = train.build(_config(depth, 128, 1), info=SYNTHETIC_CIFAR)
    times = {"prune_s": [], "mask_write_read_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            t0 = time.perf_counter()
            masks = _magnitude_masks(setup, 0.2)
            times["prune_s"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sparsity.save(f"{tmp}/mask.npz", masks)
            sparsity.load(f"{tmp}/mask.npz", setup.param_shapes())
            times["mask_write_read_s"].append(time.perf_counter() - t0)
    return {"model": f"cifar_resnet_{depth}",
            "prunable_weights": int(sum(m.size for m in masks.values())),
            **{k: round(float(np.median(v)), 4) for k, v in times.items()}}


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
        preemption = distributed.PreemptionWatch()
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
                                       writer, preemption, {}, metrics.TrainClock(0.0),
                                       train.CompileStats()))
            looped.append(time.perf_counter() - t0)
        preemption.close()
        ckpt.close()
        writer.close()
    bare_s, trainer_s = float(np.median(bare)), float(np.median(looped))
    return {"model": f"cifar_resnet_{depth}", "batch": batch, "input": "fashion_mnist 28x28x1",
            "steps_per_round": steps, "rounds": rounds,
            "bare_s": [round(t, 3) for t in bare], "trainer_s": [round(t, 3) for t in looped],
            "overhead_pct": round(100 * (trainer_s - bare_s) / bare_s, 2), "target_pct": 2.0}


def _topology_worker(spec: str) -> None:
    """One process of `topology_step_time`: times the train step; process 0 prints JSON."""
    address, *numbers = spec.split(",")
    processes, process_id, depth, batch, steps = map(int, numbers)
    if processes > 1:
        distributed.initialize(distributed.Topology("bench", address, processes, process_id))
    trainer = train.Trainer(_config(depth, batch, steps))
    it = trainer.train_batches()
    batches = [sharding.global_batch(next(it), trainer.batch_sharding) for _ in range(steps)]
    state = trainer.initial_state()
    t0 = time.perf_counter()
    state, m = _block(trainer.train_step(state, batches[0]))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in batches:
        state, m = trainer.train_step(state, b)
    _block((state, m))
    elapsed = time.perf_counter() - t0
    if jax.process_index() == 0:
        print(json.dumps({"step_ms": round(1000 * elapsed / steps, 1),
                          "compile_s": round(compile_s, 2)}), flush=True)


def topology_step_time(depth: int, batch: int, steps: int) -> dict:
    """Step time of the same config as 1 process × 8 CPU devices and 2 processes × 4."""
    out = {"model": f"cifar_resnet_{depth}", "batch": batch, "input": "fashion_mnist 28x28x1"}
    for processes, devices in ((1, 8), (2, 4)):
        address = distributed.local_coordinator_address()
        env = {**os.environ, "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        procs = [subprocess.Popen(
            [sys.executable, "-m", "lib.bench", "--topology_worker",
             f"{address},{processes},{i},{depth},{batch},{steps}"],
            env=env, stdout=subprocess.PIPE, text=True) for i in range(processes)]
        try:
            lines = [p.communicate(timeout=900)[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        if any(p.returncode for p in procs):
            raise RuntimeError(f"topology {processes}x{devices} failed: {lines}")
        out[f"{processes}x{devices}"] = json.loads(lines[0].strip().splitlines()[-1])
    out["2x4_vs_1x8"] = round(out["2x4"]["step_ms"] / out["1x8"]["step_ms"], 3)
    return out


def checkpoint_time(rounds: int = 3) -> dict:
    """Save/restore seconds of a ResNet-50 train state (ImageNet shapes, SGD momentum).

    `save_s`: a synchronous save to local disk, its checksums included; `async_blocking_s`: what
    an asynchronous save costs the train loop before it continues; `restore_s`: a restore onto
    the same shardings, the check of its checksums included; `verify_s`: that check alone.
    Medians of `rounds`.
    """
    c = base.get_config()
    c.model.name, c.model.depth, c.model.width = "imagenet_resnet", 50, 64
    setup = train.build(c, info=data.DatasetInfo("synthetic_imagenet", (224, 224, 3), 1000,
                                                 1_281_167, 50_000))
    state = _block(jax.device_put(setup.init_state))
    size = sum(x.nbytes for x in jax.tree.leaves(state))
    times = {"save_s": [], "async_blocking_s": [], "restore_s": [], "verify_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode, async_save in (("save_s", False), ("async_blocking_s", True)):
                ckpt = checkpoint.Checkpointer(f"{tmp}/{mode}{r}", keep=1, async_save=async_save)
                t0 = time.perf_counter()
                ckpt.save(1, state, {"next_index": 0})
                times[mode].append(time.perf_counter() - t0)
                ckpt.close()
            ckpt = checkpoint.Checkpointer(f"{tmp}/save_s{r}", keep=1, async_save=False)
            t0 = time.perf_counter()
            _block(ckpt.restore(1, state))
            times["restore_s"].append(time.perf_counter() - t0)
            ckpt.close()
            t0 = time.perf_counter()
            if checkpoint.verify(epath.Path(f"{tmp}/save_s{r}/1")) != (True, ""):
                raise RuntimeError("a checkpoint just saved fails its checksums")
            times["verify_s"].append(time.perf_counter() - t0)
    return {"state": "imagenet_resnet_50 params + momentum + BN statistics",
            "params": int(sum(np.prod(s) for s in setup.param_shapes().values())),
            "megabytes": round(size / 2**20, 1), "rounds": rounds,
            **{k: round(float(np.median(v)), 3) for k, v in times.items()}}


def step_profile(depth: int, batch: int) -> dict:
    """XLA's per-op profile of the CIFAR ResNet train step (lib.bench_ops.profile_step)."""
    compiled, state, device_batch, _ = compiled_step(
        train.build(_config(depth, batch, 1), info=SYNTHETIC_CIFAR), batch)
    return {"model": f"cifar_resnet_{depth}", "batch": batch,
            **bench_ops.profile_step(compiled, state, device_batch)}


COMPARE_SETTINGS = ("all", "bn_only")


def _compare_worker(spec: str) -> None:
    """One thread setting of `compare_torch`, on the cores this process may use: our train step
    and the PyTorch loop, for each trainable setting, in alternating rounds. Prints JSON."""
    steps, rounds, batch = map(int, spec.split(","))
    threads = len(os.sched_getaffinity(0))
    runners = {}
    for trainable in COMPARE_SETTINGS:
        for name, weight_grad in (("ours", "auto"), ("ours_xla", "xla")):
            c = _config(20, batch, steps)
            c.optim.trainable = trainable
            c.model.conv_weight_grad = weight_grad
            runners[f"{name}/{trainable}"] = _jax_runner(train.build(c, info=SYNTHETIC_CIFAR),
                                                         batch)
        runners[f"torch/{trainable}"] = bench_torch.TrainLoop(trainable, batch, threads).seconds
    seconds = _alternate(runners, steps, rounds)
    print(json.dumps({name: round(batch * steps / s, 1) for name, s in zip(runners, seconds)}))


def compare_torch(batch: int, steps: int, rounds: int) -> dict:
    """Images/s of ResNet-20 in our train step and in a plain PyTorch loop (lib.bench_torch),
    all parameters and BN-only, on 1 core and on all the cores this process may use (worker
    processes pinned with sched_setaffinity; PyTorch gets as many threads as cores). The ratio
    is ours / PyTorch, measured in one run: machines of one kind differ too much to compare
    figures taken on different ones."""
    torch_version = bench_torch.version()  # the error naming the [bench] extra comes first
    cores = sorted(os.sched_getaffinity(0))
    out = {"model": "cifar_resnet_20 W=16, projection shortcuts, batch 32x32x3 synthetic",
           "batch": batch, "steps_per_round": steps, "rounds": rounds,
           "jax": jax.__version__, "torch": torch_version, "commit": runinfo.git_commit(),
           "xla_flags": os.environ.get("XLA_FLAGS", ""), "rows": []}
    for used in ([cores[0]], cores):
        result = subprocess.run(
            [sys.executable, "-m", "lib.bench", "--compare_worker", f"{steps},{rounds},{batch}"],
            preexec_fn=lambda used=used: os.sched_setaffinity(0, used),
            stdout=subprocess.PIPE, text=True, check=True)
        speeds = json.loads(result.stdout.strip().splitlines()[-1])
        for trainable in COMPARE_SETTINGS:
            ours, theirs = speeds[f"ours/{trainable}"], speeds[f"torch/{trainable}"]
            xla = speeds[f"ours_xla/{trainable}"]
            out["rows"].append({"trainable": trainable, "cores": len(used),
                                "ours_images_per_s": ours,
                                "ours_xla_weight_grad_images_per_s": xla,
                                "torch_images_per_s": theirs,
                                "ratio": round(ours / theirs, 3)})
    return out


def print_comparison(report: dict) -> None:
    """The side-by-side table, for the README and issue notes."""
    print(f"ResNet-20, batch {report['batch']}, jax {report['jax']} vs torch {report['torch']}, "
          f"commit {report['commit'][:12]}, XLA_FLAGS={report['xla_flags'] or '(none)'}")
    print("| trainable | cores | ours (images/s) | ours, XLA's weight gradient | "
          "PyTorch (images/s) | ratio |")
    print("|---|---|---|---|---|---|")
    for r in report["rows"]:
        print(f"| {r['trainable']} | {r['cores']} | {r['ours_images_per_s']} | "
              f"{r['ours_xla_weight_grad_images_per_s']} | {r['torch_images_per_s']} | "
              f"{r['ratio']:.2f} |")


def pgd_throughput(depth: int, batch: int, steps: int, pgd_steps: int = 10) -> dict:
    """Images/s of a jitted PGD-`pgd_steps` attack (each step a forward and an input
    gradient) against eval-mode inference, on synthetic 32×32×3 pixels in [0, 1]."""
    setup = train.build(_config(depth, batch, steps), SYNTHETIC_CIFAR)
    model = setup.merge(jax.device_put(setup.init_state["params"]),
                        jax.device_put(setup.init_state["batch_stats"]))

    def loss(x, y):
        return losses.softmax_cross_entropy(model(x, train=False), y).mean()

    rng = np.random.default_rng(0)
    x = jax.device_put(rng.uniform(size=(batch, 32, 32, 3)).astype(np.float32))
    y = jax.device_put(rng.integers(0, 10, size=(batch,)).astype(np.int32))
    attack = jax.jit(lambda x, y, key: adversarial.pgd(loss, x, y, 8 / 255, pgd_steps,
                                                       2 / 255, key=key))
    forward = jax.jit(lambda x: model(x, train=False))
    out = {"depth": depth, "batch": batch, "pgd_steps": pgd_steps}
    for name, fn in (("pgd", lambda: attack(x, y, jax.random.key(0))),
                     ("forward", lambda: forward(x))):
        _block(fn())  # compile
        t0 = time.perf_counter()
        for _ in range(steps):
            _block(fn())
        out[f"{name}_images_per_s"] = round(batch * steps / (time.perf_counter() - t0), 1)
    return out


def _steps_per_s(fn, args, steps: int) -> float:
    out = _block(fn(*args))  # compile
    t0 = time.perf_counter()
    for _ in range(steps):
        out = fn(*args)
    _block(out)
    del out
    return steps / (time.perf_counter() - t0)


def slimmable_steps(depth: int, batch: int, steps: int) -> dict:
    """The Joslim step (the full width, 2 sampled sub-networks and the smallest by in-place
    distillation: experiments.joslim.task) against the plain step of the same slimmable CIFAR
    ResNet (full width only), in steps/s; and one sub-network at width 0.42 trained masked (the
    full convolutions, inactive channels zeroed) against sliced (a narrow network of its own),
    as forward + backward passes per second."""
    from lib.models import slimmable
    from lib.slim import masking, space

    config = _config(depth, batch, steps)
    config.model.name, config.model.stem = "slim_cifar_resnet", "1x1"
    plain = train.build(config, info=SYNTHETIC_CIFAR)
    config = config_lib.add_sections(config, "experiments.joslim.config")
    config.task = "experiments.joslim.task:Joslim"
    joslim = train.build(config, info=SYNTHETIC_CIFAR)
    out = {"model": f"slim_cifar_resnet_{depth}", "batch": batch, "input": "32x32x3"}
    for name, setup in (("plain", plain), ("joslim", joslim)):
        compiled, state, device_batch, _ = compiled_step(setup, batch)
        state, m = _block(compiled(state, device_batch))  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            state, m = compiled(state, device_batch)
        _block(m)
        out[f"{name}_steps_per_s"] = round(steps / (time.perf_counter() - t0), 3)
    out["joslim_vs_plain"] = round(out["plain_steps_per_s"] / out["joslim_steps_per_s"], 2)

    arch = space.cifar_resnet(depth, 10)
    channels = arch.space.decode(arch.space.smallest())
    full = slimmable.SlimCifarResNet(depth, num_classes=10, rngs=nnx.Rngs(0))
    narrow = slimmable.SlimCifarResNet(depth, num_classes=10, channels={
        k: channels[k] for k in full.channels}, rngs=nnx.Rngs(0))
    masks = {k: jax.device_put(v) for k, v in masking.masks(
        {k: channels[k] for k in full.channels}, full.channels).items()}
    x = jax.device_put(synthetic_batch(SYNTHETIC_CIFAR, batch)["image"])

    def grad_fn(model, **kwargs):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(p, r):
            m = nnx.merge(graphdef, p, r)
            return m(x, train=True, **kwargs).sum()

        return jax.jit(jax.grad(loss)), (nnx.as_pure(params), nnx.as_pure(rest))

    for name, (fn, args) in (("masked", grad_fn(full, masks=masks)),
                             ("sliced", grad_fn(narrow))):
        out[f"{name}_0.42_steps_per_s"] = round(_steps_per_s(fn, args, steps), 3)
    out["masked_vs_sliced"] = round(out["sliced_0.42_steps_per_s"]
                                    / out["masked_0.42_steps_per_s"], 2)
    return out


RESNET18_GFLOPS_224 = 1.82  # multiply-adds ×2 of one ResNet-18 forward at 224 px (He et al.)


def invariance_throughput(size: int, batch: int, batches: int, chunk: int) -> dict:
    """Images/s of the invariance measurement (invariance.md §4): every lib.perturb kind at
    its 10 magnitudes (130 transforms) of a batch through an ImageNet ResNet-18's GAP, batched
    (lib.features.transformed: one jitted call per batch, `chunk` transforms per model call)
    against a loop of one transform at a time (a jitted transform, the jitted model, a host
    fetch each), at `size` px on synthetic pixels. Counts transformed images (130 per image)."""
    import types

    from lib import features, perturb

    config = _config(20, batch, 1)
    config.model.name, config.model.depth, config.model.width = "imagenet_resnet", 18, 64
    info = data.DatasetInfo("synthetic", (size, size, 3), 1000, 1, 1)
    setup = train.build(config, info)
    mesh = sharding.make_mesh(config.mesh)
    trainer = types.SimpleNamespace(setup=setup, batch_sharding=sharding.batch_sharding(mesh))
    state = jax.device_put(setup.init_state)
    names = [(kind, k) for kind in perturb.KINDS for k in range(10)]
    transforms = {f"{kind}_k{k}": (lambda x, kind=kind, k=k: perturb.perturb(x, kind, k))
                  for kind, k in names}
    rng = np.random.default_rng(0)
    host = [{"image": rng.uniform(size=(batch, size, size, 3)).astype(np.float32),
             "mask": np.ones(batch, np.float32)} for _ in range(batches)]

    def embed(model, b):
        return model(b["image"], train=False, features=True)[1]["pool"]

    def batched(bs):
        for z in features.transformed(trainer, state, embed, transforms, bs, chunk):
            assert z.shape[:2] == (len(names), batch)

    model_call = jax.jit(lambda st, x: embed(setup.model(st), {"image": x}))
    perturb_calls = {n: jax.jit(fn) for n, fn in transforms.items()}

    def looped(bs):
        for b in bs:
            x = jax.device_put(b["image"])
            for name in transforms:
                np.asarray(jax.device_get(model_call(state, perturb_calls[name](x))))

    out = {"model": "imagenet_resnet18 GAP", "input": f"{size}x{size}x3", "batch": batch,
           "transforms": len(names), "chunk": chunk}
    for label, fn in (("batched", batched), ("loop", looped)):
        t0 = time.perf_counter()
        fn(host[:1])  # compiles, on one batch
        out[f"{label}_first_batch_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        fn(host)
        out[f"{label}_images_per_s"] = round(
            len(names) * batch * batches / (time.perf_counter() - t0), 1)
    out["speedup"] = round(out["batched_images_per_s"] / out["loop_images_per_s"], 2)
    gflop = RESNET18_GFLOPS_224 * (size / 224) ** 2
    out["cpu_gflop_per_s"] = round(out["batched_images_per_s"] * gflop, 1)
    out["paper_forwards"] = 9_600 * (len(names) + 1)  # spec §3: 300 batches of 32, + clean
    out["paper_tflop"] = round(out["paper_forwards"] * RESNET18_GFLOPS_224 / 1e3, 1)
    return out


RESERVOIR_ENCODERS = ("LLLLLLL", "LLLL", "LFLFLFL", "LTLTLTL", "LGLGLGL", "LCLCLCL",
                      "LDLDLDL", "LFLFLFL+identity", "LTLTLTL+identity")


def reservoir_steps(batch: int, steps: int, rounds: int, size: str = "synthetic") -> dict:
    """Target tokens/s of the reservoir paper's train step per encoder type (spec §6's model,
    or `size`='iwslt': d 512, FFN 1024, 4 heads, 2 decoder layers, 64 tokens), alternating
    rounds; and the backward-pass saving: each 7-layer encoder's step time against the
    all-trainable LLLLLLL's, backskipped ones against their exact-gradient twins."""
    file = epath.Path(__file__).parent.parent / "experiments/reservoir/configs/synthetic.py"
    setups, length = {}, 16
    for name in RESERVOIR_ENCODERS:
        encoder, _, skip = name.partition("+")
        c = config_lib.load_file(file, f"encoder={encoder},backskip={skip or 'none'}")
        if size == "iwslt":
            c.model.width, c.model.num_heads, c.model.mlp_dim = 512, 4, 1024
            c.model.decoder_layers, c.data.max_length = 2, 64
        length = c.data.max_length
        setups[name] = train.build(c)
    arrays = token_batch(next(iter(setups.values())).info, batch, length)
    seconds = _alternate({n: _jax_runner(s, batch, arrays) for n, s in setups.items()},
                         steps, rounds)
    per_step = dict(zip(setups, (t / steps for t in seconds)))
    regular = per_step["LLLLLLL"]
    return {"size": size, "batch": batch, "tokens_per_row": length,
            "target_tokens_per_s": {n: round(batch * length / t, 1)
                                    for n, t in per_step.items()},
            "step_ms": {n: round(1000 * t, 2) for n, t in per_step.items()},
            "saving_vs_LLLLLLL": {n: round(1 - t / regular, 4) for n, t in per_step.items()
                                  if n != "LLLLLLL"},
            "backskip_saving": {n: round(1 - per_step[n] / per_step[n.split("+")[0]], 4)
                                for n in per_step if "+" in n},
            "device": jax.devices()[0].device_kind}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the overhead test")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--models", default="20,56", help="CIFAR ResNet depths")
    parser.add_argument("--size", type=int, default=64, help="invariance: image side")
    parser.add_argument("--chunk", type=int, default=10, help="invariance: transforms per "
                        "model call in the batched measurement")
    parser.add_argument("--only", default="", help="comma-separated subset of: train_step, "
                        "trainer_overhead, topology, checkpoint, masked_step, imp_level, "
                        "state_carrying, ssl_steps, pgd, step_profile, conv_ops, invariance, "
                        "slimmable, reservoir")
    parser.add_argument("--compare", choices=["torch"], help="time ResNet-20 in our train step "
                        "against a plain PyTorch loop (needs the [bench] extra) and print ratios")
    parser.add_argument("--suite", choices=["gpu"], help="gpu: the accelerator suite of "
                        "lib.bench_gpu (ResNet-50, ViT-B/16 MFU, compile cache, the papers' "
                        "paper-scale steps), one JSON report")
    parser.add_argument("--tiny", action="store_true", help="--suite gpu at tiny shapes "
                        "(a CPU smoke test)")
    parser.add_argument("--budget", type=float, help="--suite gpu: no section starts that "
                        "would end (at the longest section's time) after this many seconds "
                        "(default 360)")
    parser.add_argument("--compile_worker", help=argparse.SUPPRESS)
    parser.add_argument("--topology_worker", help=argparse.SUPPRESS)
    parser.add_argument("--compare_worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    metrics.quiet_library_logs()
    if (args.tiny or args.budget is not None) and args.suite != "gpu":
        parser.error("--tiny and --budget belong to --suite gpu")
    if args.suite and (args.steps < 1 or (args.budget or 0) < 0):
        parser.error(f"--steps={args.steps} must be ≥ 1 and --budget={args.budget} ≥ 0")
    if args.suite == "gpu" or args.compile_worker:
        precision.guard_cpu_bfloat16("bfloat16")  # before JAX's backend starts
        from lib import bench_gpu  # it builds on this module

        if args.compile_worker:
            return bench_gpu.compile_worker(args.compile_worker)
        return bench_gpu.main(args.tiny, bench_gpu.BUDGET_S if args.budget is None
                              else args.budget, args.steps)
    if args.topology_worker:
        return _topology_worker(args.topology_worker)
    if args.compare_worker:
        return _compare_worker(args.compare_worker)
    if args.compare:
        try:
            report = compare_torch(args.batch, args.steps, args.rounds)
        except bench_torch.MissingExtra as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        print(json.dumps(report, indent=2))
        return print_comparison(report)
    depths = [int(d) for d in args.models.split(",")]
    benches = {
        "train_step": lambda: [step_throughput(d, args.batch, args.steps) for d in depths],
        "trainer_overhead": lambda: trainer_overhead(depths[0], args.batch, args.steps,
                                                     args.rounds),
        "topology": lambda: topology_step_time(depths[0], args.batch, args.steps),
        "checkpoint": lambda: checkpoint_time(args.rounds),
        "masked_step": lambda: masked_step_overhead(depths[0], args.batch, args.steps,
                                                    args.rounds),
        "imp_level": lambda: imp_level_cost(depths[0], args.rounds),
        "state_carrying": lambda: state_carrying_overhead(args.batch, args.steps, args.rounds),
        "ssl_steps": lambda: ssl_step_throughput(args.batch, args.steps, args.rounds),
        "pgd": lambda: pgd_throughput(depths[0], args.batch, max(1, args.steps // 4)),
        "step_profile": lambda: step_profile(depths[0], args.batch),
        "conv_ops": lambda: bench_ops.conv_op_times(args.batch),
        "invariance": lambda: invariance_throughput(args.size, 32, 2, args.chunk),
        "slimmable": lambda: slimmable_steps(depths[0], args.batch, args.steps),
        "reservoir": lambda: reservoir_steps(64, args.steps, args.rounds),
    }
    chosen = args.only.split(",") if args.only else list(benches)
    unknown = set(chosen) - set(benches)
    if unknown:
        parser.error(f"unknown --only {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(benches)}")
    report = {name: benches[name]() for name in chosen}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
