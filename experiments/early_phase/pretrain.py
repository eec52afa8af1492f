"""Pretraining before IMP (early_phase.md §2, "Data-dependence of the early phase").

The dense network trains for P steps on a modified task with the normal optimiser settings (the
schedule's first P steps); its state S_P then replaces the rewind point: the dense run and every
IMP level start from S_P at step P with a fresh optimizer state, a fresh head when the class
count differs (rotation: 4 classes), and the start of the normal data order.
"""

from __future__ import annotations

import ml_collections

from lib import config as config_lib
from lib import data

VARIANTS = ("random_labels", "rotation", "blur", "subsample", "no_augment")


def data_changes(config: ml_collections.ConfigDict) -> dict:
    """The data settings of the pretraining task."""
    p = config.pretrain
    if p.variant not in VARIANTS:
        raise config_lib.ConfigError(f"pretrain.variant={p.variant!r}; valid choices: '' (no "
                                     f"pretraining), {', '.join(VARIANTS)}")
    if p.variant == "random_labels":
        return {"data.labels": "random"}
    if p.variant == "rotation":
        return {"data.labels": "rotation"}
    if p.variant == "blur":
        if p.blur < 2:
            raise config_lib.ConfigError(f"pretrain.blur={p.blur}: the factor must be ≥ 2")
        return {"data.blur": p.blur}
    if p.variant == "subsample":
        if not 0 < p.fraction < 1:
            raise config_lib.ConfigError(f"pretrain.fraction={p.fraction} must lie in (0, 1)")
        return {"data.train_examples": max(1, round(p.fraction * data.get_info(
            config.data).num_train))}
    return {"data.augment": "none"}


def stage_changes(config: ml_collections.ConfigDict) -> dict:
    """Changes of the pretraining stage: its data, and P steps of the normal schedule."""
    steps = config.pretrain.steps
    if not 0 < steps < config.total_steps:
        raise config_lib.ConfigError(f"pretrain.steps={steps} must lie in (0, total_steps="
                                     f"{config.total_steps})")
    return {**data_changes(config), "total_steps": steps, "keep_steps": (0,)}


def from_pretrained(pretrain_dir, steps: int) -> dict:
    """Changes that start a run, and rewind every IMP level, at the pretrained state S_P."""
    return {"init.workdir": str(pretrain_dir), "init.step": steps, "imp.rewind_step": steps}
