"""Self-supervised pretraining, then linear probes on the frozen representation.

    workdir/pretrain/          lib.train.run (the SSL task, background augmentations in data)
    workdir/probes.json        the probes' accuracies, with the probe settings they used
    workdir/config.json, results.json   the config; the pretraining metrics and the probes

Probe A is fitted on the training split's images (unaugmented), probe B (the fg-probe) on
probe.fg_split, the same items on backgrounds unrelated to the label; both are evaluated on
every test variant of the spurious-background set. BG-Gap = acc(mixed_same) − acc(mixed_rand)
under probe A. Probes read the finished run, so a changed probe section re-runs the probes
alone.
"""

from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np

from experiments.background_aug import background
from lib import config as config_lib
from lib import data, features, files, procedure, train
from lib.evaluators import probe

TEST_VARIANTS = ("original", "mixed_same", "mixed_rand", "only_bg", "only_fg")
CONTRASTIVE_TASKS = ("lib.ssl.simclr:SimCLR",)


def check(config: ml_collections.ConfigDict) -> None:
    """Choices the augmentation reads only once data flows, checked before anything runs."""
    cfg = config.data.bgaug
    for key, value, choices in (("rm_fill", cfg.rm_fill, background.RM_FILLS),
                                ("donor_hole_fill", cfg.donor_hole_fill, background.HOLE_FILLS)):
        if value not in choices:
            raise config_lib.ConfigError(f"data.bgaug.{key}={value!r}; valid choices: "
                                         f"{', '.join(choices)}")
    if cfg.min_fg > cfg.max_fg:
        raise config_lib.ConfigError(f"data.bgaug.min_fg={cfg.min_fg} exceeds max_fg="
                                     f"{cfg.max_fg}: no mask would get background ops")
    if cfg.swap_prob > 0 and config.task not in CONTRASTIVE_TASKS:
        raise config_lib.ConfigError(
            f"data.bgaug.swap_prob={cfg.swap_prob}: BG_Swaps adds a hard negative, which only "
            f"contrastive methods use ({', '.join(CONTRASTIVE_TASKS)}); task={config.task!r} "
            "has no negatives. Set swap_prob=0 (BG_Random changes the positive's background)")


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    check(config)
    workdir = files.as_path(workdir)
    results = train.run(config, workdir / "pretrain")
    return procedure.finish(workdir, config, {**results, **_probes(config, workdir)})


def _probes(config, workdir) -> dict:
    path = workdir / "probes.json"
    settings = json.loads(config.probe.to_json_best_effort())
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings:
            return saved["values"]
    trainer = train.Trainer(config)
    _, _, state = train.load_final(workdir / "pretrain")
    state = trainer.place(state)

    def represent(split):
        out = features.extract(trainer, state,
                               lambda model, batch: model.represent(batch["image"]),
                               data.eval_batches(config.data, split=split))
        return out["features"], out["label"]

    values = probe_accuracies(represent, config.probe, trainer.setup.info.num_classes)
    if jax.process_index() == 0:
        files.write_text_atomic(path, json.dumps({"settings": settings, "values": values},
                                                 indent=2, sort_keys=True) + "\n")
    return values


def probe_accuracies(represent, cfg, num_classes: int) -> dict:
    """Probe A (train split) and B (cfg.fg_split) on every test variant; BG-Gap under A."""
    tests = {name: represent(name) for name in TEST_VARIANTS}
    values = {}
    for probe_name, split in (("probe", "train"), ("fg_probe", cfg.fg_split)):
        x, y = represent(split)
        scale = probe.Standardizer.fit(x)
        params = probe.fit_softmax(scale(x), y, num_classes, steps=cfg.steps, lr=cfg.lr,
                                   l2=cfg.l2)
        values[f"{probe_name}/train"] = probe.accuracy(params, scale(x), y)
        for name, (tx, ty) in tests.items():
            values[f"{probe_name}/{name}"] = probe.accuracy(params, scale(tx), ty)
    values["bg_gap"] = values["probe/mixed_same"] - values["probe/mixed_rand"]
    return {k: float(np.round(v, 6)) for k, v in values.items()}
