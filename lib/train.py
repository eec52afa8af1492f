"""THE trainer: `run(config, workdir) -> results`, resumable (DESIGN.md rules 2, 3, 5-7, 9).

A run is (config, workdir). The workdir receives config.json, run.json, metrics.jsonl, orbax
checkpoints and, at the end, results.json. Calling `run` again on the same workdir resumes from
the latest checkpoint (train state and data order), or returns the stored results if finished.

The train step is a pure function of plain arrays: the model is split once into a static graph,
a flat parameter dict, its BatchNorm statistics and the rest of its variables (`model_state`:
EMA targets, queues, dropout RNG streams, whatever nnx.Variable a model or task defines), and
merged inside the jitted step. Only the trainable parameters are differentiated, so frozen
layers cost no weight-gradient and stay bit-identical; every other variable goes through the
step as plain state, checkpointed and sharded with the rest.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from etils import epath
from flax import nnx, traverse_util

from lib import (
    checkpoint,
    compile_cache,
    data,
    distributed,
    files,
    metrics,
    models,
    optim,
    precision,
    registry,
    runinfo,
    sharding,
    sparsity,
)
from lib import config as config_lib

log = logging.getLogger("lib.train")


CLOCK_KEY = metrics.CLOCK_KEY  # training wall time so far, logged with every eval


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN/inf; the last checkpoint before it is left untouched."""


class WorkdirConfigMismatchError(RuntimeError):
    """The workdir holds a run of a different config."""


def _flat(nested: dict) -> tuple[dict[str, Any], dict[str, tuple]]:
    flat = traverse_util.flatten_dict(nested)
    names = {"/".join(map(str, k)): k for k in flat}
    return {n: flat[k] for n, k in names.items()}, names


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _split(model: nnx.Module):
    """(graphdef, params nested, BatchNorm statistics, every other variable), as pure dicts.
    Values sown with nnx.Intermediate during a forward pass are outputs, not state: dropped."""
    graphdef, params, batch_stats, _, rest = nnx.split(model, nnx.Param, nnx.BatchStat,
                                                       nnx.Intermediate, ...)
    return graphdef, *(nnx.to_pure_dict(x) for x in (params, batch_stats, rest))


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
    masks: dict  # pruning masks by parameter path ({} = dense)
    key_impls: dict  # model_state paths holding PRNG keys -> their implementation

    def merge(self, params: dict, batch_stats: dict, model_state: dict | None = None):
        """The module with these variables (model_state: as stored in a train state)."""
        nested = traverse_util.unflatten_dict({self.layout[k]: v for k, v in params.items()})
        if model_state is None:
            if "model_state" in self.init_state:
                raise ValueError("this model has variables besides parameters and BatchNorm "
                                 "statistics: merge it with its model_state (Setup.model)")
            return nnx.merge(self.graphdef, nested, batch_stats)
        return nnx.merge(self.graphdef, nested, batch_stats, self._keys_back(model_state))

    def model(self, state: dict):
        """The module of a train state."""
        return self.merge(state["params"], state["batch_stats"], state.get("model_state"))

    def variables(self, model) -> dict:
        """A module's variables other than parameters, as a train state holds them:
        {"batch_stats": …} plus {"model_state": …} where the model has other variables.
        PRNG keys are stored as their raw data (orbax checkpoints plain arrays)."""
        _, _, batch_stats, rest = _split(model)
        out = {"batch_stats": batch_stats}
        if rest:
            out["model_state"] = jax.tree.map(
                lambda x: jax.random.key_data(x) if _is_key(x) else x, rest)
        return out

    def _keys_back(self, model_state: dict) -> dict:
        if not self.key_impls:
            return model_state
        flat = traverse_util.flatten_dict(model_state)
        for path, impl in self.key_impls.items():
            flat[path] = jax.random.wrap_key_data(flat[path], impl=impl)
        return traverse_util.unflatten_dict(flat)

    def param_shapes(self) -> dict[str, tuple]:
        return {k: tuple(v.shape) for k, v in self.init_state["params"].items()}


def build(config: ml_collections.ConfigDict, info: data.DatasetInfo | None = None) -> Setup:
    """Builds model, trainable subset and optimizer; the initial state lives on the host.

    `info` (input shape, classes) defaults to the configured dataset's.
    """
    config_lib.validate(config)
    optim.check_trainable_config(config.optim, config.model)
    info = info or data.get_info(config.data)
    task = registry.resolve(config.task, "task")(config)
    if hasattr(task, "check_data"):
        task.check_data(info)
    try:
        if hasattr(task, "build_model"):  # a task's own module (heads, towers, targets)
            model = task.build_model(config, info, nnx.Rngs(config.seed))
        else:
            model = models.build(
                config.model, num_classes=info.num_classes, in_channels=info.image_shape[-1],
                image_size=info.image_shape[:2], rngs=nnx.Rngs(config.seed),
            )
    except ValueError as e:
        raise config_lib.ConfigError(f"model: {e}") from e
    roles = models.param_roles(model)
    graphdef, params, batch_stats, rest = _split(model)
    params, layout = _flat(params)
    key_impls = {path: jax.random.key_impl(x)
                 for path, x in traverse_util.flatten_dict(rest).items() if _is_key(x)}
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    trainable = optim.trainable_subset(
        config.optim.trainable, roles, shapes, k=config.optim.random_k, seed=config.seed
    )
    if config.optim.freeze:
        trainable = optim.frozen_by_pattern(trainable, config.optim.freeze, list(shapes))
    trainable = optim.without(trainable, models.frozen_params(model))  # reservoir layers
    masks = _load_masks(config, shapes)
    if hasattr(task, "mask_names"):  # masks the task's hook changes during training
        try:
            dynamic = task.mask_names(roles, shapes)
        except ValueError as e:
            raise config_lib.ConfigError(str(e)) from e
        frozen = [k for k in dynamic if k not in trainable.names or k in trainable.element_masks]
        if frozen:
            raise config_lib.ConfigError(
                f"task {config.task!r} prunes {frozen[0]!r} during training, which "
                f"optim.trainable={config.optim.trainable!r} freezes or trains only in part; "
                "use optim.trainable=all")
        masks = {**sparsity.dense(shapes, dynamic), **masks}
    params = sparsity.apply(params, masks)
    tx, schedule = optim.build(config.optim, config.total_steps,
                               _element_masks(trainable, masks))
    setup = Setup(config, info, graphdef, layout, trainable, roles, tx, schedule, task, {},
                  masks, key_impls)
    state = {
        "step": jnp.zeros((), jnp.int32),
        "rng": jax.random.key_data(jax.random.key(config.seed + 1)),
        "params": params,
        **setup.variables(model),
        "opt_state": tx.init({k: params[k] for k in trainable.names}),
    }
    extra = task.extra_state(shapes) if hasattr(task, "extra_state") else {}
    if extra:  # arrays a task's hook keeps across steps, checkpointed with the rest
        state["extra"] = extra
    setup.init_state = state
    return setup


INIT_MODES = ("continue", "params")


def prefix_pairs(prefix_map) -> list[tuple[str, str]]:
    """init.prefix_map entries 'source/=destination/' -> [(source, destination)]."""
    pairs = []
    for entry in (e for e in prefix_map if e):
        src, sep, dst = entry.partition("=")
        if not sep:
            raise config_lib.ConfigError(
                f"init.prefix_map entry {entry!r}: expected 'source_prefix=destination_prefix' "
                "(e.g. 'encoder/=backbone/')")
        pairs.append((src, dst))
    return pairs


def map_prefixes(pairs, source: dict, target: dict, init, required: bool = True
                 ) -> dict[str, str]:
    """{target path: source path} under the prefix pairs (none: the same paths). With
    `required`, a pair whose source prefix matches nothing in the source, or whose
    destination matches nothing in this model, is an error: a typo would silently leave the
    model at its fresh initialisation."""
    if not pairs:
        return {k: k for k in target if k in source}
    out = {}
    for src, dst in pairs:
        found = {dst + k[len(src):]: k for k in source if k.startswith(src)}
        if required and not found:
            raise config_lib.ConfigError(
                f"init.prefix_map {src}={dst}: no parameter of {init.workdir!r} starts with "
                f"{src!r} (it has e.g. {sorted(source)[:3]})")
        kept = {k: v for k, v in found.items() if k in target}
        if required and not kept:
            raise config_lib.ConfigError(
                f"init.prefix_map {src}={dst}: this model has no parameter "
                f"{sorted(found)[0]!r} or any other under {dst!r} (it has e.g. "
                f"{sorted(target)[:3]})")
        out.update(kept)
    return out


def _load_masks(config, shapes) -> dict[str, np.ndarray]:
    if not config.sparsity.mask:
        return {}
    try:
        return sparsity.load(config.sparsity.mask, shapes)
    except (FileNotFoundError, ValueError) as e:
        raise config_lib.ConfigError(f"sparsity.mask: {e}") from e


def _element_masks(trainable: optim.TrainableSubset, masks: dict) -> dict[str, np.ndarray]:
    """Per-element optimizer masks: the trainable subset's, times the pruning masks."""
    out = dict(trainable.element_masks)
    for k, m in masks.items():
        if k in trainable.names:
            out[k] = out[k] * m if k in out else m
    return out


def train_step(setup: Setup, state: dict, batch: dict) -> tuple[dict, dict]:
    """One optimizer step: pure, jitted by the caller with shardings and donation."""
    params = state["params"]
    trainable = {k: params[k] for k in setup.trainable.names}
    frozen = {k: v for k, v in params.items() if k not in trainable}
    rng = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])

    def loss_fn(trainable):
        model = setup.merge({**frozen, **trainable}, state["batch_stats"],
                            state.get("model_state"))
        loss, step_metrics = setup.task.train_loss(model, batch, rng, state["step"])
        return loss, (step_metrics, setup.variables(model))  # BN statistics, queue pushes

    grads, (step_metrics, variables) = jax.grad(loss_fn, has_aux=True)(trainable)
    extra_update = step_metrics.pop("extra_update", None)  # a task's per-step statistics
    updates, opt_state = setup.tx.update(grads, state["opt_state"], trainable)
    trainable = optax.apply_updates(trainable, updates)
    params = {**frozen, **trainable}
    if hasattr(setup.task, "update_state"):  # e.g. an EMA target of the updated parameters
        model = setup.merge(params, variables["batch_stats"], variables.get("model_state"))
        setup.task.update_state(model, state["step"])
        variables = setup.variables(model)
    finite = (jnp.isfinite(step_metrics["loss"]) & jnp.isfinite(optax.global_norm(trainable))
              & jnp.isfinite(optax.global_norm(variables["batch_stats"])))
    if "model_state" in variables:  # the float ones: counters and keys are not checked
        finite &= jnp.isfinite(optax.global_norm(
            [x for x in jax.tree.leaves(variables["model_state"])
             if jnp.issubdtype(x.dtype, jnp.floating)]))
    step_metrics = {**step_metrics, "lr": setup.schedule(state["step"]),
                    "finite": finite.astype(jnp.int32)}
    new_state = {
        **state,  # "rng", and a task's "extra" state, pass through unchanged
        "step": state["step"] + 1,
        "params": params,
        **variables,
        "opt_state": opt_state,
    }
    if extra_update is not None:
        new_state["extra"] = setup.task.update_extra(state["extra"], extra_update,
                                                     state["step"])
    return new_state, step_metrics


def eval_step(setup: Setup, state: dict, batch: dict) -> dict:
    return setup.task.eval_sums(setup.model(state), batch)


class Trainer:
    """Compiled steps on a mesh, for one config; checks the inputs before anything is written."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self.setup = build(config)
        self.mesh = sharding.make_mesh(config.mesh)
        sharding.check_batch_divides(self.mesh, config.data.batch_size)
        sharding.check_batch_divides(self.mesh, config.data.eval_batch_size,
                                     what="data.eval_batch_size")
        self.batch_sharding = sharding.batch_sharding(self.mesh)
        replicated = sharding.replicated(self.mesh)
        self.state_sharding = sharding.state_shardings(self.mesh, self.setup.init_state,
                                                       config.mesh.fsdp_min_size)
        self.train_step = jax.jit(
            functools.partial(train_step, self.setup),
            in_shardings=(self.state_sharding, self.batch_sharding),
            out_shardings=(self.state_sharding, replicated),
            donate_argnums=0,
        )
        self.eval_step = jax.jit(
            functools.partial(eval_step, self.setup),
            in_shardings=(self.state_sharding, self.batch_sharding),
            out_shardings=replicated,
        )
        self._eval_batches = None
        self._eval_sets = None

    def initial_state(self) -> dict:
        return jax.device_put(self.setup.init_state, self.state_sharding)

    def starting_state(self) -> tuple[dict, dict | None]:
        """A new run's first state, and the data position to start at (None: the beginning).

        Fresh (masked) initialisation, or another run's checkpoint (config.init.workdir); then
        config.init.transform, if set, rewrites the parameters, and a task's `start(model)`
        sets state that derives from them (an EMA target starts as a copy of the parameters
        the run starts from, at whatever step).
        """
        if self.config.init.workdir:
            state, data_state = self.state_from_run()
        else:
            state, data_state = self.setup.init_state, None
        if self.config.init.transform:
            transform = registry.resolve(self.config.init.transform, "init.transform")
            host = jax.device_get(state["params"])
            try:
                params = transform(host, self.setup.masks, self.config)
            except ValueError as e:
                raise config_lib.ConfigError(f"init.transform: {e}") from e
            state = {**state, "params": {k: np.asarray(v, host[k].dtype)
                                         for k, v in params.items()}}
        if hasattr(self.setup.task, "start"):
            model = self.setup.model(jax.tree.map(jnp.asarray, state))
            self.setup.task.start(model)
            state = {**state, **self.setup.variables(model)}
        return jax.device_put(state, self.state_sharding), data_state

    def state_from_run(self) -> tuple[dict, dict]:
        """The state (on the host) and data position of another run's checkpoint
        (config.init): parameters, BN statistics, step and RNG from there, this run's masks
        applied, and a fresh optimizer state unless init.optimizer='keep'. IMP levels rewind
        to the dense run this way. A head of another class count is initialised afresh, and a
        run on other data starts at the beginning of this run's data order (pretraining)."""
        init = self.config.init
        if init.optimizer not in ("fresh", "keep"):
            raise config_lib.ConfigError(
                f"init.optimizer={init.optimizer!r}; valid choices: fresh, keep")
        if init.mode not in INIT_MODES:
            raise config_lib.ConfigError(
                f"init.mode={init.mode!r}; valid choices: {', '.join(INIT_MODES)}")
        if init.mode == "continue" and prefix_pairs(init.prefix_map):
            raise config_lib.ConfigError("init.prefix_map applies to init.mode='params' (a new "
                                         "stage from another run's parameters)")
        source_dir = files.as_path(init.workdir) / "checkpoints"
        if not source_dir.is_dir():
            raise config_lib.ConfigError(
                f"init.workdir={init.workdir!r} holds no checkpoints/ folder: give the workdir "
                "of a run that has saved checkpoints")
        source = checkpoint.Checkpointer(source_dir, keep=1, async_save=False, read_only=True)
        try:
            steps = source.all_steps()
            step = steps[-1] if init.step == -1 and steps else init.step
            if step not in steps:
                raise config_lib.ConfigError(
                    f"init.step={init.step}: {init.workdir!r} has checkpoints at steps "
                    f"{steps or 'none'}; pick one of them (-1: the latest)")
            saved, data_state = source.restore_as_saved(step)
        except checkpoint.DamagedCheckpointError as e:
            raise config_lib.ConfigError(
                f"init.workdir={init.workdir!r}: {e}. Pick another init.step (it has "
                f"checkpoints at steps {steps}), or re-run that run to rewrite it.") from e
        finally:
            source.close()
        fresh = self.setup.init_state
        if init.mode == "params":
            return self._mapped_from(saved), None
        missing = sorted(set(fresh["params"]) - set(saved["params"]))
        if missing:
            raise config_lib.ConfigError(
                f"init.workdir={init.workdir!r} holds another model: it lacks {missing[:3]}")
        params = {k: saved["params"][k] for k in fresh["params"]}
        for k, v in fresh["params"].items():
            if tuple(np.shape(params[k])) == tuple(v.shape):
                continue
            if not self.setup.roles[k].startswith("head_"):
                raise config_lib.ConfigError(
                    f"init.workdir={init.workdir!r}: {k} has shape {np.shape(params[k])}, this "
                    f"model {tuple(v.shape)}")
            params[k] = v  # another class count (e.g. a rotation-pretrained head): fresh head
            log.info("%s: freshly initialised (the source has another class count)", k)
        source_config = files.as_path(init.workdir) / "config.json"
        if source_config.exists() and json.loads(source_config.read_text()).get("data") != \
                json.loads(self.config.data.to_json_best_effort()):
            data_state = None  # another data pipeline: its position means nothing here
        state = {
            **fresh,  # a task's "extra" state and the model's other variables start fresh
            "step": saved["step"], "rng": saved["rng"],
            "params": sparsity.apply(params, self.setup.masks),
            "batch_stats": saved["batch_stats"],
            "opt_state": saved["opt_state"] if init.optimizer == "keep" else fresh["opt_state"],
        }
        return state, data_state

    def _mapped_from(self, saved: dict) -> dict:
        """init.mode='params': a new stage (a linear probe, fine-tuning) at step 0 with this
        run's RNG, optimizer and data order, whose parameters and BatchNorm statistics under
        each init.prefix_map destination come from the source's under its source prefix
        (no map: every parameter of the same path); the rest keep their fresh values."""
        fresh, init = self.setup.init_state, self.config.init
        pairs = prefix_pairs(init.prefix_map)
        params = dict(fresh["params"])
        for dst, src in map_prefixes(pairs, saved["params"], fresh["params"], init).items():
            if tuple(np.shape(saved["params"][src])) != tuple(fresh["params"][dst].shape):
                raise config_lib.ConfigError(
                    f"init.prefix_map: {src} in {init.workdir!r} has shape "
                    f"{np.shape(saved['params'][src])}, this model's {dst} "
                    f"{tuple(fresh['params'][dst].shape)}")
            params[dst] = np.asarray(saved["params"][src], fresh["params"][dst].dtype)
        flat_saved = _flat(saved["batch_stats"])[0] if saved["batch_stats"] else {}
        flat_fresh, layout = _flat(fresh["batch_stats"]) if fresh["batch_stats"] else ({}, {})
        stats = dict(flat_fresh)
        for dst, src in map_prefixes(pairs, flat_saved, flat_fresh, init,
                                     required=False).items():
            stats[dst] = np.asarray(flat_saved[src], flat_fresh[dst].dtype)
        batch_stats = traverse_util.unflatten_dict({layout[k]: v for k, v in stats.items()})
        log.info("started from %s: %d of %d parameters mapped", init.workdir,
                 sum(params[k] is not fresh["params"][k] for k in params), len(params))
        return {**fresh, "params": sparsity.apply(params, self.setup.masks),
                "batch_stats": batch_stats or fresh["batch_stats"]}

    def train_batches(self):
        return data.train_iterator(self.config.data, seed=self.config.seed,
                                   process_index=jax.process_index(),
                                   process_count=jax.process_count())

    def eval_batches(self) -> data.pipeline.EvalBatches:
        """The eval split's batches, opened once ('dataset' normalisation reads the train
        split)."""
        if self._eval_batches is None:
            self._eval_batches = data.eval_batches(
                self.config.data, process_index=jax.process_index(),
                process_count=jax.process_count())
        return self._eval_batches

    def eval_sets(self) -> dict[str, data.pipeline.EvalBatches]:
        """The batches of config.eval.sets by label, opened once (a set that does not exist
        fails here, before the run writes anything)."""
        if self._eval_sets is None:
            self._eval_sets = {
                label: data.eval_batches(self.config.data, process_index=jax.process_index(),
                                         process_count=jax.process_count(), **kwargs)
                for label, kwargs in data.eval_set_specs(self.config.eval.sets).items()}
        return self._eval_sets

    def evaluate(self, state: dict) -> dict[str, float]:
        """Metrics over the whole eval split (eval/…) and every eval set (eval_<label>/…),
        padding masked out. A metric m is divided by the task's sum 'count/m' where there is
        one (token accuracy counts tokens), else by 'count' (examples)."""
        out = self.evaluate_batches(state, self.eval_batches(), "eval")
        for label, batches in self.eval_sets().items():
            out.update(self.evaluate_batches(state, batches, f"eval_{label}"))
        return out

    def evaluate_batches(self, state: dict, batches, prefix: str) -> dict[str, float]:
        sums = [self.eval_step(state, sharding.global_batch(b, self.batch_sharding))
                for b in batches]
        total = jax.device_get(jax.tree.map(lambda *xs: sum(xs), *sums))
        count = float(total.pop("count"))
        denominators = {k.removeprefix("count/"): float(total.pop(k))
                        for k in [k for k in total if k.startswith("count/")]}
        out = {f"{prefix}/{k}": float(v) / denominators.get(k, count) for k, v in total.items()}
        if hasattr(self.setup.task, "corpus_metrics"):  # metrics of a whole pass (BLEU)
            out.update({f"{prefix}/{k}": v for k, v in
                        self.setup.task.corpus_metrics(self, state, batches).items()})
        return out

    def current_masks(self, state: dict) -> dict[str, np.ndarray]:
        """The pruning masks in force (host copies): a task hook may have changed them."""
        live = getattr(state["opt_state"], "masks", {})  # masks of frozen tensors never change
        return {k: np.asarray(jax.device_get(live[k])) if k in live else m
                for k, m in self.setup.masks.items()}

    def with_masks(self, state: dict, masks: dict) -> dict:
        """`state` with new pruning masks (for a task hook between steps): masked weights set
        to exactly 0, and the optimizer's element masks replaced so they stay 0."""
        unknown = sorted(set(masks) - set(self.setup.masks))
        if unknown:
            raise ValueError(f"with_masks: {unknown[0]!r} was not masked at build time; a task "
                             "declares the tensors it prunes in mask_names()")
        host = {k: np.asarray(v, np.float32) for k, v in masks.items()}
        params = dict(state["params"])
        for k, m in host.items():
            params[k] = params[k] * jnp.asarray(m, params[k].dtype)
        opt_masks = {**state["opt_state"].masks, **host}
        return self.place({**state, "params": params,
                           "opt_state": state["opt_state"]._replace(masks=opt_masks)})

    def place(self, state: dict) -> dict:
        """A state a hook changed on the host, back on the devices with the run's shardings."""
        return jax.device_put(state, self.state_sharding)

    def counts(self, state: dict) -> dict[str, int]:
        shapes = self.setup.param_shapes()
        out = {
            "trainable_params": self.setup.trainable.count(shapes),
            "total_params": int(sum(np.prod(s) for s in shapes.values())),
        }
        masks = self.current_masks(state)
        if masks:
            out["prunable_weights"] = int(sum(m.size for m in masks.values()))
            out["prunable_weights_remaining"] = int(sum(m.sum() for m in masks.values()))
        return out


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, prefix + k + ".")
        elif va != vb:
            out.append(prefix + k)
    return out


def _changed_keys(workdir: epath.Path, config: ml_collections.ConfigDict) -> list[str]:
    """Keys whose values differ from the workdir's config.json; refuses a workdir holding a run
    of a different config. Reads only.

    Keys that cannot change the results (config_lib.OPERATIONAL_KEYS: paths, cadences, device
    count) may change between starts; config.json then records the latest values, and the
    changed keys are recorded in run.json.
    """
    path = workdir / "config.json"
    if not path.exists():
        return []
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        saved = None
    if not isinstance(saved, dict):
        raise files.WorkdirError(f"{path} is not a config.json of this project; move it away "
                                 "or use a new --workdir")
    changed = config_diff(saved, json.loads(config.to_json_best_effort()))
    unused = config_lib.unused_moved_sections(saved, config)
    different = [k for k in changed if not config_lib.is_operational(k)
                 and k.split(".")[0] not in unused]
    if different:
        raise WorkdirConfigMismatchError(
            f"workdir {str(workdir)!r} holds a run of a different config (differs at: "
            f"{', '.join(different)}). Nothing was changed. To keep that run, pass a new "
            "--workdir; to start over, delete that workdir first."
        )
    return changed


def _has_checkpoints(directory: epath.Path) -> bool:
    return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    """Trains and evaluates `config` in `workdir`, resuming whatever is already there.

    A SIGTERM from here on checkpoints the next step and raises `distributed.Preempted`.
    """
    preemption = distributed.PreemptionWatch()
    try:
        return _run(config, files.as_path(workdir), preemption)
    finally:
        preemption.close()


def _run(config: ml_collections.ConfigDict, workdir: epath.Path,
         preemption: distributed.PreemptionWatch) -> dict:
    """Everything that reads the user's input (config, data, the workdir's config and
    checkpoints, init.workdir) runs before the first write, so bad input leaves no trace."""
    results_path = workdir / "results.json"
    config_lib.validate(config)
    files.check_workdir(workdir)
    compile_cache.enable(config.compile_cache, workdir)  # before anything compiles
    precision.guard_cpu_bfloat16(config.model.dtype)  # warns if too late (lib.main is not)
    trainer = Trainer(config)  # bad config, data or mesh fail here
    changed = _changed_keys(workdir, config)
    if results_path.exists():
        log.info("%s already finished; returning its results.json", workdir)
        return json.loads(results_path.read_text())
    train_iter = trainer.train_batches()
    trainer.eval_batches()
    trainer.eval_sets()
    writer = metrics.MetricWriter(workdir)  # reads metrics.jsonl; writes nothing yet
    ckpt_dir, ckpt, resumed = workdir / "checkpoints", None, None
    if _has_checkpoints(ckpt_dir):
        ckpt = _checkpointer(config, ckpt_dir)
        try:
            resumed = ckpt.restore_latest(trainer.initial_state())
        except BaseException:
            ckpt.close()
            raise
    if resumed is None:
        state, data_state = trainer.starting_state()  # reads init.workdir
        start, loop_state = int(state["step"]), {"lines": 0}
    else:
        state, data_state, start, loop_state = (resumed.state, resumed.data, resumed.step,
                                                resumed.loop)
        log.info("resumed %s from step %d", workdir, start)
    if data_state is not None:
        train_iter.set_state(data_state)
    # The first writes.
    runinfo.record_start(workdir, trainer.mesh, changed, trainer.setup.info.origins)
    if jax.process_index() == 0:
        files.write_text_atomic(workdir / "config.json", json.dumps(
            json.loads(config.to_json_best_effort()), indent=2, sort_keys=True) + "\n")
    ckpt = ckpt or _checkpointer(config, ckpt_dir)
    if "lines" in loop_state:  # the lines logged when the checkpoint was saved
        writer.keep_first(loop_state["lines"])
    else:  # a checkpoint from before the line count was saved
        writer.truncate_after(start)
    t0 = time.perf_counter()
    clock = metrics.TrainClock(loop_state.get("clock", 0.0))
    compiles = CompileStats()
    try:
        if loop_state.get("eval_pending"):  # skipped at the preemption that saved `start`
            writer.write(start, {**trainer.evaluate(state), CLOCK_KEY: clock.seconds})
        if start < config.total_steps:
            state = _loop(trainer, state, train_iter, start, ckpt, writer, preemption,
                          loop_state.get("window", {}), clock, compiles)
            final = {**trainer.evaluate(state), CLOCK_KEY: clock.seconds}
            writer.write(config.total_steps, final)  # logged before the final checkpoint
            ckpt.save(config.total_steps, state, train_iter.get_state(),
                      {"lines": writer.count(), "clock": clock.seconds})
        else:  # killed between the final checkpoint and results.json: its eval is logged
            final = {**trainer.evaluate(state), CLOCK_KEY: clock.seconds}
        ckpt.wait()
    finally:
        ckpt.close()
        writer.close()
        train_iter.close()  # stops Grain's worker processes and frees their shared memory
    results = {
        **final,
        **trainer.counts(state),
        "steps": config.total_steps,
        "wall_seconds_this_start": round(time.perf_counter() - t0, 2),
        **compiles.results(),
    }
    if jax.process_index() == 0:
        files.write_text_atomic(results_path,
                                json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def _checkpointer(config, directory) -> checkpoint.Checkpointer:
    return checkpoint.Checkpointer(directory, keep=config.keep_checkpoints,
                                   async_save=config.async_checkpointing,
                                   keep_steps=tuple(config.keep_steps))


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


@dataclasses.dataclass
class CompileStats:
    """The train step's compilations in this start: seconds, and how many executables came
    from the persistent compilation cache (lib.compile_cache) with the seconds that saved."""

    seconds: float = 0.0
    cache_hits: int = 0
    saved_s: float = 0.0

    def compile(self, lowered, progress: bool):
        t0 = time.perf_counter()
        with compile_cache.Hits() as hits:
            executable = lowered.compile()
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        self.cache_hits += hits.count
        self.saved_s += hits.saved_s
        if progress and jax.process_index() == 0:
            how = (f"read from the compilation cache ({hits.saved_s:.1f} s of compiling saved)"
                   if hits.count else "compiled")
            print(f"train step {how} in {seconds:.1f} s", flush=True)
        return executable

    def results(self) -> dict:
        """For results.json; "wall_" marks values that differ between runs of one config."""
        return {"wall_compile_seconds_this_start": round(self.seconds, 2),
                "wall_compile_cache_hits_this_start": self.cache_hits,
                "wall_compile_saved_seconds_this_start": round(self.saved_s, 2)}


def _loop(trainer: Trainer, state, train_iter, start: int, ckpt, writer,
          preemption: distributed.PreemptionWatch, window_state: dict,
          clock: metrics.TrainClock, compiles: CompileStats) -> dict:
    """Steps start+1 … total with logging, periodic evals and checkpoints; returns the state.

    A task with `hook_due(step)`/`hook(trainer, state, step)` changes the state between steps
    (lib.task.Task); the hook runs before that step's eval and checkpoint, so a resumed run
    never repeats or skips it, and its eval/ values replace the scheduled eval.

    The caller evaluates and checkpoints the final state. Before any checkpoint, and at every
    log, the window's metrics are checked: a non-finite step stops the run there. A checkpoint
    saves the open metric window (`window_state` reopens it), so logged means always cover
    `log_every` steps, and the number of lines logged, which a resumed run keeps. After a
    SIGTERM, the step all processes agree on is checkpointed and `distributed.Preempted`
    raised; an eval due at that step is left to the resumed run (the time before a hard kill
    may not cover it), which logs it first.

    `clock` counts training time only (the step is compiled before it starts; evals, hooks
    and saves pause it); every eval line logs it as CLOCK_KEY, and checkpoints save it.
    """
    config = trainer.config
    total = config.total_steps
    progress = metrics.Progress(start, total)
    window = metrics.StepMetrics()
    window.restore(window_state)

    def stop_if_nonfinite(first_bad: int | None) -> None:
        if first_bad is not None:
            raise NonFiniteLossError(
                f"non-finite loss or parameters at step {first_bad}; training stopped. The last "
                f"good checkpoint (step {ckpt.latest_step() or 'none'}) is kept in "
                f"{ckpt.directory}. Re-running the same command resumes from it; to try "
                "another optim.lr or optim.grad_clip_norm, use a new --workdir."
            )

    def flush(step: int) -> None:
        values, first_bad = window.fetch()
        stop_if_nonfinite(first_bad)
        if not values:
            return
        values = {f"train/{k}": v for k, v in values.items()}
        writer.write(step, values)
        if config.progress and jax.process_index() == 0:
            shown = {k.split("/")[1]: values[k] for k in ("train/loss", "train/accuracy",
                                                          "train/lr") if k in values}
            print(progress.line(step, shown), flush=True)

    def log_eval(step: int, values: dict) -> None:  # every eval line carries the clock
        writer.write(step, {**values, CLOCK_KEY: clock.seconds})

    def paused(work, *args):  # evaluation, hooks, checkpoints: not training time
        clock.pause(state)
        try:
            return work(*args)
        finally:
            clock.run()

    task = trainer.setup.task
    hook_due = getattr(task, "hook_due", lambda step: False)
    if start == 0 and hook_due(0):  # e.g. pruning at initialisation
        state, hooked = task.hook(trainer, state, 0)
        writer.write(0, hooked)
    compiled = {}  # one executable per batch shape (token batches come in length buckets)

    def train_step(state, batch):
        shape = (jax.tree.structure(batch), tuple(x.shape for x in jax.tree.leaves(batch)))
        if shape not in compiled:  # compilation is not training time
            compiled[shape] = paused(lambda: compiles.compile(
                trainer.train_step.lower(state, batch), config.progress))
        return compiled[shape](state, batch)

    batch = sharding.global_batch(next(train_iter), trainer.batch_sharding)
    clock.run()
    for step in range(start + 1, total + 1):
        if step > start + 1:
            batch = sharding.global_batch(next(train_iter), trainer.batch_sharding)
        state, step_metrics = train_step(state, batch)
        window.add(step_metrics, step)
        if _due(step, config.log_every) or step == total:
            flush(step)
        hooked = {}
        if hook_due(step):
            state, hooked = paused(task.hook, trainer, state, step)
            if any(k.startswith("eval/") for k in hooked):
                log_eval(step, hooked)
            else:
                writer.write(step, hooked)
        if step == total:
            break
        preempted = preemption.reached(step - start)
        eval_due = (_due(step, config.eval_every)
                    and not any(k.startswith("eval/") for k in hooked))
        if eval_due and not preempted:
            log_eval(step, paused(trainer.evaluate, state))  # logged before its checkpoint
        if _due(step, config.checkpoint_every) or step in config.keep_steps or preempted:
            stop_if_nonfinite(window.first_bad())  # never checkpoint a non-finite state
            clock.pause(state)
            ckpt.save(step, state, train_iter.get_state(), {
                "window": window.saved(), "eval_pending": eval_due and preempted,
                "lines": writer.count(), "clock": clock.seconds})
            clock.run()
        if preempted:
            ckpt.wait()
            raise distributed.Preempted(step, str(ckpt.directory))
    clock.pause(state)
    return state


def load_final(workdir, step: int | None = None) -> tuple[ml_collections.ConfigDict, Setup,
                                                          dict]:
    """(config, setup, state) of a workdir's latest checkpoint (or of `step`), for analysis."""
    workdir = epath.Path(workdir)
    config = config_lib.from_saved(json.loads((workdir / "config.json").read_text()))
    setup = build(config)
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints,
                                   async_save=False)
    steps = ckpt.all_steps()
    if step is not None and step not in steps:
        ckpt.close()
        raise FileNotFoundError(f"{workdir} has no checkpoint at step {step} (it has "
                                f"{steps or 'none'}); add it to keep_steps")
    step = step if step is not None else ckpt.latest_step()
    if step is None:
        raise FileNotFoundError(f"{workdir} has no checkpoint to analyse")
    state, _ = ckpt.restore(step, setup.init_state)
    ckpt.close()
    return config, setup, state
