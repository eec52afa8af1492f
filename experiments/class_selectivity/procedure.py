"""One regularised training run, then its robustness and representation evaluation.

    workdir/train/             lib.train.run with task experiments.class_selectivity.task
    workdir/robustness.json    lib.evaluators.robustness on the eval split (computed once)
    workdir/config.json, results.json   the config and the run's metrics with the evaluation

Attacks, noise and corruptions act on [0, 1] pixels (class_selectivity.md §7): the evaluation
reads unnormalised batches and applies data.normalization inside the model call.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import ml_collections

from lib import config as config_lib
from lib import data, files, procedure, train
from lib.evaluators import robustness


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    workdir = files.as_path(workdir)
    results = train.run(procedure.stage_config(config), workdir / "train")
    return procedure.finish(workdir, config, {**results, **_robustness(config, workdir)})


def _robustness(config, workdir) -> dict:
    path = workdir / "robustness.json"
    if path.exists():
        return json.loads(path.read_text())
    _, setup, state = train.load_final(workdir / "train")
    model = setup.merge(state["params"], state["batch_stats"])
    mean, std = (jnp.asarray(v, jnp.float32) for v in data.normalization_stats(config.data))
    pixels = config_lib.updated(config, {"data.normalization": "none"}).data
    cfg = config.robustness

    def apply(images):
        return model((images - mean) / std, train=False, features=True)

    def released(name, severity):
        return data.eval_batches(pixels, other={
            "name": f"{cfg.corruption_data}/{name}_{severity}",
            "eval_split": cfg.corruption_split, "data_dir": cfg.corruption_dir})

    try:
        values = robustness.evaluate(apply, data.eval_batches(pixels), cfg,
                                     config.selectivity.layers, setup.info.num_classes,
                                     config.selectivity.eps, released)
    except ValueError as e:
        raise config_lib.ConfigError(f"robustness: {e}") from e
    if jax.process_index() == 0:
        files.write_text_atomic(path, json.dumps(values, indent=2, sort_keys=True) + "\n")
    return values
