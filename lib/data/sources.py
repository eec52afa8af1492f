"""Random-access splits by dataset name: in-memory arrays (Fashion-MNIST, digits) or TFDS.

A split yields records {'image': raw HWC pixels, 'label': int}; everything else (pooling,
augmentation, normalisation, batching) happens in the Grain pipeline, the same for every source.
"""

import dataclasses
import functools
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from lib.config import ConfigError
from lib.data import fashion_mnist
from lib.data.errors import DatasetNotFoundError

STATS_RECORDS = 1024  # TFDS records read for 'dataset' normalisation statistics
_CHUNK = 4096  # records per vectorised step over in-memory arrays


class Records(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> dict: ...
    def all_labels(self) -> np.ndarray: ...
    def stats_images(self) -> Iterator[np.ndarray]: ...
    def subset(self, indices: np.ndarray) -> "Records": ...


@dataclasses.dataclass(frozen=True)
class Split:
    """A split's records and what preprocessing must know before it sees any record."""

    which: str  # 'train' or 'eval': the role in data_cfg, whatever the split's TFDS name
    records: Records
    image_shape: tuple  # raw H, W, C; None for a dimension that varies between records
    num_classes: int
    max_value: float  # raw pixel value of full intensity (255; 16 for digits)
    origin: str = ""  # where the records are read from (recorded in run.json)


def spaced_images(records: Records) -> Iterator[np.ndarray]:
    """At most STATS_RECORDS evenly spaced images, one [H, W, C] at a time: the statistics
    sample of sources whose records are decoded one by one."""
    picks = np.unique(np.linspace(0, len(records) - 1,
                                  min(len(records), STATS_RECORDS)).astype(int))
    return (records[int(i)]["image"] for i in picks)


class ArrayRecords:
    """An in-memory split: records are views into one image and one label array."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index]}

    def all_labels(self) -> np.ndarray:
        return self.labels

    def stats_images(self) -> Iterator[np.ndarray]:
        """Every image, in chunks of [n, H, W, C]."""
        return (self.images[i : i + _CHUNK] for i in range(0, len(self), _CHUNK))

    def subset(self, indices: np.ndarray) -> "ArrayRecords":
        return ArrayRecords(self.images[indices], self.labels[indices])


class TfdsRecords:
    """A TFDS ArrayRecord split (random access, decoded by TFDS without TensorFlow)."""

    def __init__(self, source, indices: np.ndarray | None = None):
        self._source = source
        self._indices = np.arange(len(source)) if indices is None else indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> dict:
        record = self._source[int(self._indices[index])]
        return {"image": record["image"], "label": record["label"]}

    def all_labels(self) -> np.ndarray:
        """Reads (and decodes) every record once: seconds for CIFAR, long for ImageNet."""
        return np.array([self._source[int(i)]["label"] for i in self._indices], np.int32)

    def stats_images(self) -> Iterator[np.ndarray]:
        return spaced_images(self)

    def subset(self, indices: np.ndarray) -> "TfdsRecords":
        return TfdsRecords(self._source, self._indices[indices])


def stratified_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` examples, as equal per class as the class sizes allow.

    Classes that run out give their share to the others; leftover examples go to randomly
    chosen classes. Deterministic in (labels, count, seed).
    """
    if count > len(labels):
        raise ConfigError(f"asked for a subset of {count} examples from a split of {len(labels)}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    room = np.array([len(m) for m in members])
    quota = np.zeros(len(classes), int)
    while (left := count - quota.sum()) > 0:
        open_ = np.flatnonzero(quota < room)
        share = left // len(open_)
        if share == 0:
            quota[rng.choice(open_, size=left, replace=False)] += 1
        else:
            quota[open_] = np.minimum(room[open_], quota[open_] + share)
    return np.sort(np.concatenate([m[:q] for m, q in zip(members, quota)]))


@functools.lru_cache(maxsize=4)
def _digits(seed: int, test_fraction: float) -> dict[str, ArrayRecords]:
    """sklearn digits with a plain (not stratified) random split; round(N * fraction) held out.

    70/30 gives 1,258 / 539 as in batchnorm_only.md §6. Pixels stay 0..16 (uint8).
    """
    import sklearn.datasets  # imported here: slow, and only digits needs it

    digits = sklearn.datasets.load_digits()
    images = digits.images.astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = round(len(labels) * test_fraction)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return {
        "train": ArrayRecords(images[train], labels[train]),
        "test": ArrayRecords(images[test], labels[test]),
    }


def _tfds(name: str, split: str, data_dir: str, which: str) -> Split:
    import tensorflow_datasets as tfds  # imported here: only TFDS datasets need it

    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ConfigError(
            f"Unknown dataset {name!r}: not 'fashion_mnist', 'digits', 'tiny_imagenet', "
            "'tiny_imagenet_c' or a TFDS dataset name."
        ) from e
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
    except Exception as e:
        command = f"python -m lib.data.prepare {name}" + (
            f" --data_dir={data_dir}" if data_dir else ""
        )
        how = (
            f'Run `{command}` (needs the [prepare] extra: pip install -e ".[prepare]"); '
            "datasets with manual downloads (ImageNet) say where to put the files."
        )
        if not builder.is_prepared():
            raise DatasetNotFoundError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir}. {how}"
            ) from e
        if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
            raise DatasetNotFoundError(
                f"TFDS dataset {name!r} in {builder.data_dir} is in {builder.info.file_format} "
                "format, but random access needs array_record. Remove that folder (or choose "
                f"another data_dir) and rebuild it. {how}"
            ) from e
        base_split = split.split("[")[0]
        if base_split not in builder.info.splits:
            raise ConfigError(
                f"TFDS dataset {name!r} has splits {sorted(builder.info.splits)}, not "
                f"{base_split!r}: set data.train_split / data.eval_split"
            ) from e
        raise
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ConfigError(f"TFDS dataset {name!r} has no 'image' and 'label' features")
    if np.dtype(features["image"].np_dtype) != np.uint8:
        raise ConfigError(f"TFDS dataset {name!r}: images are not uint8")
    return Split(
        which,
        TfdsRecords(source),
        tuple(features["image"].shape),
        features["label"].num_classes,
        255.0,
        f"TFDS {name} {split} in {builder.data_dir}",
    )


def _open_whole(data_cfg, split: str, which: str) -> Split:
    if data_cfg.name == "fashion_mnist":
        images, labels = fashion_mnist.load(split)
        return Split(which, ArrayRecords(images, labels), images.shape[1:], 10, 255.0,
                     f"{fashion_mnist.find_dir()} ({split})")
    if data_cfg.name == "digits":
        splits = _digits(data_cfg.subset_seed, data_cfg.test_fraction)
        if split not in splits:
            raise ConfigError(f"digits has splits {sorted(splits)}, not {split!r}")
        return Split(which, splits[split], (8, 8, 1), 10, 16.0,
                     f"sklearn.datasets.load_digits, {split} part of the seeded split")
    if data_cfg.name.startswith("tiny_imagenet"):
        from lib.data import tiny_imagenet  # imported here: it builds on this module

        records = tiny_imagenet.load(data_cfg.name, split, data_cfg.data_dir)
        where = tiny_imagenet.folder(data_cfg.name.partition("/")[0], data_cfg.data_dir)
        return Split(which, records, tiny_imagenet.IMAGE_SHAPE, tiny_imagenet.NUM_CLASSES, 255.0,
                     f"{where} ({data_cfg.name} {split})")
    return _tfds(data_cfg.name, split, data_cfg.data_dir, which)


LABELS = ("true", "random", "rotation")


class RelabeledRecords:
    """A split whose labels are replaced once per example (pretraining tasks, early_phase.md
    §2): `random` draws a uniform class (it may equal the true one); `rotation` rotates the
    image by r·90° counter-clockwise and labels it r ∈ {0, 1, 2, 3}. Draws are seeded and fixed
    per position in the split, so every epoch sees the same task."""

    def __init__(self, records: Records, mode: str, num_classes: int, seed: int):
        self.records, self.mode = records, mode
        classes = 4 if mode == "rotation" else num_classes
        self.labels = np.random.default_rng(seed).integers(classes, size=len(records)).astype(
            np.int32)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        label = self.labels[index]
        image = np.rot90(record["image"], k=label) if self.mode == "rotation" else record["image"]
        return {"image": np.ascontiguousarray(image), "label": label}

    def all_labels(self) -> np.ndarray:
        return self.labels

    def stats_images(self) -> Iterator[np.ndarray]:
        return self.records.stats_images()  # rotations do not change channel statistics

    def subset(self, indices: np.ndarray) -> "Records":
        raise NotImplementedError("relabel after taking the subset")


def open_split(data_cfg, which: str) -> Split:
    """The 'train' or 'eval' split named in data_cfg, with its stratified subset if asked, and
    its labels replaced if data.labels asks (both splits; random labels: the train split)."""
    split_name, count = {
        "train": (data_cfg.train_split, data_cfg.train_examples),
        "eval": (data_cfg.eval_split, data_cfg.eval_examples),
    }[which]
    split = _open_whole(data_cfg, split_name, which)
    if count > len(split.records):
        raise ConfigError(f"data.{which}_examples={count}, but the {split_name!r} split of "
                          f"{data_cfg.name} has only {len(split.records)} examples")
    if count > 0:
        keep = stratified_subset(split.records.all_labels(), count, data_cfg.subset_seed)
        split = dataclasses.replace(split, records=split.records.subset(keep))
    if data_cfg.labels not in LABELS:
        raise ConfigError(f"data.labels={data_cfg.labels!r}; valid choices: {', '.join(LABELS)}")
    if data_cfg.labels == "rotation":
        h, w, _ = split.image_shape
        if h is None or h != w:
            raise ConfigError(f"data.labels=rotation needs square images ({data_cfg.name}: "
                              f"{h}x{w})")
        seed = data_cfg.subset_seed + (0 if which == "train" else 1)
        split = dataclasses.replace(split, num_classes=4, records=RelabeledRecords(
            split.records, "rotation", 4, seed))
    elif data_cfg.labels == "random" and which == "train":
        split = dataclasses.replace(split, records=RelabeledRecords(
            split.records, "random", split.num_classes, data_cfg.subset_seed))
    return split
