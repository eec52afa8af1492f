"""One regularised training run, then its robustness and representation evaluation.

    workdir/train/             lib.train.run with task experiments.class_selectivity.task
    workdir/robustness.json    lib.evaluators.robustness on the eval split (computed once)
    workdir/config.json, results.json   the config and the run's metrics with the evaluation
"""

from __future__ import annotations

import json

import jax
import ml_collections

from lib import config as config_lib
from lib import data, files, procedure, train
from lib.evaluators import robustness


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    if config.data.normalization != "none":
        raise config_lib.ConfigError(
            f"data.normalization={config.data.normalization!r}: the robustness evaluation "
            "perturbs pixel-space inputs in [0, 1]; set data.normalization=none")
    workdir = files.as_path(workdir)
    results = train.run(procedure.stage_config(config), workdir / "train")
    return procedure.finish(workdir, config, {**results, **_robustness(config, workdir)})


def _robustness(config, workdir) -> dict:
    path = workdir / "robustness.json"
    if path.exists():
        return json.loads(path.read_text())
    _, setup, state = train.load_final(workdir / "train")
    model = setup.merge(state["params"], state["batch_stats"])

    def apply(images):
        return model(images, train=False, features=True)

    try:
        values = robustness.evaluate(apply, data.eval_batches(config.data), config.robustness,
                                     config.selectivity.layers, setup.info.num_classes,
                                     config.selectivity.eps)
    except ValueError as e:
        raise config_lib.ConfigError(f"robustness: {e}") from e
    if jax.process_index() == 0:
        files.write_text_atomic(path, json.dumps(values, indent=2, sort_keys=True) + "\n")
    return values
