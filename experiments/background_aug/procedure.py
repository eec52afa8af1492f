"""Self-supervised pretraining, then evaluations of the frozen representation.

Small scale (`run`, spec §6):
    workdir/pretrain/          lib.train.run (the SSL task, background augmentations in data)
    workdir/probes.json        the probes' accuracies, with the probe settings they used
    workdir/config.json, results.json   the config; the pretraining metrics and the probes

Paper scale (`imagenet`):
    workdir/pretrain/          the SSL task on imagenet2012 (BackgroundCrops with masks)
    workdir/linear/            linear evaluation: lib.ssl.linear_eval on the frozen encoder,
                               started from pretrain/ (config.linear: the MoCo or SwAV recipe)
    workdir/finetune_<label>/  FineTune (encoder and head) from pretrain/ on each of
                               config.finetune.sets (the 1 % and 10 % label subsets)
    workdir/imagenet_sets.json  the linear classifier on config.imagenet_sets (ImageNet-9 with
                               BG-Gap, -A, -R, ReaL), with the settings they used
    workdir/results.json       pretraining metrics, linear/… and finetune_<label>/… (top-1 on
                               the eval split), and the sets

Probe A is fitted on the training split's images (unaugmented), probe B (the fg-probe) on
probe.fg_split, the same items on backgrounds unrelated to the label; both are evaluated on
every test variant of the spurious-background set. BG-Gap = acc(mixed_same) − acc(mixed_rand)
under probe A. kNN (probe.knn_k neighbours among the training split's features, weights
exp(cosine / probe.knn_temperature)) is evaluated on every test variant too. Probes read the
finished run, so a changed probe section re-runs the probes alone.
"""

from __future__ import annotations

import math

import ml_collections
import numpy as np

from experiments.background_aug import background
from lib import config as config_lib
from lib import data, features, files, procedure, train
from lib.data import sources
from lib.evaluators import imagenet_sets, knn, probe

TEST_VARIANTS = ("original", "mixed_same", "mixed_rand", "only_bg", "only_fg")
CONTRASTIVE_TASKS = ("lib.ssl.simclr:SimCLR", "lib.ssl.moco:MoCo")


ENCODER_PREFIX = {"lib.ssl.simclr:SimCLR": "encoder/", "lib.ssl.moco:MoCo": "query/encoder/",
                  "lib.ssl.byol:BYOL": "online/encoder/", "lib.ssl.swav:SwAV": "net/encoder/"}
MASKS_SOURCE = "experiments.background_aug.masks:source"
LINEAR_RECIPES = {  # spec §3; milestones as fractions of the stage (MoCo: epochs 60, 80 of 100)
    "moco": {"optim.lr": 30.0, "optim.weight_decay": 0.0, "optim.schedule": "step",
             "milestone_fractions": (0.6, 0.8)},
    "swav": {"optim.lr": 0.3, "optim.weight_decay": 1e-6, "optim.schedule": "cosine",
             "milestone_fractions": ()},
}


def check(config: ml_collections.ConfigDict) -> None:
    """Choices the augmentation reads only once data flows, checked before anything runs."""
    if tuple(config.data.views) != (2,):
        raise config_lib.ConfigError(
            f"data.views={tuple(config.data.views)}: BackgroundViews makes two views of each "
            "record (a positive pair); set data.views=(2,)")
    check_bgaug(config)


def check_bgaug(config: ml_collections.ConfigDict) -> None:
    """The background ops' choices, and BG_Swaps only where there are negatives."""
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


def check_records(config: ml_collections.ConfigDict) -> None:
    """The training source's first record carries what the background ops read: an
    [H, W, 1] fg_mask in [0, 1] matching the image, and a clean `background` where donors'
    stored backgrounds are used (donor_hole_fill='none')."""
    cfg = config.data.bgaug
    record = sources.open_split(config.data, "train").records[0]
    where = f"records of data.name={config.data.name!r}"
    if "fg_mask" not in record:
        raise data.DatasetError(
            f"{where} carry no 'fg_mask': background augmentations need a foreground mask per "
            f"image ([H, W, 1], 1 = foreground); the records have {', '.join(sorted(record))}")
    image, mask = np.asarray(record["image"]), np.asarray(record["fg_mask"])
    if mask.shape != (*image.shape[:2], 1):
        raise data.DatasetError(
            f"{where}: fg_mask has shape {mask.shape}, the image {image.shape}; the mask must "
            f"be {(*image.shape[:2], 1)} (one channel, the image's height and width)")
    if mask.min() < 0 or mask.max() > 1:
        raise data.DatasetError(f"{where}: fg_mask values span [{mask.min()}, {mask.max()}]; "
                                "a mask holds 0 (background) to 1 (foreground)")
    donors = cfg.random_prob > 0 or cfg.swap_prob > 0
    if donors and cfg.donor_hole_fill == "none" and "background" not in record:
        raise data.DatasetError(
            f"{where} carry no clean 'background', which data.bgaug.donor_hole_fill='none' "
            "takes from donors; set donor_hole_fill to 'tile' or 'mean' to fill the donor's "
            "foreground hole instead")


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    check(config)
    check_records(config)
    workdir = files.as_path(workdir)
    results = train.run(config, workdir / "pretrain")
    return procedure.finish(workdir, config, {**results, **_probes(config, workdir)})


def imagenet(config: ml_collections.ConfigDict, workdir) -> dict:
    """Pretraining, the linear-evaluation stage on the frozen encoder, then the robustness
    sets of config.imagenet_sets scored with the linear classifier."""
    check_bgaug(config)
    workdir = files.as_path(workdir)
    linear = linear_config(config, workdir / "pretrain")
    if _uses_background(config.data.bgaug):
        check_records(config)
    finetunes = finetune_configs(config, workdir / "pretrain")
    num_classes = sources.open_split(linear.data, "train").num_classes
    imagenet_sets.check(linear.data, config.imagenet_sets, num_classes)
    results = train.run(config, workdir / "pretrain")
    results.update(_evaluated("linear", train.run(linear, workdir / "linear")))
    for label, stage in finetunes.items():
        results.update(_evaluated(f"finetune_{label}",
                                  train.run(stage, workdir / f"finetune_{label}")))
    sets = procedure.evaluation(workdir / "imagenet_sets.json", config.imagenet_sets,
                                lambda: _imagenet_sets(linear, workdir / "linear"))
    return procedure.finish(workdir, config, {**results, **sets})


def _evaluated(prefix: str, results: dict) -> dict:
    """A stage's eval/… results as prefix/…."""
    return {f"{prefix}/{k.removeprefix('eval/')}": v for k, v in results.items()
            if k.startswith("eval/")}


def _imagenet_sets(linear, linear_workdir) -> dict:
    trainer = train.Trainer(linear)
    _, _, state = train.load_final(linear_workdir)
    return imagenet_sets.evaluate(trainer, trainer.place(state), linear.imagenet_sets)


def _uses_background(cfg) -> bool:
    return cfg.rm_prob > 0 or cfg.random_prob > 0 or cfg.swap_prob > 0


def linear_config(config: ml_collections.ConfigDict, pretrain_workdir
                  ) -> ml_collections.ConfigDict:
    """The linear stage: LinearEval from the pretraining run's encoder (parameters and
    BatchNorm statistics), frozen, with config.linear's recipe, on the base dataset's
    labelled images (no masks)."""
    cfg = config.linear
    if cfg.recipe not in LINEAR_RECIPES:
        raise config_lib.ConfigError(f"linear.recipe={cfg.recipe!r}; valid choices: "
                                     f"{', '.join(LINEAR_RECIPES)}")
    recipe = dict(LINEAR_RECIPES[cfg.recipe])
    fractions = recipe.pop("milestone_fractions")
    name = config.data.bgaug.base_dataset if config.data.name == MASKS_SOURCE else \
        config.data.name
    steps = cfg.steps or cfg.epochs * _steps_per_epoch(config, name, cfg.batch_size)
    return _stage(config, pretrain_workdir, "lib.ssl.linear_eval:LinearEval", name, steps,
                  cfg, **{"optim.freeze": "^encoder/", "optim.nesterov": False,
                          "optim.milestones": tuple(round(f * steps) for f in fractions) or (0,),
                          **recipe})


def finetune_configs(config: ml_collections.ConfigDict, pretrain_workdir
                     ) -> dict[str, ml_collections.ConfigDict]:
    """{label: stage} for each 'label=dataset' of config.finetune.sets: FineTune (encoder and
    head) from the pretraining run, SGD Nesterov with a cosine decay and no weight decay."""
    cfg, out = config.finetune, {}
    entries = [e for e in cfg.sets if e]
    for i, entry in enumerate(entries):
        label, sep, name = entry.partition("=")
        if not sep or not label or not name:
            raise config_lib.ConfigError(f"finetune.sets entry {entry!r}: expected "
                                         "'label=dataset', e.g. '1pct=imagenet2012_subset/1pct'")
        epochs = cfg.epochs[min(i, len(cfg.epochs) - 1)]
        steps = cfg.steps or epochs * _steps_per_epoch(config, name, cfg.batch_size)
        out[label] = _stage(config, pretrain_workdir, "lib.ssl.linear_eval:FineTune", name,
                            steps, cfg, **{"optim.lr": cfg.lr * cfg.batch_size / 256,
                                           "optim.nesterov": True,
                                           "optim.weight_decay": 0.0,
                                           "optim.schedule": "cosine"})
    return out


def _steps_per_epoch(config, name: str, batch_size: int) -> int:
    data_cfg = config_lib.updated(config, {"data.name": name}).data
    return math.ceil(len(sources.open_split(data_cfg, "train").records) / batch_size)


def _stage(config, pretrain_workdir, task: str, name: str, steps: int, cfg, **changes):
    """A classification stage from the pretraining run's encoder on dataset `name`."""
    if config.task not in ENCODER_PREFIX:
        raise config_lib.ConfigError(f"task={config.task!r}: the evaluation stages read the "
                                     f"encoder of {', '.join(ENCODER_PREFIX)}")
    return procedure.stage_from(config, pretrain_workdir, **{
        "task": task, "init.prefix_map": (f"{ENCODER_PREFIX[config.task]}=encoder/",),
        "optim.name": "sgd", "optim.momentum": 0.9, "optim.warmup_steps": 0,
        "optim.cosine_final_fraction": 0.0, "data.name": name, "data.augment": cfg.augment,
        "data.batch_size": cfg.batch_size, "data.views": (0,), "total_steps": steps,
        "eval.top_k": 5, **changes})


def _probes(config, workdir) -> dict:
    return procedure.evaluation(workdir / "probes.json", config.probe,
                                lambda: _fit_probes(config, workdir))


def _fit_probes(config, workdir) -> dict:
    trainer = train.Trainer(config)
    _, _, state = train.load_final(workdir / "pretrain")
    state = trainer.place(state)

    def represent(split):
        out = features.extract(trainer, state,
                               lambda model, batch: model.represent(batch["image"]),
                               data.eval_batches(config.data, split=split))
        return out["features"], out["label"]

    return probe_accuracies(represent, config.probe, trainer.setup.info.num_classes)


def probe_accuracies(represent, cfg, num_classes: int) -> dict:
    """Probe A (train split) and B (cfg.fg_split) on every test variant, BG-Gap under A, and
    kNN (train split's features) on every test variant."""
    tests = {name: represent(name) for name in TEST_VARIANTS}
    train = represent("train")
    values = {}
    for probe_name, (x, y) in (("probe", train), ("fg_probe", represent(cfg.fg_split))):
        scale = probe.Standardizer.fit(x)
        params = probe.fit_softmax(scale(x), y, num_classes, steps=cfg.steps, lr=cfg.lr,
                                   l2=cfg.l2)
        values[f"{probe_name}/train"] = probe.accuracy(params, scale(x), y)
        for name, (tx, ty) in tests.items():
            values[f"{probe_name}/{name}"] = probe.accuracy(params, scale(tx), ty)
    for name, (tx, ty) in tests.items():
        values[f"knn/{name}"] = knn.accuracy(*train, tx, ty, num_classes, k=cfg.knn_k,
                                             temperature=cfg.knn_temperature)
    values["bg_gap"] = values["probe/mixed_same"] - values["probe/mixed_rand"]
    return {k: float(np.round(v, 6)) for k, v in values.items()}
