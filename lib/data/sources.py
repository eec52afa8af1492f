"""Random-access splits by dataset name: in-memory arrays (Fashion-MNIST, digits), the user's
Tiny ImageNet files, TFDS, or a paper's own source named "module:Name".

A split yields records (lib.data.records): dicts with 'image' (raw HWC pixels), 'label' where
the dataset is labelled, and any further keys; everything else (pooling, augmentation,
normalisation, batching) happens in the Grain pipeline, the same for every source.

A source is a function (data_cfg, split_name) -> records.Split. Built-in ones are registered in
SOURCES by the part of data.name before any '/' (tiny_imagenet_c/<variant>), as the function
or its "module:function" name (the text sources of lib.data.text_sources, imported when used);
any other name with a ':' and an identifier after it is resolved as "module:function"; the rest
are TFDS names (which may carry a version, cifar10:3.0.2).
"""

import dataclasses
import functools
import importlib
from collections.abc import Iterator

import numpy as np

from lib import registry
from lib.config import ConfigError
from lib.data import fashion_mnist, imagenet9, tiny_imagenet
from lib.data.errors import DatasetNotFoundError
from lib.data.records import (  # noqa: F401  (re-exported: the names sources are built from)
    ArrayRecords,
    Records,
    Split,
    spaced_images,
    stratified_subset,
    subset_indices,
)
from lib.data.records import hold_out as _hold_out

VALIDATION_SEED_OFFSET = 7919  # the held-out validation draw uses subset_seed + this
_NO_VALIDATION = ("; data.validation_examples > 0 holds a 'validation' split out of the train "
                  "split")


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


def _digits_source(data_cfg, split: str) -> Split:
    splits = _digits(data_cfg.subset_seed, data_cfg.test_fraction)
    if split not in splits:
        raise ConfigError(f"digits has splits {sorted(splits)}, not {split!r}{_NO_VALIDATION}")
    return Split("", splits[split], (8, 8, 1), 10, 16.0,
                 f"sklearn.datasets.load_digits, {split} part of the seeded split")


def _fashion_mnist_source(data_cfg, split: str) -> Split:
    if split not in fashion_mnist.FILES:
        raise ConfigError(f"fashion_mnist has splits {sorted(fashion_mnist.FILES)}, not "
                          f"{split!r}{_NO_VALIDATION}")
    images, labels = fashion_mnist.load(split)
    return Split("", ArrayRecords(images, labels), images.shape[1:], 10, 255.0,
                 f"{fashion_mnist.find_dir()} ({split})")


def _tiny_imagenet_source(data_cfg, split: str) -> Split:
    records = tiny_imagenet.load(data_cfg.name, split, data_cfg.data_dir)
    where = tiny_imagenet.folder(data_cfg.name.partition("/")[0], data_cfg.data_dir)
    return Split("", records, tiny_imagenet.IMAGE_SHAPE, tiny_imagenet.NUM_CLASSES, 255.0,
                 f"{where} ({data_cfg.name} {split})")


def _imagenet9_source(data_cfg, split: str) -> Split:
    records = imagenet9.load(data_cfg.name, split, data_cfg.data_dir)
    return Split("", records, imagenet9.IMAGE_SHAPE, imagenet9.NUM_CLASSES, 255.0,
                 f"ImageNet-9 files in {imagenet9.root(data_cfg.data_dir)}")


SOURCES = {
    "fashion_mnist": _fashion_mnist_source,
    "digits": _digits_source,
    "tiny_imagenet": _tiny_imagenet_source,
    "tiny_imagenet_c": _tiny_imagenet_source,
    "imagenet9": _imagenet9_source,
    "parallel_text": "lib.data.text_sources:parallel_text",
    "enwik8": "lib.data.text_sources:enwik8",
    "wmt14_translate": "lib.data.text_sources:wmt_translation",
    "wmt16_translate": "lib.data.text_sources:wmt_translation",
    "glue": "lib.data.text_sources:glue",
    "text_lines": "lib.data.text_sources:text_lines",
    "lm1b": "lib.data.text_sources:lm1b",
}


class TfdsRecords:
    """A TFDS ArrayRecord split (random access, decoded by TFDS without TensorFlow). Records
    hold the image, the label where labelled, and the features named in `keys` (e.g.
    'file_name', which user-supplied per-image files are keyed by)."""

    def __init__(self, source, indices: np.ndarray | None = None, labelled: bool = True,
                 keys: tuple = ()):
        self._source, self._labelled, self._keys = source, labelled, tuple(keys)
        self._indices = np.arange(len(source)) if indices is None else indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> dict:
        record = self._source[int(self._indices[index])]
        out = {"image": record["image"], **{k: record[k] for k in self._keys}}
        if self._labelled:
            out["label"] = record["label"]
        return out

    def all_labels(self) -> np.ndarray | None:
        """Reads (and decodes) every record once: seconds for CIFAR, long for ImageNet."""
        if not self._labelled:
            return None
        return np.array([self._source[int(i)]["label"] for i in self._indices], np.int32)

    def stats_images(self) -> Iterator[np.ndarray]:
        return spaced_images(self)

    def subset(self, indices: np.ndarray) -> "TfdsRecords":
        return TfdsRecords(self._source, self._indices[indices], self._labelled, self._keys)


# TFDS registers these datasets' builders (glue, wmt*_translate) only once their module is imported
_LEGACY_TFDS_MODULES = ("tensorflow_datasets.text", "tensorflow_datasets.translate")


def tfds_builder(name: str, data_dir: str):
    """The TFDS builder of `name` (prepared or not), or a ConfigError for an unknown name."""
    import tensorflow_datasets as tfds  # imported here: only TFDS datasets need it

    try:
        return tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
        for module in _LEGACY_TFDS_MODULES:
            importlib.import_module(module)
    try:
        return tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ConfigError(
            f"Unknown dataset {name!r}: not one of {', '.join(SOURCES)}, a "
            "'module:function' source or a TFDS dataset name."
        ) from e


def tfds_source(name: str, split: str, data_dir: str):
    """(random-access data source, builder) of a prepared TFDS split; an unprepared one is a
    DatasetNotFoundError that gives the command preparing it."""
    import tensorflow_datasets as tfds

    builder = tfds_builder(name, data_dir)
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
    return source, builder


def tfds_split(name: str, split: str, data_dir: str, keys: tuple = ()) -> Split:
    """A prepared TFDS split; `keys`: further features each record carries."""
    source, builder = tfds_source(name, split, data_dir)
    features = builder.info.features
    if "image" not in features:
        raise ConfigError(f"TFDS dataset {name!r} has no 'image' feature")
    labelled = "label" in features
    if np.dtype(features["image"].np_dtype) != np.uint8:
        raise ConfigError(f"TFDS dataset {name!r}: images are not uint8")
    missing = [k for k in keys if k not in features]
    if missing:
        raise ConfigError(f"TFDS dataset {name!r} has no feature {', '.join(missing)}; it has "
                          f"{', '.join(sorted(features))}")
    return Split(
        "",
        TfdsRecords(source, labelled=labelled, keys=keys),
        tuple(features["image"].shape),
        features["label"].num_classes if labelled else 0,
        255.0,
        f"TFDS {name} {split} in {builder.data_dir}",
    )


def source(name: str):
    """The source function of a data.name: a built-in, a "module:function", or TFDS."""
    base = name.partition("/")[0]
    if base in SOURCES:
        found = SOURCES[base]
        return registry.resolve(found, "data.name") if isinstance(found, str) else found
    if registry.is_spec(name):
        return registry.resolve(name, "data.name")
    return lambda data_cfg, split: tfds_split(data_cfg.name, split, data_cfg.data_dir)


LABELS = ("true", "random", "rotation")
SUBSET_MODES = ("stratified", "uniform")


class RelabeledRecords:
    """A split whose labels are replaced once per example (pretraining tasks, early_phase.md
    §2): `random` draws a uniform class (it may equal the true one); `rotation` rotates the
    image (and the split's spatial keys) by r·90° counter-clockwise and labels it r ∈
    {0, 1, 2, 3}. Draws are seeded and fixed per position in the split, so every epoch sees
    the same task."""

    def __init__(self, records: Records, mode: str, num_classes: int, seed: int,
                 spatial: tuple = ()):
        self.records, self.mode, self.spatial = records, mode, ("image", *spatial)
        classes = 4 if mode == "rotation" else num_classes
        self.labels = np.random.default_rng(seed).integers(classes, size=len(records)).astype(
            np.int32)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = dict(self.records[index])
        record["label"] = label = self.labels[index]
        if self.mode == "rotation":
            for key in self.spatial:
                record[key] = np.ascontiguousarray(np.rot90(record[key], k=label))
        return record

    def all_labels(self) -> np.ndarray:
        return self.labels

    def stats_images(self) -> Iterator[np.ndarray]:
        return self.records.stats_images()  # rotations do not change channel statistics

    def subset(self, indices: np.ndarray) -> "Records":
        raise NotImplementedError("relabel after taking the subset")


def _open_whole(data_cfg, split_name: str) -> Split:
    """The whole named split; with data.validation_examples > 0, 'validation' is a seeded
    (stratified where labelled) part of the train split and the train split the rest."""
    held = data_cfg.validation_examples
    if held and split_name in (data_cfg.train_split, "validation"):
        whole = source(data_cfg.name)(data_cfg, data_cfg.train_split)
        parts = _hold_out(whole.records, held, data_cfg.subset_seed + VALIDATION_SEED_OFFSET)
        part = "train" if split_name == data_cfg.train_split else "validation"
        return dataclasses.replace(whole, records=parts[part],
                                   origin=f"{whole.origin}, {part} part of "
                                          f"data.validation_examples={held}")
    return source(data_cfg.name)(data_cfg, split_name)


def open_split(data_cfg, which: str, split_name: str | None = None) -> Split:
    """The 'train' or 'eval' split named in data_cfg (or `split_name` in the eval role), with
    its subset if asked (stratified where labelled), and its labels replaced if data.labels
    asks (both splits; random labels: the train split)."""
    names = {"train": (data_cfg.train_split, data_cfg.train_examples),
             "eval": (data_cfg.eval_split, data_cfg.eval_examples)}
    split_name, count = (split_name, 0) if split_name else names[which]
    split = dataclasses.replace(_open_whole(data_cfg, split_name), which=which)
    if count > len(split.records):
        raise ConfigError(f"data.{which}_examples={count}, but the {split_name!r} split of "
                          f"{data_cfg.name} has only {len(split.records)} examples")
    if count > 0:
        keep = subset_indices(split.records, count, data_cfg.subset_seed,
                              stratified=data_cfg.subset_mode == "stratified")
        split = dataclasses.replace(split, records=split.records.subset(keep))
    if data_cfg.subset_mode not in SUBSET_MODES:
        raise ConfigError(f"data.subset_mode={data_cfg.subset_mode!r}; valid choices: "
                          f"{', '.join(SUBSET_MODES)}")
    if data_cfg.labels not in LABELS:
        raise ConfigError(f"data.labels={data_cfg.labels!r}; valid choices: {', '.join(LABELS)}")
    if data_cfg.labels == "rotation":
        h, w, _ = split.image_shape
        if h is None or h != w:
            raise ConfigError(f"data.labels=rotation needs square images ({data_cfg.name}: "
                              f"{h}x{w})")
        seed = data_cfg.subset_seed + (0 if which == "train" else 1)
        split = dataclasses.replace(split, num_classes=4, records=RelabeledRecords(
            split.records, "rotation", 4, seed, split.spatial))
    elif data_cfg.labels == "random" and which == "train":
        if not split.num_classes:
            raise ConfigError(f"data.labels=random: {data_cfg.name} has no class labels")
        split = dataclasses.replace(split, records=RelabeledRecords(
            split.records, "random", split.num_classes, data_cfg.subset_seed))
    return split
