"""One pruning-during-training run and its summary (pruning_stability.md §2, §4).

    workdir/train/          lib.train.run with task experiments.pruning_stability.task:FilterPruning
    workdir/flatness.json   with flatness.examples > 0: Hessian top-eigenvalue sum and gradient
                            covariance trace of the final state (flatness.measure)
    workdir/config.json     this config (the procedure's, as `lib.repro check` matches it)
    workdir/results.json    the run's final metrics, summary.run_summary (stability, best test
                            accuracy after the last event, generalization gap) and flatness

Re-running resumes the training stage, or returns the stored results.
"""

from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np

from experiments.pruning_stability import flatness, summary
from lib import config as config_lib
from lib import files, metrics, procedure, train


def check(config: ml_collections.ConfigDict) -> None:
    """The flatness settings, read only after training, checked before it starts."""
    if config.flatness.examples > 0:
        try:
            flatness.check(config.flatness)
        except ValueError as e:
            raise config_lib.ConfigError(str(e)) from e


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    check(config)
    workdir = files.as_path(workdir)
    results = train.run(procedure.stage_config(config), workdir / "train")
    out = {**results, **summary.run_summary(metrics.read(workdir / "train"),
                                            config.filter_pruning.steps_per_epoch)}
    if config.flatness.examples > 0:
        measured = _flatness(config, workdir)
        out.update({k: v for k, v in measured.items() if k != "eigenvector_curves"})
    return procedure.finish(workdir, config, out)


def _flatness(config, workdir) -> dict:
    """Measured once (at flatness.step, or the final state); flatness.json is reused."""
    path = workdir / "flatness.json"
    if path.exists():
        return json.loads(path.read_text())
    cfg = config.flatness
    try:
        _, setup, state = train.load_final(workdir / "train", step=cfg.step or None)
        batch = flatness.first_examples(config.data, cfg.examples)
        values, vectors = flatness.measure(setup, jax.device_get(state), batch, cfg)
    except (ValueError, FileNotFoundError) as e:
        raise config_lib.ConfigError(str(e)) from e
    values["flatness_step"] = int(state["step"])
    if cfg.curve_vectors:
        trainer = train.Trainer(procedure.stage_config(config))
        values["eigenvector_curves"] = flatness.eigenvector_curves(
            lambda p: trainer.evaluate(trainer.place({**state, "params": p})),
            jax.device_get(state["params"]), vectors,
            np.linspace(-0.4, 0.4, cfg.curve_epsilons))
    if jax.process_index() == 0:
        files.write_text_atomic(path, json.dumps(values, indent=2) + "\n")
    return values
