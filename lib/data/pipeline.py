"""Grain pipelines: an endless shuffled train stream with exact resume, and padded eval passes.

Records are pooled and augmented one at a time in raw pixel space, then stacked and normalised
per batch in one vectorised step. Batching happens on the MapDataset, so global batch g is
records [g*B, (g+1)*B) of the stream for any process count, and the iterator state stays a
small JSON dict (a position per worker).

In-memory splits (ArrayRecords) without augmentation, resizing or blur take a faster road to the
same batches: record indices in the same order, one numpy gather per key, the pooling and
normalisation applied to the whole batch. Grain's per-record bookkeeping (about 35 µs a record)
was a third of the step of the small models the verifies train.
"""

import dataclasses
import functools
import math
import threading

import grain
import numpy as np
from absl import flags

from lib import config as config_lib
from lib import registry
from lib.config import ConfigError
from lib.data import preprocess, sequences, sources
from lib.data.records import ArrayRecords

NORMALIZATIONS = ("dataset", "none", *preprocess.NORMALIZATION)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int, int]  # H, W, C of the batches' images (after pool / crop)
    num_classes: int  # 0: the records carry no labels
    num_train: int  # examples in the (possibly subset) train split
    num_eval: int
    origins: dict = dataclasses.field(default_factory=dict)  # split role -> where it is read from
    views: tuple = ()  # multi-view batches: (count, side) per group of batch['views']
    keys: tuple = ()  # record keys of a train batch besides 'image' and 'label'
    vocab_size: int = 0  # token datasets (image_shape ()): ids lie in [0, vocab_size)


def _spatial(record: dict, spatial: tuple) -> dict:
    """The arrays that move with the image; extras become float32 so resizes stay exact."""
    return {"image": record["image"],
            **{k: np.asarray(record[k], np.float32) for k in spatial}}


@dataclasses.dataclass(frozen=True)
class _Prepare:
    """Deterministic record transform: pool, for ImageNet eval resize + center crop, blur.
    The split's spatial keys are pooled and cropped with the image (not blurred)."""

    pool: int
    center_crop: int  # 0 = none
    blur: int = 0
    spatial: tuple = ()

    def __call__(self, record: dict) -> dict:
        arrays = {k: preprocess.pool(v, self.pool)
                  for k, v in _spatial(record, self.spatial).items()}
        if self.center_crop:
            arrays = {k: preprocess.resize_center_crop(v, self.center_crop)
                      for k, v in arrays.items()}
        arrays["image"] = preprocess.blur(arrays["image"], self.blur)
        return {**record, **arrays}


@dataclasses.dataclass(frozen=True)
class Augment:
    """Random train transforms of one record; grain seeds `rng` from (seed, position in the
    stream). Subclasses override `transform` on the record's spatial arrays (the image and the
    split's spatial keys, already pooled), drawing each random parameter once for all of
    them. A paper's own augmentation is such a class, named data.augment = "module:Name".
    One that resamples to new sizes sets `resizes = True` (data.image_size then applies)."""

    resizes = False

    data_cfg: object
    size: int  # side of the output images
    spatial: tuple = ()

    def transform(self, arrays: dict, rng: np.random.Generator) -> dict:
        return arrays

    def __call__(self, record: dict, rng: np.random.Generator) -> dict:
        arrays = {k: preprocess.pool(v, self.data_cfg.pool)
                  for k, v in _spatial(record, self.spatial).items()}
        arrays = self.transform(arrays, rng)
        if "image" in arrays:
            arrays["image"] = preprocess.blur(arrays["image"], self.data_cfg.blur)
        return {**record, **arrays}


class Flip(Augment):
    def transform(self, arrays, rng):
        return preprocess.flip(arrays, rng)


class CifarCrop(Augment):
    """Flip, then a random crop from the image zero-padded by 4."""

    def transform(self, arrays, rng):
        return preprocess.pad_crop(preprocess.flip(arrays, rng), rng)


class InceptionCrop(Augment):
    """Inception-style random resized crop to data.image_size (area fraction in
    data.crop_scale, aspect in data.crop_ratio), then a flip; then, where set, colour jitter
    (data.color_jitter) and PCA lighting (data.lighting) of the image, in that order."""

    resizes = True

    def transform(self, arrays, rng):
        arrays = preprocess.flip(preprocess.random_resized_crop(
            arrays, rng, self.size, *crop_ranges(self.data_cfg)), rng)
        jitter, lighting = self.data_cfg.color_jitter, self.data_cfg.lighting
        if jitter:
            arrays["image"] = preprocess.color_jitter(arrays["image"], rng, jitter, jitter,
                                                      jitter)
        if lighting:
            arrays["image"] = preprocess.pca_lighting(arrays["image"], rng, lighting)
        return arrays


class Views(Augment):
    """Several views of one record (SimCLR's two crops, SwAV's 2 global + k local): group g
    gives data.views[g] random resized crops of side data.view_sizes[g], area fraction in
    [view_min_scale[g], view_max_scale[g]], each flipped at random. The record's image and
    spatial keys are replaced by 'views': a list of one dict per group, {key: [count, S, S, C]}.
    Colour and blur, which need no resampling, can run on device (lib.data.device_augment)."""

    resizes = True

    def __call__(self, record, rng):
        arrays = {k: preprocess.pool(v, self.data_cfg.pool)
                  for k, v in _spatial(record, self.spatial).items()}
        groups = []
        for count, side, low, high in view_groups(self.data_cfg):
            crops = [preprocess.flip(preprocess.random_resized_crop(arrays, rng, side,
                                                                    (low, high)), rng)
                     for _ in range(count)]
            groups.append({k: np.stack([c[k] for c in crops]) for k in arrays})
        rest = {k: v for k, v in record.items() if k not in arrays}
        return {**rest, "views": groups}


def crop_ranges(data_cfg) -> tuple[tuple[float, float], tuple[float, float]]:
    """(data.crop_scale, data.crop_ratio), each checked to be a (low, high) pair."""
    pairs = (tuple(data_cfg.crop_scale), tuple(data_cfg.crop_ratio))
    for name, pair in zip(("crop_scale", "crop_ratio"), pairs):
        if len(pair) != 2 or pair[0] > pair[1]:
            raise ConfigError(f"data.{name}={pair}: give a (low, high) pair with low <= high")
    return pairs


AUGMENTS = {"none": None, "flip": Flip, "cifar": CifarCrop, "imagenet": InceptionCrop,
            "views": Views}


def view_groups(data_cfg) -> list[tuple[int, int, float, float]]:
    """(count, side, min scale, max scale) per view group; [] unless data.augment is 'views'
    or a paper's subclass of Views."""
    augment_class = _augment_class(data_cfg)
    if not (isinstance(augment_class, type) and issubclass(augment_class, Views)):
        return []
    counts = [n for n in data_cfg.views if n]
    sides, lows, highs = (list(data_cfg.view_sizes), list(data_cfg.view_min_scale),
                          list(data_cfg.view_max_scale))
    if not counts:
        raise ConfigError(f"data.augment={data_cfg.augment!r} needs data.views, the number "
                          "of views per group (e.g. (2,) for two crops, (2, 6) for 2 global "
                          "+ 6 local)")
    if not len(sides) == len(lows) == len(highs) == len(counts):
        raise ConfigError(f"data.views={tuple(data_cfg.views)} has {len(counts)} groups; "
                          "data.view_sizes, view_min_scale and view_max_scale need one entry "
                          f"each (they have {len(sides)}, {len(lows)}, {len(highs)})")
    for side, low, high in zip(sides, lows, highs):
        if side < 1 or not 0 < low <= high <= 1:
            raise ConfigError(f"data.view_sizes={tuple(sides)}, view_min_scale={tuple(lows)}, "
                              f"view_max_scale={tuple(highs)}: sides must be >= 1 and "
                              "0 < min scale <= max scale <= 1")
    return list(zip(counts, sides, lows, highs))


def _augment_class(data_cfg):
    if registry.is_spec(data_cfg.augment):
        return registry.resolve(data_cfg.augment, "data.augment")
    if data_cfg.augment not in AUGMENTS:
        raise ConfigError(f"data.augment={data_cfg.augment!r}; expected one of "
                          f"{tuple(AUGMENTS)} or a 'module:Name' Augment class")
    return AUGMENTS[data_cfg.augment]


IMAGE_KEYS = ("image", "negative")  # record keys normalised as images ('negative': an extra
# image an augmentation adds, as BG_Swaps' hard negative)


@dataclasses.dataclass(frozen=True, eq=False)
class _Collate:
    """Stacks records into a batch and normalises its images: image * scale + shift per
    channel (every key of IMAGE_KEYS, and every view's image). Other keys are stacked as
    they come."""

    scale: np.ndarray
    shift: np.ndarray

    def _images(self, images: np.ndarray) -> np.ndarray:
        """float32 images · scale + shift, in one pass over rows of W·C values: the same
        float32 result as per channel, where numpy's innermost loop would run over the C = 3
        channels only (4.5× slower on a batch of 256 ImageNet crops)."""
        w, c = images.shape[-2:]
        rows = images.reshape(-1, w * c)
        out = np.multiply(rows, np.tile(np.broadcast_to(self.scale, (c,)), w), dtype=np.float32)
        out += np.tile(np.broadcast_to(self.shift, (c,)), w)
        return out.reshape(images.shape)

    def arrays(self, batch: dict) -> dict:
        """The same batch from arrays already stacked (the in-memory road)."""
        out = {**batch, "image": self._images(batch["image"])}
        if "label" in out:
            out["label"] = np.asarray(out["label"], np.int32)
        if "mask" in out:
            out["mask"] = np.asarray(out["mask"], np.float32)
        return out

    def __call__(self, records: list[dict]) -> dict:
        batch = {}
        for key in records[0]:
            if key == "views":
                batch[key] = [{k: self._images(v) if k == "image" else v
                               for k, v in _stack([r[key][g] for r in records]).items()}
                              for g in range(len(records[0][key]))]
            elif key in IMAGE_KEYS:
                batch[key] = self._images(np.stack([r[key] for r in records]))
            elif key == "label":
                batch[key] = np.array([r[key] for r in records], np.int32)
            elif key == "mask":
                batch[key] = np.array([r[key] for r in records], np.float32)
            else:
                batch[key] = np.stack([r[key] for r in records])
        return batch


_PERMUTATION_LOCK = threading.Lock()  # Grain's read threads ask for batches concurrently


@functools.lru_cache(maxsize=64)
def _epoch_permutation(size: int, shuffle_seed: int, epoch: int) -> np.ndarray:
    """Grain's shuffle of epoch `epoch`: index_shuffle at seed (s + e) mod 2³². It costs up to
    ~90 µs a record on small splits and holds the GIL, so it is kept for the runs that follow
    in this process (IMP levels and stages reread the same epochs)."""
    seed = (shuffle_seed + epoch) % 2**32
    shuffle = grain.experimental.index_shuffle
    return np.array([shuffle(k, max_index=size - 1, seed=seed, rounds=4)
                     for k in range(size)], np.int64)


class _StreamOrder:
    """Record indices of the train stream `MapDataset.source(records).seed(seed).shuffle()
    .repeat()`, an epoch's permutation at a time: Grain's shuffle draws epoch e at seed
    (s + e) mod 2³², s the seed `.seed(seed)` derives for it. s is read from a
    ShuffleMapDataset (`_seed`, not public API); tests/test_records.py checks the indices
    against Grain's own stream, so a Grain that changes this fails there."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self._shuffle_seed = grain.MapDataset.range(size).seed(seed).shuffle()._seed

    def _epoch(self, epoch: int) -> np.ndarray:
        with _PERMUTATION_LOCK:
            return _epoch_permutation(self.size, self._shuffle_seed, epoch)

    def indices(self, start: int, count: int) -> np.ndarray:
        positions = np.arange(start, start + count)
        epochs = positions // self.size
        return np.concatenate([self._epoch(int(e))[positions[epochs == e] % self.size]
                               for e in np.unique(epochs)])


@dataclasses.dataclass(frozen=True, eq=False)
class _GatherBatch:
    """A batch of an in-memory split by record indices: one gather per key, then `prepare`
    (pooling only: `_in_memory` decides) and `collate` on the whole batch. Equal, value for
    value, to transforming and stacking the records one by one (tests/test_records.py).

    With `pad`, that many zero records follow (zeros of the prepared arrays, as
    `_PaddedEval`), and 'mask' marks the real ones."""

    records: ArrayRecords
    prepare: _Prepare
    collate: _Collate

    def __call__(self, indices: np.ndarray, pad: int | None = None) -> dict:
        r = self.records
        batch = {"image": r.images[indices],
                 **({"label": r.labels[indices]} if r.labels is not None else {}),
                 **{k: v[indices] for k, v in r.extra.items()}}
        batch.update({k: preprocess.pool(v, self.prepare.pool)
                      for k, v in _spatial(batch, self.prepare.spatial).items()})
        if pad is not None:
            real = len(indices)
            batch = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
                     for k, v in batch.items()}
            batch["mask"] = np.arange(real + pad) < real
        return self.collate.arrays(batch)


def _in_memory(records, transform) -> bool:
    """Whether batches can be gathered whole: in-memory records and no per-record randomness,
    resizing or blur."""
    return (isinstance(records, ArrayRecords) and isinstance(transform, _Prepare)
            and not transform.center_crop and transform.blur <= 1)


@dataclasses.dataclass(frozen=True, eq=False)
class _TrainBatch:
    """Global batch `index` of the train stream: records [index*B, (index+1)*B)."""

    order: _StreamOrder
    gather: _GatherBatch
    batch_size: int

    def __call__(self, index: int) -> dict:
        return self.gather(self.order.indices(index * self.batch_size, self.batch_size))


@dataclasses.dataclass(frozen=True, eq=False)
class _EvalBatch:
    """Eval batch `index` of a pass padded to whole batches: real records, then zero records
    with mask 0."""

    gather: _GatherBatch
    batch_size: int

    def __call__(self, index: int) -> dict:
        start = index * self.batch_size
        real = np.arange(start, min(start + self.batch_size, len(self.gather.records)))
        return self.gather(real, pad=self.batch_size - len(real))


def _stack(records: list[dict]) -> dict:
    return {k: np.stack([r[k] for r in records]) for k in records[0]}


@dataclasses.dataclass(frozen=True, eq=False)
class _PaddedEval:
    """Eval record by index; indices past the split give zeros shaped like the first record,
    with mask 0."""

    records: object
    prepare: _Prepare

    def __call__(self, index: int) -> dict:
        if index < len(self.records):
            return {**self.prepare(self.records[index]), "mask": 1.0}
        first = self.prepare(self.records[0])
        return {**{k: np.zeros_like(v) for k, v in first.items()}, "mask": 0.0}


def _resizes(data_cfg) -> bool:
    """Whether the train augmentation resamples (its class sets `resizes`): then
    data.image_size sets the eval resize + center crop, and images may vary in size."""
    return bool(getattr(_augment_class(data_cfg), "resizes", False))


def _check(data_cfg) -> None:
    augment_class = _augment_class(data_cfg)
    if data_cfg.normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"data.normalization={data_cfg.normalization!r}; expected one of {NORMALIZATIONS}"
        )
    if data_cfg.pool < 1:
        raise ConfigError(f"data.pool={data_cfg.pool} must be >= 1")
    if _resizes(data_cfg) and data_cfg.pool != 1:
        raise ConfigError(
            f"data.augment={data_cfg.augment!r} sets the resolution with data.image_size "
            "(and data.view_sizes); use pool=1")
    if not _resizes(data_cfg) and data_cfg.image_size:
        raise ConfigError(f"data.image_size is used only with an augmentation that resamples "
                          f"('imagenet', 'views' or its like), not data.augment="
                          f"{data_cfg.augment!r}; set it to 0")
    if augment_class is not None and not (isinstance(augment_class, type)
                                          and issubclass(augment_class, Augment)):
        raise ConfigError(f"data.augment={data_cfg.augment!r} is not a subclass of "
                          "lib.data.pipeline.Augment")
    view_groups(data_cfg)
    crop_ranges(data_cfg)


def _image_shape(data_cfg, split: sources.Split) -> tuple[int, int, int]:
    """Shape of the batches' 'image' (for 'views': of eval images; train views have theirs)."""
    h, w, c = split.image_shape
    if _resizes(data_cfg):
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
    if isinstance(train, sequences.TokenSplit):
        sequences.check(data_cfg, train)
        return DatasetInfo(data_cfg.name, (), train.num_classes, len(train.records),
                           len(evaluation.records),
                           {"train": train.origin, "eval": evaluation.origin},
                           keys=tuple(train.records.features), vocab_size=train.vocab_size)
    keys = tuple(k for k in train.records[0] if k not in ("image", "label")) if len(
        train.records) else ()
    return DatasetInfo(
        data_cfg.name,
        _image_shape(data_cfg, train),
        train.num_classes,
        len(train.records),
        len(evaluation.records),
        {"train": train.origin, "eval": evaluation.origin},
        tuple((n, side) for n, side, _, _ in view_groups(data_cfg)),
        keys,
    )


def _check_color(data_cfg, split: sources.Split) -> None:
    """Colour jitter and lighting act on 8-bit pixels (lighting: RGB) after the imagenet crop."""
    if not (data_cfg.color_jitter or data_cfg.lighting):
        return
    augment_class = _augment_class(data_cfg)
    if not (isinstance(augment_class, type) and issubclass(augment_class, InceptionCrop)):
        raise ConfigError(f"data.color_jitter and data.lighting follow the imagenet crop; "
                          f"data.augment={data_cfg.augment!r} ignores them: set "
                          "data.augment='imagenet' or leave them at 0")
    if split.max_value != 255:
        raise ConfigError(f"data.color_jitter and data.lighting need 8-bit pixels; "
                          f"{data_cfg.name}'s go to {split.max_value}: leave them at 0")
    if data_cfg.lighting and split.image_shape[-1] != 3:
        raise ConfigError(f"data.lighting (PCA lighting) needs RGB images; {data_cfg.name} "
                          f"has {split.image_shape[-1]} channel(s): set data.lighting=0")


def _train_transform(data_cfg, split: sources.Split, size: int):
    _check_color(data_cfg, split)
    augment_class = _augment_class(data_cfg)
    if augment_class is None:
        return _Prepare(data_cfg.pool, 0, data_cfg.blur, split.spatial)
    return augment_class(data_cfg, size, split.spatial)


def train_iterator(data_cfg, *, seed: int, process_index: int = 0, process_count: int = 1):
    """Endless batches of this process's share of each global batch; get_state/set_state resume.

    The stream is a fresh permutation of the train split every epoch (seeded by `seed`); batches
    are full and run across epoch boundaries.
    """
    _check(data_cfg)
    per_process = _per_process(data_cfg.batch_size, process_count, "batch_size")
    train = sources.open_split(data_cfg, "train")
    if isinstance(train, sequences.TokenSplit):
        return iter(_to_iter(sequences.train_dataset(
            data_cfg, train, seed=seed, process_index=process_index,
            process_count=process_count), data_cfg))
    shape = _image_shape(data_cfg, train)
    transform = _train_transform(data_cfg, train, shape[0])
    collate = _collate(data_cfg, train)
    if _in_memory(train.records, transform):
        batches = len(grain.MapDataset.range(len(train.records)).repeat().batch(
            per_process, drop_remainder=True))
        dataset = grain.MapDataset.range(batches).map(_TrainBatch(
            _StreamOrder(len(train.records), seed), _GatherBatch(train.records, transform, collate),
            per_process))
    else:
        dataset = grain.MapDataset.source(train.records).seed(seed).shuffle().repeat()
        dataset = (dataset.map(transform) if isinstance(transform, _Prepare)
                   else dataset.random_map(transform))
        dataset = dataset.batch(per_process, drop_remainder=True, batch_fn=collate)
    return iter(_to_iter(dataset[process_index::process_count], data_cfg))


class EvalBatches:
    """Re-iterable eval pass: every `iter()` starts a fresh, ordered pass. The batches of an
    in-memory split (`keep`) are kept after the first complete pass, up to KEPT_BYTES: they are
    the same every pass, and runs that evaluate every epoch of a small split would otherwise
    spend more time building them than evaluating."""

    KEPT_BYTES = 2**30

    def __init__(self, dataset: grain.MapDataset, data_cfg, keep: bool = False):
        self._dataset, self._data_cfg, self._keep = dataset, data_cfg, keep
        self._kept = None

    def __len__(self) -> int:
        return len(self._dataset)

    def __iter__(self):
        if self._kept is not None:
            return iter(self._kept)
        return self._pass()

    def _pass(self):
        kept, size = [], 0
        for batch in _to_iter(self._dataset, self._data_cfg):
            if self._keep and size <= self.KEPT_BYTES:
                kept.append(batch)
                for v in batch.values():  # shared by later passes: in-place edits must fail
                    if isinstance(v, np.ndarray):
                        v.setflags(write=False)
                        size += v.nbytes
            yield batch
        if self._keep and size <= self.KEPT_BYTES:
            self._kept = kept


def eval_set_specs(sets) -> dict[str, dict]:
    """config.eval.sets entries -> {label: eval_batches keyword arguments}.

    'validation' is that split of the run's dataset, logged as eval_validation/…;
    'label=split' names it; 'label=dataset@split' reads another dataset (ImageNet-9
    Mixed-Rand, a corrupted copy) with the run's preprocessing and normalisation."""
    out = {}
    for entry in (e for e in sets if e):
        label, _, rest = entry.partition("=")
        dataset, at, split = (rest or label).rpartition("@")
        if not label.isidentifier() or (at and not (dataset and split)) or not split:
            raise ConfigError(f"eval.sets entry {entry!r}: expected 'split', 'label=split' or "
                              "'label=dataset@split' with an identifier label")
        if label in out:
            raise ConfigError(f"eval.sets: label {label!r} appears twice")
        out[label] = ({"other": {"name": dataset, "eval_split": split}} if dataset
                      else {"split": split})
    return out


def eval_batches(data_cfg, *, process_index: int = 0, process_count: int = 1,
                 other: dict | None = None, split: str = "") -> EvalBatches:
    """One ordered pass over the eval split; the last global batch is padded, 'mask' marks reals.

    `split` names another split of the same dataset in the eval split's place (an eval set such
    as 'validation'). `other` ({'name', 'eval_split', 'data_dir'}) reads another dataset's
    split there with this config's preprocessing and normalisation: the released corrupted
    copies of a test set (cifar10_corrupted/<corruption>_<severity>, tiny_imagenet_c/...), a
    background-swapped test set.
    """
    _check(data_cfg)
    per_process = _per_process(data_cfg.eval_batch_size, process_count, "eval_batch_size")
    evaluation = sources.open_split(data_cfg, "eval", split or None)
    if isinstance(evaluation, sequences.TokenSplit):
        return EvalBatches(sequences.eval_dataset(data_cfg, evaluation,
                                                  process_index=process_index,
                                                  process_count=process_count),
                           data_cfg, keep=True)
    shape = _image_shape(data_cfg, evaluation)
    if other:
        clean, evaluation = evaluation, sources.open_split(config_lib.updated(data_cfg, other),
                                                           "eval")
        if _image_shape(data_cfg, evaluation) != shape:
            raise ConfigError(f"{other['name']} images are {evaluation.image_shape}, the eval "
                              f"split's {clean.image_shape}")
    crop = shape[0] if _resizes(data_cfg) else 0
    num = len(evaluation.records)
    padded = math.ceil(num / data_cfg.eval_batch_size) * data_cfg.eval_batch_size
    prepare = _Prepare(data_cfg.pool, crop, data_cfg.blur, evaluation.spatial)
    collate = _collate(data_cfg, evaluation)
    in_memory = _in_memory(evaluation.records, prepare)
    if in_memory:
        dataset = grain.MapDataset.range(padded // per_process).map(
            _EvalBatch(_GatherBatch(evaluation.records, prepare, collate), per_process))
    else:
        dataset = grain.MapDataset.range(padded).map(_PaddedEval(evaluation.records, prepare))
        dataset = dataset.batch(per_process, drop_remainder=True, batch_fn=collate)
    return EvalBatches(dataset[process_index::process_count], data_cfg, keep=in_memory)
