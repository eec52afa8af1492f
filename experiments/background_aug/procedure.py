"""Self-supervised pretraining, then linear probes on the frozen representation.

    workdir/pretrain/          lib.train.run (the SSL task, background augmentations in data)
    workdir/probes.json        the probes' accuracies, with the probe settings they used
    workdir/config.json, results.json   the config; the pretraining metrics and the probes

Probe A is fitted on the training split's images (unaugmented), probe B (the fg-probe) on
probe.fg_split, the same items on backgrounds unrelated to the label; both are evaluated on
every test variant of the spurious-background set. BG-Gap = acc(mixed_same) − acc(mixed_rand)
under probe A. kNN (probe.knn_k neighbours among the training split's features, weights
exp(cosine / probe.knn_temperature)) is evaluated on every test variant too. Probes read the
finished run, so a changed probe section re-runs the probes alone.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from experiments.background_aug import background
from lib import config as config_lib
from lib import data, features, files, procedure, train
from lib.data import sources
from lib.evaluators import knn, probe

TEST_VARIANTS = ("original", "mixed_same", "mixed_rand", "only_bg", "only_fg")
CONTRASTIVE_TASKS = ("lib.ssl.simclr:SimCLR", "lib.ssl.moco:MoCo")


def check(config: ml_collections.ConfigDict) -> None:
    """Choices the augmentation reads only once data flows, checked before anything runs."""
    cfg = config.data.bgaug
    if tuple(config.data.views) != (2,):
        raise config_lib.ConfigError(
            f"data.views={tuple(config.data.views)}: BackgroundViews makes two views of each "
            "record (a positive pair); set data.views=(2,)")
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
