"""One regularised training run, then its robustness and representation evaluation.

    workdir/train/             lib.train.run with task experiments.class_selectivity.task
    workdir/robustness.json    lib.evaluators.robustness on the eval split, with the
                               robustness config it was computed for
    workdir/config.json, results.json   the config and the run's metrics with the evaluation

The training stage runs with the robustness section at its defaults, so a finished run can be
evaluated again under other robustness settings (more corruptions, another ε grid) without
retraining: robustness.json is recomputed when its settings differ from the config's.

Attacks, noise and corruptions act on [0, 1] pixels (class_selectivity.md §7): the evaluation
reads unnormalised batches and applies data.normalization inside the model call.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from configs import base
from lib import config as config_lib
from lib import data, files, procedure, train
from lib.evaluators import robustness


def check(config: ml_collections.ConfigDict) -> None:
    """The robustness settings, read only after training, checked before it starts."""
    try:
        robustness.check(config.robustness, _released(config))
    except ValueError as e:
        raise config_lib.ConfigError(f"robustness: {e}") from e


def _released(config):
    """(name, severity) -> batches of that released corrupted copy of the eval split."""
    cfg = config.robustness
    pixels = config_lib.updated(config, {"data.normalization": "none"}).data

    def released(name, severity):
        return data.eval_batches(pixels, other={
            "name": f"{cfg.corruption_data}/{name}_{severity}",
            "eval_split": cfg.corruption_split, "data_dir": cfg.corruption_dir})

    return released


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    check(config)
    workdir = files.as_path(workdir)
    training = procedure.stage_config(config, robustness=base.get_config().robustness)
    results = train.run(training, workdir / "train")
    return procedure.finish(workdir, config, {**results, **_robustness(config, workdir)})


def _robustness(config, workdir) -> dict:
    return procedure.evaluation(workdir / "robustness.json", config.robustness,
                                lambda: _evaluate(config, workdir))


def _evaluate(config, workdir) -> dict:
    _, setup, state = train.load_final(workdir / "train")
    model = setup.model(state)
    mean, std = (jnp.asarray(v, jnp.float32) for v in data.normalization_stats(config.data))
    pixels = config_lib.updated(config, {"data.normalization": "none"}).data
    cfg = config.robustness

    def apply(images):
        return model((images - mean) / std, train=False, features=True)

    try:
        return robustness.evaluate(apply, data.eval_batches(pixels), cfg,
                                   config.selectivity.layers, setup.info.num_classes,
                                   config.selectivity.eps, _released(config))
    except ValueError as e:
        raise config_lib.ConfigError(f"robustness: {e}") from e
