"""Multi-stage runs: each stage is one `lib.train.run` in its own sub-workdir (rule 3).

Re-running a procedure resumes it: finished stages return their results.json, an interrupted
stage resumes from its checkpoints, and nothing a finished stage wrote is overwritten. A
procedure checks the settings of all its stages before the first one starts (`check_imp`
here; a paper's procedure module has `check(config)`), so that a typo in a later stage's
settings stops it at once, not hours into the run.
"""

from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np

from lib import config as config_lib
from lib import files, sparsity, train


def stage_config(config: ml_collections.ConfigDict, **changes) -> ml_collections.ConfigDict:
    """A copy of `config` for one stage: dotted-key changes, and no procedure of its own."""
    return config_lib.updated(config, {**changes, "procedure": ""})


def stage_from(config: ml_collections.ConfigDict, source_workdir, **changes
               ) -> ml_collections.ConfigDict:
    """A stage that starts from another run's parameters at step 0, with its own step counter,
    schedule, RNG and data order (a linear probe after pretraining, fine-tuning on a subset):
    init.mode='params'. Pass 'init.prefix_map' to move e.g. the pretraining model's encoder/
    into the probe's backbone/, and 'optim.freeze' to keep a prefix fixed."""
    return stage_config(config, **{"init.workdir": str(source_workdir), "init.mode": "params",
                                   **changes})


def check_imp(config) -> None:
    """Raises ConfigError for IMP settings `imp` would refuse."""
    imp, total = config.imp, config.total_steps
    if imp.levels < 1:
        raise config_lib.ConfigError(f"imp.levels={imp.levels}: IMP needs at least 1 level")
    if config.init.workdir and imp.rewind_step != config.init.step:
        raise config_lib.ConfigError(
            f"imp.rewind_step={imp.rewind_step} but init.step={config.init.step}: a run that "
            "starts from another run's state (init.workdir, e.g. pretraining) rewinds to that "
            "state, so both must be the same step")
    if not 0 <= imp.rewind_step < total:
        raise config_lib.ConfigError(
            f"imp.rewind_step={imp.rewind_step} must lie in [0, total_steps={total}): the "
            "levels rewind to a state of the dense run")
    try:
        sparsity.check_fraction(config.sparsity.fraction, "sparsity.fraction")
        if config.sparsity.scope not in sparsity.SCOPES:
            raise ValueError(f"sparsity.scope={config.sparsity.scope!r}; valid choices: "
                             f"{', '.join(sparsity.SCOPES)}")
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from e


def level_masks(config, previous_workdir, previous_masks) -> dict[str, np.ndarray]:
    """The next level's masks: magnitude pruning of the previous level's final weights."""
    _, setup, state = train.load_final(previous_workdir)
    try:
        names = sparsity.prunable_names(setup.roles, config.sparsity.include,
                                        config.sparsity.exclude)
    except ValueError as e:
        raise config_lib.ConfigError(f"sparsity.include/exclude: {e}") from e
    params = jax.device_get(state["params"])
    masks = previous_masks or sparsity.dense(setup.param_shapes(), names)
    return sparsity.magnitude_prune(params, masks, config.sparsity.fraction,
                                    config.sparsity.scope, config.sparsity.openlth_threshold)


def imp(config: ml_collections.ConfigDict, workdir) -> dict:
    """Iterative magnitude pruning with rewinding (lth_common.md §5).

    level_0/ trains the dense network and keeps its state after imp.rewind_step = k steps.
    Level L >= 1 prunes sparsity.fraction of the weights that level L-1 kept (its final
    weights, global or layer-wise magnitude), writes level_L/mask.npz, and trains from the
    dense run's step-k state (masked, fresh optimizer state, same schedule position and data
    order) to total_steps. k = 0 rewinds to the initialisation.
    """
    check_imp(config)
    workdir = files.as_path(workdir)
    k = config.imp.rewind_step
    dense_dir = workdir / "level_0"
    levels = {"0": summary(train.run(stage_config(config, keep_steps=(k,)), dense_dir))}
    masks = None
    for level in range(1, config.imp.levels + 1):
        level_dir = workdir / f"level_{level}"
        mask_path = level_dir / "mask.npz"
        if mask_path.exists():
            masks = sparsity.load(mask_path)  # this level was pruned before: keep its mask
        else:
            if (level_dir / "checkpoints").exists() or (level_dir / "results.json").exists():
                raise config_lib.ConfigError(
                    f"{level_dir} has training output but no mask.npz: its mask is lost, and a "
                    "new one could differ. Delete that level's folder (and every later level) "
                    "and re-run to prune it again.")
            masks = level_masks(config, workdir / f"level_{level - 1}", masks)
            level_dir.mkdir(parents=True, exist_ok=True)
            if jax.process_index() == 0:
                sparsity.save(mask_path, masks)
        changes = {"sparsity.mask": str(mask_path)}
        if k > 0 and not config.init.workdir:  # with init.workdir, levels start where it says
            changes.update({"init.workdir": str(dense_dir), "init.step": k})
        levels[str(level)] = summary(train.run(stage_config(config, **changes), level_dir))
    return finish(workdir, config, levels)


def finish(workdir, config: ml_collections.ConfigDict, results: dict) -> dict:
    """Writes a procedure's config.json and results.json at the top of its workdir, so
    `lib.repro check` and the papers' analyses read it like a single run; returns results."""
    if jax.process_index() == 0:
        workdir = files.as_path(workdir)
        files.write_text_atomic(workdir / "config.json", config.to_json_best_effort(indent=2))
        files.write_text_atomic(workdir / "results.json",
                                json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def evaluation(path, settings: ml_collections.ConfigDict, compute) -> dict:
    """The values of an evaluation after training, saved in `path` with the settings they were
    computed for: read back while `settings` are unchanged, else `compute()`d again, so a
    finished run can be evaluated under new settings without retraining."""
    path = files.as_path(path)
    settings = json.loads(settings.to_json_best_effort())
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings:
            return saved["values"]
    values = compute()
    if jax.process_index() == 0:
        files.write_text_atomic(path, json.dumps({"settings": settings, "values": values},
                                                 indent=2, sort_keys=True) + "\n")
    return values


def summary(results: dict) -> dict:
    """A stage's eval metrics and the fraction of prunable weights it kept."""
    out = {k: v for k, v in results.items() if k.startswith("eval/")}
    if "prunable_weights" in results:
        out["remaining"] = results["prunable_weights_remaining"] / results["prunable_weights"]
    else:
        out["remaining"] = 1.0
    return out
