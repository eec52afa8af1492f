"""What every data source returns: a Split of random-access records, and subsets of it.

A record is a dict of arrays. 'image' (raw HWC pixels) is always there; 'label' (an int) where
the dataset has class labels; any other key is carried through augmentation, batching and eval
padding unchanged, except the split's `spatial` keys (e.g. 'fg_mask', HWC like the image),
which get exactly the image's crops, flips and resizes. Sources live in lib/data/sources.py
(built-in names) or in any module named as data.name = "module:Name".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from lib.config import ConfigError

STATS_RECORDS = 1024  # records read for "dataset" normalisation stats where decoded one by one
_CHUNK = 4096  # records per vectorised step over in-memory arrays


class Records(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> dict: ...
    def all_labels(self) -> np.ndarray | None: ...  # None: a split without class labels
    def stats_images(self) -> Iterator[np.ndarray]: ...
    def subset(self, indices: np.ndarray) -> Records: ...


@dataclasses.dataclass(frozen=True)
class Split:
    """A split's records and what preprocessing must know before it sees any record."""

    which: str  # the role in data_cfg ('train', 'eval', or an eval set's name)
    records: Records
    image_shape: tuple  # raw H, W, C; None for a dimension that varies between records
    num_classes: int  # 0: records carry no 'label'
    max_value: float  # raw pixel value of full intensity (255; 16 for digits)
    origin: str = ""  # where the records are read from (recorded in run.json)
    spatial: tuple = ()  # record keys besides 'image' transformed with it (HWC, same H, W)


def spaced_images(records: Records) -> Iterator[np.ndarray]:
    """At most STATS_RECORDS evenly spaced images, one [H, W, C] at a time: the statistics
    sample of sources whose records are decoded one by one."""
    picks = np.unique(np.linspace(0, len(records) - 1,
                                  min(len(records), STATS_RECORDS)).astype(int))
    return (records[int(i)]["image"] for i in picks)


class ArrayRecords:
    """An in-memory split: records are views into one image array, one label array (None for
    unlabelled data) and optional arrays of further keys, all indexed by example."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, **extra: np.ndarray):
        self.images, self.labels, self.extra = images, labels, extra
        for key, values in extra.items():
            if len(values) != len(images):
                raise ValueError(f"ArrayRecords: {key!r} has {len(values)} entries, the images "
                                 f"{len(images)}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        record = {"image": self.images[index]}
        if self.labels is not None:
            record["label"] = self.labels[index]
        return {**record, **{k: v[index] for k, v in self.extra.items()}}

    def all_labels(self) -> np.ndarray | None:
        return self.labels

    def stats_images(self) -> Iterator[np.ndarray]:
        """Every image, in chunks of [n, H, W, C]."""
        return (self.images[i : i + _CHUNK] for i in range(0, len(self), _CHUNK))

    def subset(self, indices: np.ndarray) -> ArrayRecords:
        labels = None if self.labels is None else self.labels[indices]
        return ArrayRecords(self.images[indices], labels,
                            **{k: v[indices] for k, v in self.extra.items()})


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


def subset_indices(records: Records, count: int, seed: int, stratified: bool = True
                   ) -> np.ndarray:
    """`count` examples: stratified where the split has labels (and `stratified`), else a
    seeded uniform draw, which reads no record (all_labels decodes a TFDS split whole)."""
    labels = records.all_labels() if stratified else None
    if labels is not None:
        return stratified_subset(labels, count, seed)
    if count > len(records):
        raise ConfigError(f"asked for a subset of {count} examples from a split of "
                          f"{len(records)}")
    return np.sort(np.random.default_rng(seed).permutation(len(records))[:count])


def hold_out(records: Records, count: int, seed: int) -> dict[str, Records]:
    """{'train': the rest, 'validation': `count` held-out examples}: disjoint, seeded
    (stratified where labelled), so model selection never looks at the test split."""
    if not 0 < count < len(records):
        raise ConfigError(f"data.validation_examples={count} must lie in [1, {len(records) - 1}]"
                          f": the train split has {len(records)} examples")
    held = subset_indices(records, count, seed)
    rest = np.setdiff1d(np.arange(len(records)), held)
    return {"train": records.subset(rest), "validation": records.subset(held)}
