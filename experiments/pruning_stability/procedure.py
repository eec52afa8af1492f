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

from experiments.pruning_stability import flatness, summary
from lib import config as config_lib
from lib import files, metrics, procedure, train


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    workdir = files.as_path(workdir)
    results = train.run(procedure.stage_config(config), workdir / "train")
    out = {**results, **summary.run_summary(metrics.read(workdir / "train"),
                                            config.filter_pruning.steps_per_epoch)}
    if config.flatness.examples > 0:
        out.update(_flatness(config, workdir))
    if jax.process_index() == 0:  # config.json beside results.json: `lib.repro check` reads both
        files.write_text_atomic(workdir / "config.json", config.to_json_best_effort(indent=2))
        files.write_text_atomic(workdir / "results.json",
                                json.dumps(out, indent=2, sort_keys=True) + "\n")
    return out


def _flatness(config, workdir) -> dict:
    """Measured once; flatness.json is reused on re-runs."""
    path = workdir / "flatness.json"
    if path.exists():
        return json.loads(path.read_text())
    _, setup, state = train.load_final(workdir / "train")
    try:
        batch = flatness.first_examples(config.data, config.flatness.examples)
        values = flatness.measure(setup, jax.device_get(state), batch, config.flatness)
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from e
    if jax.process_index() == 0:
        files.write_text_atomic(path, json.dumps(values, indent=2) + "\n")
    return values
