"""THE trainer: `run(config, workdir) -> results`, resumable (DESIGN.md rules 2, 3, 5-7, 9).

A run is (config, workdir). The workdir receives config.json, run.json, metrics.jsonl, orbax
checkpoints and, at the end, results.json. Calling `run` again on the same workdir resumes from
the latest checkpoint (train state and data order), or returns the stored results if finished.

The train step is a pure function of plain arrays: the model is split once into a static graph
and flat parameter / BN-statistics dicts, and merged inside the jitted step. Only the trainable
parameters are differentiated, so frozen layers cost no weight-gradient and stay bit-identical.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx, traverse_util

from lib import checkpoint, config as config_lib, data, metrics, models, optim, runinfo, sharding
from lib import task as task_lib

log = logging.getLogger("lib.train")


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN/inf; the last checkpoint before it is left untouched."""


class WorkdirConfigMismatchError(RuntimeError):
    """The workdir holds a run of a different config."""


def _flat(nested: dict) -> tuple[dict[str, Any], dict[str, tuple]]:
    flat = traverse_util.flatten_dict(nested)
    names = {"/".join(map(str, k)): k for k in flat}
    return {n: flat[k] for n, k in names.items()}, names


@dataclasses.dataclass
class Setup:
    """Everything static about a run: model graph, parameter layout, optimizer, task."""

    config: ml_collections.ConfigDict
    info: data.DatasetInfo
    graphdef: Any
    layout: dict[str, tuple]
    trainable: optim.TrainableSubset
    roles: dict[str, str]
    tx: optax.GradientTransformation
    schedule: Any
    task: Any
    init_state: dict

    def merge(self, params: dict, batch_stats: dict):
        nested = traverse_util.unflatten_dict({self.layout[k]: v for k, v in params.items()})
        return nnx.merge(self.graphdef, nested, batch_stats)

    def param_shapes(self) -> dict[str, tuple]:
        return {k: tuple(v.shape) for k, v in self.init_state["params"].items()}


def build(config: ml_collections.ConfigDict, info: data.DatasetInfo | None = None) -> Setup:
    """Builds model, trainable subset and optimizer; the initial state lives on the host.

    `info` (input shape, classes) defaults to the configured dataset's.
    """
    config_lib.validate(config)
    optim.check_trainable_config(config.optim, config.model)
    info = info or data.get_info(config.data)
    try:
        model = models.build(
            config.model, num_classes=info.num_classes, in_channels=info.image_shape[-1],
            rngs=nnx.Rngs(config.seed),
        )
    except ValueError as e:
        raise config_lib.ConfigError(f"model: {e}") from e
    roles = models.param_roles(model)
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    params, layout = _flat(nnx.to_pure_dict(params))
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    trainable = optim.trainable_subset(
        config.optim.trainable, roles, shapes, k=config.optim.random_k, seed=config.seed
    )
    tx, schedule = optim.build(config.optim, config.total_steps, trainable.element_masks)
    state = {
        "step": jnp.zeros((), jnp.int32),
        "rng": jax.random.key_data(jax.random.key(config.seed + 1)),
        "params": params,
        "batch_stats": nnx.to_pure_dict(batch_stats),
        "opt_state": tx.init({k: params[k] for k in trainable.names}),
    }
    task = task_lib.resolve(config.task)(config)
    return Setup(config, info, graphdef, layout, trainable, roles, tx, schedule, task, state)


def train_step(setup: Setup, state: dict, batch: dict) -> tuple[dict, dict]:
    """One optimizer step: pure, jitted by the caller with shardings and donation."""
    params = state["params"]
    trainable = {k: params[k] for k in setup.trainable.names}
    frozen = {k: v for k, v in params.items() if k not in trainable}
    rng = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])

    def loss_fn(trainable):
        model = setup.merge({**frozen, **trainable}, state["batch_stats"])
        loss, step_metrics = setup.task.train_loss(model, batch, rng)
        return loss, (step_metrics, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))

    grads, (step_metrics, batch_stats) = jax.grad(loss_fn, has_aux=True)(trainable)
    updates, opt_state = setup.tx.update(grads, state["opt_state"], trainable)
    trainable = optax.apply_updates(trainable, updates)
    step_metrics = {**step_metrics, "lr": setup.schedule(state["step"])}
    new_state = {
        "step": state["step"] + 1,
        "rng": state["rng"],
        "params": {**frozen, **trainable},
        "batch_stats": batch_stats,
        "opt_state": opt_state,
    }
    return new_state, step_metrics


def eval_step(setup: Setup, state: dict, batch: dict) -> dict:
    model = setup.merge(state["params"], state["batch_stats"])
    return setup.task.eval_sums(model, batch)


class Trainer:
    """Compiled steps and the loop around them, for one (config, workdir)."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        self.config = config
        self.workdir = pathlib.Path(workdir)
        self.setup = build(config)
        self.mesh = sharding.make_mesh(config.mesh)
        sharding.check_batch_divides(self.mesh, config.data.batch_size)
        sharding.check_batch_divides(self.mesh, config.data.eval_batch_size,
                                     what="data.eval_batch_size")
        self._batch_sharding = sharding.batch_sharding(self.mesh)
        replicated = sharding.replicated(self.mesh)
        state_sharding = jax.tree.map(lambda _: replicated, self.setup.init_state)
        self.train_step = jax.jit(
            functools.partial(train_step, self.setup),
            in_shardings=(state_sharding, self._batch_sharding),
            out_shardings=(state_sharding, replicated),
            donate_argnums=0,
        )
        self.eval_step = jax.jit(
            functools.partial(eval_step, self.setup),
            in_shardings=(state_sharding, self._batch_sharding),
            out_shardings=replicated,
        )
        self._state_sharding = state_sharding
        self._eval_batches = None

    def initial_state(self) -> dict:
        return jax.device_put(self.setup.init_state, self._state_sharding)

    def evaluate(self, state: dict) -> dict[str, float]:
        """Metrics over the whole eval split (padding masked out), averaged per example."""
        if self._eval_batches is None:  # opened once: 'dataset' normalisation reads the train split
            self._eval_batches = data.eval_batches(
                self.config.data, process_index=jax.process_index(),
                process_count=jax.process_count())
        sums = [self.eval_step(state, sharding.global_batch(b, self._batch_sharding))
                for b in self._eval_batches]
        total = jax.device_get(jax.tree.map(lambda *xs: sum(xs), *sums))
        count = float(total.pop("count"))
        return {f"eval/{k}": float(v) / count for k, v in total.items()}

    def counts(self) -> dict[str, int]:
        shapes = self.setup.param_shapes()
        return {
            "trainable_params": self.setup.trainable.count(shapes),
            "total_params": int(sum(np.prod(s) for s in shapes.values())),
        }


def _prepare_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    """Writes config.json, or refuses a workdir that holds a run of a different config."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.json"
    current = json.loads(config.to_json_best_effort())
    if path.exists():
        stored = json.loads(path.read_text())
        if stored != current:
            diff = sorted(config_diff(stored, current))
            raise WorkdirConfigMismatchError(
                f"workdir {str(workdir)!r} holds a run of a different config "
                f"(differs at: {', '.join(diff)}). Nothing was changed. To keep that run, pass a "
                "new --workdir; to start over, delete that workdir first."
            )
    elif jax.process_index() == 0:
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = set(a) | set(b)
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, prefix + k + ".")
        elif va != vb:
            out.append(prefix + k)
    return out


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains and evaluates `config` in `workdir`, resuming whatever is already there."""
    workdir = pathlib.Path(workdir)
    config_lib.validate(config)
    _prepare_workdir(workdir, config)
    results_path = workdir / "results.json"
    if results_path.exists():
        log.info("%s already finished; returning its results.json", workdir)
        return json.loads(results_path.read_text())

    trainer = Trainer(config, workdir)
    runinfo.record_start(workdir, trainer.mesh)
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints,
                                   async_save=config.async_checkpointing)
    writer = metrics.MetricWriter(workdir)
    train_iter = data.train_iterator(config.data, seed=config.seed,
                                     process_index=jax.process_index(),
                                     process_count=jax.process_count())
    state = trainer.initial_state()
    start = ckpt.latest_step() or 0
    if start:
        state, data_state = ckpt.restore(start, state)
        train_iter.set_state(data_state)
        log.info("resumed %s from step %d", workdir, start)
    writer.truncate_after(start)  # steps logged after the checkpoint are logged again
    t0 = time.perf_counter()
    try:
        state = _loop(trainer, state, train_iter, start, ckpt, writer)
        final = trainer.evaluate(state)
        writer.write(config.total_steps, final)
        if ckpt.latest_step() != config.total_steps:
            ckpt.save(config.total_steps, state, train_iter.get_state())
        ckpt.wait()
    finally:
        ckpt.close()
        writer.close()
    results = {
        **final,
        **trainer.counts(),
        "steps": config.total_steps,
        "wall_seconds_this_start": round(time.perf_counter() - t0, 2),
    }
    if jax.process_index() == 0:
        results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _loop(trainer: Trainer, state, train_iter, start: int, ckpt, writer) -> dict:
    config = trainer.config
    total = config.total_steps
    progress = metrics.Progress(start, total)
    pending: list[dict] = []
    pending_from = start + 1

    def flush(step: int) -> None:
        nonlocal pending, pending_from
        if not pending:
            return
        bad = metrics.first_nonfinite(pending, pending_from)
        if bad is not None:
            last = ckpt.latest_step()
            raise NonFiniteLossError(
                f"non-finite loss at step {bad}; training stopped. The last good checkpoint "
                f"(step {last}) is kept in {ckpt_dir(trainer)}. Lower optim.lr, enable "
                "optim.grad_clip_norm, or check the data; re-running resumes from that checkpoint."
            )
        values = {f"train/{k}": v for k, v in metrics.mean_of_steps(pending).items()}
        values["train/lr"] = float(pending[-1]["lr"])  # the current rate, not the window mean
        writer.write(step, values)
        if config.progress and jax.process_index() == 0:
            shown = {k.split("/")[1]: values[k] for k in ("train/loss", "train/accuracy", "train/lr")
                     if k in values}
            print(progress.line(step, shown), flush=True)
        pending, pending_from = [], step + 1

    for step in range(start + 1, total + 1):
        batch = sharding.global_batch(next(train_iter), trainer._batch_sharding)
        state, step_metrics = trainer.train_step(state, batch)
        pending.append(step_metrics)
        if _due(step, config.log_every) or step == total:
            flush(step)
        if _due(step, config.eval_every) and step != total:
            writer.write(step, trainer.evaluate(state))
        if _due(step, config.checkpoint_every) or step == total:
            flush(step)  # never checkpoint a state whose loss went non-finite
            ckpt.save(step, state, train_iter.get_state())
    return state


def ckpt_dir(trainer: Trainer) -> pathlib.Path:
    return trainer.workdir / "checkpoints"


def load_final(workdir: str | pathlib.Path) -> tuple[ml_collections.ConfigDict, Setup, dict]:
    """(config, setup, state) of the latest checkpoint of a workdir, for analysis."""
    workdir = pathlib.Path(workdir)
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    setup = build(config)
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints,
                                   async_save=False)
    step = ckpt.latest_step()
    if step is None:
        raise FileNotFoundError(f"{workdir} has no checkpoint to analyse")
    state, _ = ckpt.restore(step, setup.init_state)
    ckpt.close()
    return config, setup, state

