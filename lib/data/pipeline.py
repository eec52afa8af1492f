"""Grain pipelines: an endless shuffled train stream with exact resume, and padded eval passes.

Records are pooled and augmented one at a time in raw pixel space, then stacked and normalised
per batch in one vectorised step. Batching happens on the MapDataset, so global batch g is
records [g*B, (g+1)*B) of the stream for any process count, and the iterator state stays a
small JSON dict (a position per worker).
"""

import dataclasses
import math

import grain
import numpy as np
from absl import flags

from lib import config as config_lib
from lib.config import ConfigError
from lib.data import preprocess, sources

AUGMENTS = ("none", "flip", "cifar", "imagenet")
NORMALIZATIONS = ("dataset", "none", *preprocess.NORMALIZATION)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int, int]  # H, W, C of the batches' images (after pool / crop)
    num_classes: int
    num_train: int  # examples in the (possibly subset) train split
    num_eval: int
    origins: dict = dataclasses.field(default_factory=dict)  # split role -> where it is read from


@dataclasses.dataclass(frozen=True)
class _Prepare:
    """Deterministic record transform: pool, for ImageNet eval resize + center crop, blur."""

    pool: int
    center_crop: int  # 0 = none
    blur: int = 0

    def __call__(self, record: dict) -> dict:
        image = preprocess.pool(record["image"], self.pool)
        if self.center_crop:
            image = preprocess.resize_center_crop(image, self.center_crop)
        return {"image": preprocess.blur(image, self.blur), "label": record["label"]}


@dataclasses.dataclass(frozen=True)
class _Augment:
    """Random train transform; grain seeds `rng` from (seed, position in the stream)."""

    pool: int
    augment: str
    size: int
    blur: int = 0

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        image = preprocess.pool(record["image"], self.pool)
        if self.augment == "imagenet":
            image = preprocess.random_resized_crop(image, rng, self.size)
        image = preprocess.flip(image, rng)
        if self.augment == "cifar":
            image = preprocess.pad_crop(image, rng)
        return {"image": preprocess.blur(image, self.blur), "label": record["label"]}


@dataclasses.dataclass(frozen=True, eq=False)
class _Collate:
    """Stacks records into a batch and normalises it: image * scale + shift per channel."""

    scale: np.ndarray
    shift: np.ndarray

    def __call__(self, records: list[dict]) -> dict:
        images = np.stack([r["image"] for r in records]).astype(np.float32)
        images *= self.scale
        images += self.shift
        batch = {"image": images, "label": np.array([r["label"] for r in records], np.int32)}
        if "mask" in records[0]:
            batch["mask"] = np.array([r["mask"] for r in records], np.float32)
        return batch


@dataclasses.dataclass(frozen=True, eq=False)
class _PaddedEval:
    """Eval record by index; indices past the split give a zero image with mask 0."""

    records: sources.Records
    prepare: _Prepare
    pad_image: np.ndarray

    def __call__(self, index: int) -> dict:
        if index < len(self.records):
            return {**self.prepare(self.records[index]), "mask": 1.0}
        return {"image": self.pad_image, "label": 0, "mask": 0.0}


def _check(data_cfg) -> None:
    if data_cfg.augment not in AUGMENTS:
        raise ConfigError(f"data.augment={data_cfg.augment!r}; expected one of {AUGMENTS}")
    if data_cfg.normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"data.normalization={data_cfg.normalization!r}; expected one of {NORMALIZATIONS}"
        )
    if data_cfg.pool < 1:
        raise ConfigError(f"data.pool={data_cfg.pool} must be >= 1")
    if data_cfg.augment == "imagenet" and data_cfg.pool != 1:
        raise ConfigError(
            "data.augment='imagenet' sets the resolution with data.image_size; use pool=1"
        )
    if data_cfg.augment != "imagenet" and data_cfg.image_size:
        raise ConfigError("data.image_size is used only with data.augment='imagenet'; set it to 0")


def _image_shape(data_cfg, split: sources.Split) -> tuple[int, int, int]:
    h, w, c = split.image_shape
    if data_cfg.augment == "imagenet":
        size = data_cfg.image_size or (h if h == w and h else 0)
        if not size:
            raise ConfigError(
                f"{data_cfg.name}: images are not of one square size; set data.image_size"
            )
        return (size, size, c)
    if h is None or w is None:
        raise ConfigError(
            f"{data_cfg.name}: images vary in size; use data.augment='imagenet' with "
            "data.image_size to crop them to one size"
        )
    return (h // data_cfg.pool, w // data_cfg.pool, c)


def _channel_stats(split: sources.Split, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of [0, 1]-scaled, pooled train pixels (float64 sums)."""
    total = total_sq = 0.0
    count = 0
    for images in split.records.stats_images():
        pixels = preprocess.pool(images, pool).reshape(-1, images.shape[-1]).astype(np.float64)
        pixels /= split.max_value
        total = total + pixels.sum(0)
        total_sq = total_sq + np.square(pixels).sum(0)
        count += len(pixels)
    mean = total / count
    return mean, np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))


def normalization_stats(data_cfg, split: sources.Split | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) in [0, 1] pixel units that data.normalization subtracts and
    divides by; 'dataset' statistics always come from the train split. Evaluations that
    perturb pixels (attacks, noise) read unnormalised batches and normalise inside the model
    call with these."""
    split = split or sources.open_split(data_cfg, "train")
    channels = split.image_shape[-1]
    if data_cfg.normalization == "dataset":
        train = split if split.which == "train" else sources.open_split(data_cfg, "train")
        mean, std = _channel_stats(train, data_cfg.pool)
    elif data_cfg.normalization == "none":
        mean, std = np.zeros(channels), np.ones(channels)
    else:
        mean, std = preprocess.NORMALIZATION[data_cfg.normalization]
        if len(mean) != channels:
            raise ConfigError(
                f"data.normalization={data_cfg.normalization!r} has {len(mean)} channels but "
                f"{data_cfg.name} images have {channels}; use 'dataset' or 'none'"
            )
    if np.any(np.asarray(std) == 0):
        raise ConfigError(f"{data_cfg.name}: a channel is constant in the train split (std 0)")
    return np.asarray(mean, np.float64), np.asarray(std, np.float64)


def _collate(data_cfg, split: sources.Split) -> _Collate:
    """Batching with normalisation (normalization_stats)."""
    return _Collate(*preprocess.normalizer(split.max_value, *normalization_stats(data_cfg, split)))


def _per_process(batch_size: int, process_count: int, what: str) -> int:
    if batch_size % process_count:
        raise ConfigError(
            f"data.{what}={batch_size} is global and must divide evenly over "
            f"{process_count} processes"
        )
    return batch_size // process_count


def _to_iter(dataset: grain.MapDataset, data_cfg) -> grain.IterDataset:
    """Thread prefetch of `prefetch` batches (exact state), and worker processes if asked."""
    read = grain.ReadOptions(num_threads=data_cfg.prefetch, prefetch_buffer_size=data_cfg.prefetch)
    out = dataset.to_iter_dataset(read)
    if data_cfg.num_workers > 0:
        if not flags.FLAGS.is_parsed():  # Grain reads its absl flags; outside app.run use defaults
            flags.FLAGS.mark_as_parsed()
        out = out.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=data_cfg.num_workers, per_worker_buffer_size=data_cfg.prefetch
            )
        )
    return out


def get_info(data_cfg) -> DatasetInfo:
    _check(data_cfg)
    train = sources.open_split(data_cfg, "train")
    evaluation = sources.open_split(data_cfg, "eval")
    return DatasetInfo(
        data_cfg.name,
        _image_shape(data_cfg, train),
        train.num_classes,
        len(train.records),
        len(evaluation.records),
        {"train": train.origin, "eval": evaluation.origin},
    )


def train_iterator(data_cfg, *, seed: int, process_index: int = 0, process_count: int = 1):
    """Endless batches of this process's share of each global batch; get_state/set_state resume.

    The stream is a fresh permutation of the train split every epoch (seeded by `seed`); batches
    are full and run across epoch boundaries.
    """
    _check(data_cfg)
    per_process = _per_process(data_cfg.batch_size, process_count, "batch_size")
    train = sources.open_split(data_cfg, "train")
    shape = _image_shape(data_cfg, train)
    dataset = grain.MapDataset.source(train.records).seed(seed).shuffle().repeat()
    if data_cfg.augment == "none":
        dataset = dataset.map(_Prepare(data_cfg.pool, 0, data_cfg.blur))
    else:
        dataset = dataset.random_map(_Augment(data_cfg.pool, data_cfg.augment, shape[0],
                                              data_cfg.blur))
    dataset = dataset.batch(per_process, drop_remainder=True, batch_fn=_collate(data_cfg, train))
    return iter(_to_iter(dataset[process_index::process_count], data_cfg))


class EvalBatches:
    """Re-iterable eval pass: every `iter()` starts a fresh, ordered pass."""

    def __init__(self, dataset: grain.MapDataset, data_cfg):
        self._dataset, self._data_cfg = dataset, data_cfg

    def __len__(self) -> int:
        return len(self._dataset)

    def __iter__(self):
        return iter(_to_iter(self._dataset, self._data_cfg))


def eval_batches(data_cfg, *, process_index: int = 0, process_count: int = 1,
                 other: dict | None = None) -> EvalBatches:
    """One ordered pass over the eval split; the last global batch is padded, 'mask' marks reals.

    `other` ({'name', 'eval_split', 'data_dir'}) reads another dataset's split in the eval
    split's place with this config's preprocessing and normalisation: the released corrupted
    copies of a test set (cifar10_corrupted/<corruption>_<severity>, tiny_imagenet_c/...).
    """
    _check(data_cfg)
    per_process = _per_process(data_cfg.eval_batch_size, process_count, "eval_batch_size")
    evaluation = sources.open_split(data_cfg, "eval")
    shape = _image_shape(data_cfg, evaluation)
    if other:
        clean, evaluation = evaluation, sources.open_split(config_lib.updated(data_cfg, other),
                                                           "eval")
        if _image_shape(data_cfg, evaluation) != shape:
            raise ConfigError(f"{other['name']} images are {evaluation.image_shape}, the eval "
                              f"split's {clean.image_shape}")
    crop = shape[0] if data_cfg.augment == "imagenet" else 0
    num = len(evaluation.records)
    padded = math.ceil(num / data_cfg.eval_batch_size) * data_cfg.eval_batch_size
    record = _PaddedEval(
        evaluation.records, _Prepare(data_cfg.pool, crop, data_cfg.blur), np.zeros(shape, np.uint8)
    )
    dataset = grain.MapDataset.range(padded).map(record)
    dataset = dataset.batch(
        per_process, drop_remainder=True, batch_fn=_collate(data_cfg, evaluation)
    )
    return EvalBatches(dataset[process_index::process_count], data_cfg)
