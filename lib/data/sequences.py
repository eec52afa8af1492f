"""Token datasets: splits of integer sequences, and fixed-shape padded batches by example count
or by token count with length buckets.

A token source returns a `TokenSplit` whose records are dicts of 1-D int arrays, one per
feature ('inputs' and 'targets' for translation, 'tokens' for language modelling), already
ending in EOS where the task wants one. Id 0 is PAD everywhere; a batch pads every feature of
a record to the batch's length and carries 'mask' (1 for real records, 0 for padding rows).

Batching (data.batching):
- 'examples': data.batch_size records per batch, padded to data.max_length: one shape, one
  compilation (small runs, the spec's batch of 64 sentences).
- 'tokens': fairseq-style batches of about data.batch_tokens tokens. A record's length
  (its longest feature) puts it in a bucket, a multiple of data.bucket_step up to
  data.max_length; a bucket of length L holds batches of floor(batch_tokens / L) records,
  rounded down to a multiple of the device count. Each bucket's last batch is padded with
  masked rows, so there is one shape per bucket, compiled before training starts.

An epoch shuffles the records (seeded by the run's seed and the epoch), cuts them into batches
per bucket and shuffles the batch order: the number of batches per epoch is fixed, so global
batch g is a pure function of (seed, g) and the Grain iterator state is an index, as for
images. Records longer than data.max_length are dropped from training (counted in the log)
and refused in evaluation, where dropping them would bias the metric.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import grain
import numpy as np

from lib.config import ConfigError

log = logging.getLogger("lib.data.sequences")

BATCHINGS = ("examples", "tokens")


class TokenRecords:
    """In-memory token records: per feature, a list of 1-D int32 arrays, one per example;
    `labels` (optional) a class per example (GLUE)."""

    def __init__(self, features: dict[str, list], labels: np.ndarray | None = None):
        if not features:
            raise ValueError("token records need at least one feature")
        self.features = {k: [np.asarray(s, np.int32) for s in v] for k, v in features.items()}
        counts = {k: len(v) for k, v in self.features.items()}
        if len(set(counts.values())) != 1:
            raise ValueError(f"token features have different example counts: {counts}")
        self.labels = None if labels is None else np.asarray(labels, np.int32)
        if self.labels is not None and len(self.labels) != len(self):
            raise ValueError(f"{len(self.labels)} labels for {len(self)} examples")

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def __getitem__(self, index: int) -> dict:
        out = {k: v[index] for k, v in self.features.items()}
        if self.labels is not None:
            out["label"] = self.labels[index]
        return out

    def lengths(self) -> np.ndarray:
        """Each record's longest feature, in tokens."""
        return np.max([[len(s) for s in v] for v in self.features.values()], axis=0)

    def all_labels(self) -> np.ndarray | None:
        return self.labels

    def subset(self, indices: np.ndarray) -> TokenRecords:
        return TokenRecords({k: [v[i] for i in indices] for k, v in self.features.items()},
                            None if self.labels is None else self.labels[indices])


@dataclasses.dataclass(frozen=True)
class TokenSplit:
    """A split of token records and what batching must know before it sees any."""

    which: str
    records: TokenRecords
    vocab_size: int  # ids lie in [0, vocab_size); 0 is PAD
    num_classes: int = 0  # records carry 'label' (sentence classification)
    origin: str = ""


def check(data_cfg, split: TokenSplit) -> None:
    if data_cfg.batching not in BATCHINGS:
        raise ConfigError(f"data.batching={data_cfg.batching!r}; valid choices: "
                          f"{', '.join(BATCHINGS)}")
    if data_cfg.max_length < 1:
        raise ConfigError(f"{data_cfg.name} is a token dataset: set data.max_length, the "
                          "longest sequence a batch holds (tokens, EOS included)")
    if data_cfg.batching == "tokens" and data_cfg.batch_tokens < data_cfg.max_length:
        raise ConfigError(f"data.batch_tokens={data_cfg.batch_tokens} cannot hold one record "
                          f"of data.max_length={data_cfg.max_length} tokens")
    if not len(split.records):
        raise ConfigError(f"{data_cfg.name}: the {split.which} split has no records")


def buckets(data_cfg) -> np.ndarray:
    """Padded lengths: multiples of data.bucket_step, the last one data.max_length."""
    step, top = data_cfg.bucket_step, data_cfg.max_length
    if data_cfg.batching == "examples" or step < 1:
        return np.array([top])
    return np.unique(np.minimum(np.arange(step, top + step, step), top))


def bucket_batch_sizes(data_cfg, multiple: int) -> np.ndarray:
    """Records per batch in each bucket ('examples': data.batch_size)."""
    sizes = buckets(data_cfg)
    if data_cfg.batching == "examples":
        return np.array([data_cfg.batch_size])
    per = np.maximum(data_cfg.batch_tokens // sizes // multiple * multiple, multiple)
    return per.astype(int)


def _bucket_of(lengths: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.searchsorted(bounds, lengths)  # first bound >= length


@dataclasses.dataclass(frozen=True, eq=False)
class _Pad:
    """Records by index -> a batch: each feature padded with PAD to `length`, 'mask' marking
    real rows; index -1 is a padding row. 'index' (the record's position in its split) lets
    an evaluator put decoded outputs back in order."""

    records: TokenRecords
    length: int

    def __call__(self, indices: np.ndarray) -> dict:
        rows = len(indices)
        out = {}
        for key, seqs in self.records.features.items():
            batch = np.zeros((rows, self.length), np.int32)
            for r, i in enumerate(indices):
                if i >= 0:
                    batch[r, :len(seqs[i])] = seqs[i]
            out[key] = batch
        if self.records.labels is not None:
            out["label"] = np.where(indices >= 0, self.records.labels[np.maximum(indices, 0)], 0)
        out["mask"] = (indices >= 0).astype(np.float32)
        out["index"] = indices.astype(np.int32)
        return out


def _chunks(order: np.ndarray, bucket: np.ndarray, sizes: np.ndarray
            ) -> list[tuple[int, np.ndarray]]:
    """(bucket, record indices padded with -1 to the bucket's batch size) for `order`'s
    records, batched in order within each bucket."""
    out = []
    for b, size in enumerate(sizes):
        members = order[bucket[order] == b]
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            out.append((b, np.concatenate([chunk, np.full(size - len(chunk), -1)])))
    return out


class _TrainPlan:
    """Global batch g of the train stream: epoch g // n, batch g % n of that epoch's plan."""

    def __init__(self, records: TokenRecords, data_cfg, seed: int, multiple: int):
        bounds = buckets(data_cfg)
        lengths = records.lengths()
        self.keep = np.flatnonzero(lengths <= data_cfg.max_length)
        dropped = len(lengths) - len(self.keep)
        if not len(self.keep):
            raise ConfigError(f"every train record of {data_cfg.name} is longer than "
                              f"data.max_length={data_cfg.max_length}; raise it")
        if dropped:
            log.info("dropped %d of %d train records longer than data.max_length=%d",
                     dropped, len(lengths), data_cfg.max_length)
        self.bucket = _bucket_of(lengths, bounds)
        self.sizes = bucket_batch_sizes(data_cfg, multiple)
        self.pads = [_Pad(records, int(n)) for n in bounds]
        self.seed = seed
        self.per_epoch = len(_chunks(self.keep, self.bucket, self.sizes))
        self._epochs, self._lock = {}, threading.Lock()

    def epoch(self, e: int) -> list[tuple[int, np.ndarray]]:
        """Epoch e's batches in order; the last two epochs are kept (Grain's read threads
        ask for neighbouring batches concurrently)."""
        with self._lock:
            if e not in self._epochs:
                rng = np.random.default_rng([self.seed, e])
                batches = _chunks(rng.permutation(self.keep), self.bucket, self.sizes)
                self._epochs = {k: v for k, v in self._epochs.items() if k >= e - 1}
                self._epochs[e] = [batches[i] for i in rng.permutation(len(batches))]
            return self._epochs[e]

    def __call__(self, g: int) -> dict:
        bucket, indices = self.epoch(g // self.per_epoch)[g % self.per_epoch]
        return self.pads[bucket](indices)


@dataclasses.dataclass(frozen=True, eq=False)
class _Share:
    """Process `index` of `count`'s contiguous share of global batch `g`."""

    plan: object
    index: int
    count: int

    def __call__(self, g: int) -> dict:
        batch = self.plan(g)
        rows = len(batch["mask"])
        if rows % self.count:
            raise ConfigError(f"a batch of {rows} records does not divide over {self.count} "
                              "processes; change data.batch_size or data.batch_tokens")
        share = rows // self.count
        return {k: v[self.index * share:(self.index + 1) * share] for k, v in batch.items()}


def _multiple() -> int:
    import jax  # the device count: batches split evenly over the data-parallel devices

    return jax.device_count()


def train_dataset(data_cfg, split: TokenSplit, *, seed: int, process_index: int,
                  process_count: int) -> grain.MapDataset:
    check(data_cfg, split)
    plan = _TrainPlan(split.records, data_cfg, seed, _multiple())
    endless = len(grain.MapDataset.range(1).repeat())
    return grain.MapDataset.range(endless).map(_Share(plan, process_index, process_count))


def eval_dataset(data_cfg, split: TokenSplit, *, process_index: int, process_count: int
                 ) -> grain.MapDataset:
    """Every record once, in order within buckets, padded rows masked: with 'tokens' batching
    the train buckets and batch sizes, with 'examples' data.eval_batch_size records."""
    check(data_cfg, split)
    lengths = split.records.lengths()
    too_long = np.flatnonzero(lengths > data_cfg.max_length)
    if len(too_long):
        raise ConfigError(f"{len(too_long)} {split.which} records of {data_cfg.name} are longer "
                          f"than data.max_length={data_cfg.max_length} (the longest has "
                          f"{lengths.max()} tokens); raise data.max_length: dropping them would "
                          "bias the evaluation")
    bounds = buckets(data_cfg)
    if data_cfg.batching == "examples":
        sizes = np.array([data_cfg.eval_batch_size])
    else:
        sizes = bucket_batch_sizes(data_cfg, _multiple())
    batches = _chunks(np.arange(len(lengths)), _bucket_of(lengths, bounds), sizes)
    pads = [_Pad(split.records, int(n)) for n in bounds]
    plan = _EvalPlan(tuple(batches), tuple(pads))
    return grain.MapDataset.range(len(batches)).map(_Share(plan, process_index, process_count))


@dataclasses.dataclass(frozen=True, eq=False)
class _EvalPlan:
    batches: tuple
    pads: tuple

    def __call__(self, g: int) -> dict:
        bucket, indices = self.batches[g]
        return self.pads[bucket](indices)
