"""ImageNet's robustness test sets, scored from a classifier over the ImageNet classes
(background_aug.md §4):

- ImageNet-A and ImageNet-R (TFDS imagenet_a / imagenet_r, split test): the logits restricted
  to the set's 200 classes before the argmax. The 200 are the labels that occur in the split.
- ReaL (TFDS imagenet2012_real, split validation): correct when the prediction is in the
  image's set of labels; images whose set is empty are left out.
- ImageNet-9 (lib.data.imagenet9, the user's files): the prediction mapped to the nine
  superclasses by in_to_in9; a class outside them is wrong. BG-Gap = acc(mixed_same) −
  acc(mixed_rand).

- adversarial (a subset of cfg.attack_examples of the run's own eval split): accuracy under FGSM and
  PGD (L∞, cfg.pgd_steps steps of 2.5·ε / steps, random start) at each ε of cfg.attack_eps,
  in units of 1/255 of the pixel range, on the classifier end to end (encoder + linear head).
  The model must take [0, 1] pixels and normalise inside (data.normalization='none').

`evaluate` runs a finished run's model over the sets named in cfg.sets; the scoring functions
take plain arrays.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lib import config as config_lib
from lib import data, features, losses, sharding
from lib.config import ConfigError
from lib.data import imagenet9, sources
from lib.data.errors import DatasetError
from lib.evaluators import adversarial

SETS = ("imagenet9", "imagenet_a", "imagenet_r", "real", "adversarial")
REAL = "lib.evaluators.imagenet_sets:real_source"


def restricted_predictions(logits: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """[N] the class among `classes` with the largest logit."""
    classes = np.asarray(classes)
    return classes[np.argmax(np.asarray(logits)[:, classes], axis=1)]


def superclass_accuracy(predictions: np.ndarray, labels: np.ndarray,
                        class_map: np.ndarray) -> float:
    """Share of predictions whose superclass (class_map; −1: none) is the label."""
    return float(np.mean(np.asarray(class_map)[predictions] == labels))


def multilabel_accuracy(predictions: np.ndarray, label_sets: np.ndarray) -> float:
    """Share of the images with a non-empty label set [N, C] whose prediction is in it."""
    label_sets = np.asarray(label_sets, bool)
    keep = label_sets.any(axis=1)
    if not keep.any():
        raise ValueError("no image has a label: ReaL accuracy is undefined")
    return float(np.mean(label_sets[keep, np.asarray(predictions)[keep]]))


class RealRecords:
    """imagenet2012_real's validation records with 'real_label' as a multi-hot [C] vector."""

    def __init__(self, records, num_classes: int):
        self._records, self._num_classes = records, num_classes

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict:
        record = dict(self._records[index])
        multi_hot = np.zeros(self._num_classes, np.uint8)
        multi_hot[np.asarray(record.pop("real_label"), np.int64)] = 1
        return {**record, "real_label": multi_hot}

    def all_labels(self):
        return self._records.all_labels()

    def stats_images(self):
        return self._records.stats_images()

    def subset(self, indices: np.ndarray) -> RealRecords:
        return RealRecords(self._records.subset(indices), self._num_classes)


IMAGENET_CLASSES = 1000  # ReaL's label sets are over ImageNet's classes


def real_source(data_cfg, split: str) -> sources.Split:
    """imagenet2012_real (which has no 'label' feature) with multi-hot 'real_label's."""
    base = sources.tfds_split("imagenet2012_real", split, data_cfg.data_dir,
                              keys=("real_label",))
    return dataclasses.replace(base, records=RealRecords(base.records, IMAGENET_CLASSES),
                               num_classes=IMAGENET_CLASSES)


def set_data(data_cfg, name: str, cfg) -> dict:
    """{result prefix: the data config that reads it} for one set of SETS."""
    def changed(**changes):
        return config_lib.updated(data_cfg, changes)

    if name == "imagenet9":
        return {f"in9/{v}": changed(name=f"imagenet9/{v}", eval_split="val",
                                    data_dir=cfg.in9_dir, augment="none", image_size=0,
                                    eval_examples=0)
                for v in cfg.in9_variants}
    if name in ("imagenet_a", "imagenet_r"):
        return {name: changed(name=name, eval_split="test", eval_examples=0)}
    if name == "real":
        return {name: changed(name=REAL, eval_split="validation", eval_examples=0)}
    if name == "adversarial":
        return {name: changed(eval_examples=cfg.attack_examples)}
    raise ConfigError(f"imagenet_sets.sets has {name!r}; valid choices: {', '.join(SETS)}")


def check(data_cfg, cfg, num_classes: int) -> None:
    """Every named set opens (before any training), IN-9's variants and map included."""
    for name in (n for n in cfg.sets if n):
        if name == "imagenet9":
            for v in cfg.in9_variants:
                if v not in imagenet9.VARIANTS:
                    raise ConfigError(f"imagenet_sets.in9_variants has {v!r}; valid choices: "
                                      f"{', '.join(imagenet9.VARIANTS)}")
        if name == "adversarial":
            for eps in cfg.attack_eps:
                adversarial.check(eps / 255)
            if data_cfg.normalization != "none":
                raise ConfigError(
                    f"imagenet_sets.sets names adversarial, but data.normalization="
                    f"{data_cfg.normalization!r}: attacks perturb [0, 1] pixels, so the model "
                    "must read them and normalise inside (ssl.input_normalization)")
        try:  # open each set and read its first record (decoding included)
            for set_cfg in set_data(data_cfg, name, cfg).values():
                sources.open_split(set_cfg, "eval").records[0]
            if name == "imagenet9":
                imagenet9.class_map(cfg.in9_dir, num_classes)
        except DatasetError as e:
            where = "imagenet_sets.in9_dir" if name == "imagenet9" else "data.data_dir"
            raise DatasetError(f"imagenet_sets.sets names {name}, which cannot be read: {e}. "
                               f"Set {where}, or leave {name} out of imagenet_sets.sets") from e


def evaluate(trainer, state: dict, cfg) -> dict:
    """Accuracy on every set in cfg.sets (and IN-9's BG-Gap) of the run's classifier."""
    num_classes = trainer.setup.info.num_classes
    values = {}
    for name in (n for n in cfg.sets if n):
        for prefix, set_cfg in set_data(trainer.config.data, name, cfg).items():
            batches = data.eval_batches(set_cfg, process_index=jax.process_index(),
                                        process_count=jax.process_count())
            if name == "adversarial":
                values.update(attacked_accuracy(trainer, state, batches, cfg))
                continue
            if name in ("imagenet_a", "imagenet_r"):
                out = features.extract(trainer, state, lambda m, b: m(b["image"]), batches)
                classes = np.unique(out["label"])
                values[f"{prefix}/accuracy"] = float(np.mean(
                    restricted_predictions(out["features"], classes) == out["label"]))
                continue
            out = features.extract(trainer, state,
                                   lambda m, b: jnp.argmax(m(b["image"]), axis=-1), batches)
            if name == "real":
                values[f"{prefix}/accuracy"] = multilabel_accuracy(out["features"],
                                                                   out["real_label"])
            else:
                values[f"{prefix}"] = superclass_accuracy(
                    out["features"], out["label"], imagenet9.class_map(cfg.in9_dir, num_classes))
        if name == "imagenet9" and {"in9/mixed_same", "in9/mixed_rand"} <= values.keys():
            values["in9/bg_gap"] = values["in9/mixed_same"] - values["in9/mixed_rand"]
    return {k: float(np.round(v, 6)) for k, v in values.items()}


def attacked_accuracy(trainer, state: dict, batches, cfg) -> dict:
    """adversarial/{clean, fgsm_<ε>, pgd_<ε>}: accuracy on the batches' real examples, ε in
    1/255 units."""
    eps = [e / 255 for e in cfg.attack_eps]

    @jax.jit
    def counts(state, batch, key):
        model = trainer.setup.model(state)
        x, y, mask = batch["image"], batch["label"], batch["mask"]

        def loss(images, labels):
            return jnp.sum(losses.softmax_cross_entropy(model(images), labels) * mask)

        def correct(images):
            return jnp.sum((jnp.argmax(model(images), -1) == y) * mask)

        out = {"clean": correct(x), "count": jnp.sum(mask)}
        for e, name in zip(eps, cfg.attack_eps):
            out[f"fgsm_{name:g}"] = correct(adversarial.fgsm(loss, x, y, e))
            out[f"pgd_{name:g}"] = correct(adversarial.pgd(
                loss, x, y, e, cfg.pgd_steps, 2.5 * e / cfg.pgd_steps, key=key))
        return out

    totals = None
    key = jax.random.key(cfg.attack_seed)
    for i, local in enumerate(batches):
        batch = sharding.global_batch(local, trainer.batch_sharding)
        out = jax.device_get(counts(state, batch, jax.random.fold_in(key, i)))
        totals = out if totals is None else jax.tree.map(np.add, totals, out)
    count = float(totals.pop("count"))
    return {f"adversarial/{k}": float(v) / count for k, v in totals.items()}
