"""Tiny ImageNet and Tiny ImageNet-C from the user's files (class_selectivity.md §3).

Neither is in TFDS; the code reads the released folder layouts as they unpack:

    tiny_imagenet    <root>/wnids.txt, <root>/train/<wnid>/images/*.JPEG,
                     <root>/val/images/*.JPEG labelled by <root>/val/val_annotations.txt
                     splits: train (100,000), validation (10,000; the papers' test set)
    tiny_imagenet_c  <root>/<corruption>/<severity>/<wnid>/*.JPEG (the validation images),
                     named like TFDS configs: tiny_imagenet_c/gaussian_noise_3, split validation

<root> is data.data_dir, else $TINY_IMAGENET_DIR / $TINY_IMAGENET_C_DIR. Class c is the c-th
wnid in sorted order in both, so a model trained on one is evaluated on the other with the
same labels; validation images are ordered by (class, file name), the order of
tiny_imagenet_c, so clean and corrupted batches pair up image by image. Images are decoded
lazily and converted to RGB (a few Tiny ImageNet images are grayscale JPEGs).
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np
from PIL import Image

from lib.config import ConfigError
from lib.data.errors import DatasetNotFoundError
from lib.data.records import spaced_images

NAMES = ("tiny_imagenet", "tiny_imagenet_c")
NUM_CLASSES = 200
IMAGE_SHAPE = (64, 64, 3)
_ENV = {"tiny_imagenet": "TINY_IMAGENET_DIR", "tiny_imagenet_c": "TINY_IMAGENET_C_DIR"}
_LAYOUT = {"tiny_imagenet": "wnids.txt, train/<wnid>/images/*.JPEG and val/",
           "tiny_imagenet_c": "<corruption>/<severity>/<wnid>/*.JPEG"}
_IMAGE = re.compile(r".*\.(jpe?g|png)$", re.IGNORECASE)


class FileRecords:
    """A split of image files with integer labels, decoded on access."""

    def __init__(self, paths: list, labels: np.ndarray):
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        with Image.open(self.paths[index]) as image:
            pixels = np.asarray(image.convert("RGB"), np.uint8)
        return {"image": pixels, "label": self.labels[index]}

    def all_labels(self) -> np.ndarray:
        return self.labels

    def stats_images(self):
        return spaced_images(self)

    def subset(self, indices: np.ndarray) -> FileRecords:
        return FileRecords([self.paths[i] for i in indices], self.labels[indices])


def folder(name: str, data_dir: str) -> pathlib.Path:
    """The unpacked release folder of `name` (tiny_imagenet or tiny_imagenet_c)."""
    root = data_dir or os.environ.get(_ENV[name], "")
    if not root:
        raise DatasetNotFoundError(
            f"{name} is read from the user's files: set data.data_dir (or ${_ENV[name]}) to the "
            f"unpacked folder holding {_LAYOUT[name]}")
    path = pathlib.Path(root).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"{name}: folder {path} does not exist (data.data_dir or "
                                   f"${_ENV[name]}); it should hold {_LAYOUT[name]}")
    return path


def _images(folder: pathlib.Path) -> list:
    return sorted(p for p in folder.iterdir() if _IMAGE.match(p.name))


def _check_classes(name: str, wnids: list, where: pathlib.Path) -> dict:
    if len(wnids) != NUM_CLASSES:
        raise DatasetNotFoundError(f"{name}: {where} has {len(wnids)} classes, expected "
                                   f"{NUM_CLASSES} (is this the unpacked release?)")
    return {wnid: i for i, wnid in enumerate(sorted(wnids))}


def _tiny_imagenet(root: pathlib.Path, split: str) -> FileRecords:
    wnids_file = root / "wnids.txt"
    if not wnids_file.exists():
        raise DatasetNotFoundError(f"tiny_imagenet: {wnids_file} is missing; data.data_dir must "
                                   f"be the unpacked folder holding {_LAYOUT['tiny_imagenet']}")
    label = _check_classes("tiny_imagenet", wnids_file.read_text().split(), wnids_file)
    paths, labels = [], []
    if split == "train":
        for wnid, c in sorted(label.items()):
            found = _images(root / "train" / wnid / "images")
            paths += found
            labels += [c] * len(found)
    elif split == "validation":  # ordered by (class, file) as tiny_imagenet_c is
        rows = [line.split("\t")[:2] for line in
                (root / "val" / "val_annotations.txt").read_text().splitlines() if line.strip()]
        for file, wnid in sorted(rows, key=lambda row: (label[row[1]], row[0])):
            paths.append(root / "val" / "images" / file)
            labels.append(label[wnid])
    else:
        raise ConfigError(f"tiny_imagenet has splits train and validation, not {split!r}")
    return FileRecords(paths, np.asarray(labels, np.int32))


def _tiny_imagenet_c(root: pathlib.Path, variant: str, split: str) -> FileRecords:
    corruption, _, severity = variant.rpartition("_")
    folder = root / corruption / severity
    if not corruption or not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise ConfigError(f"tiny_imagenet_c/{variant}: no folder {folder}; name a variant "
                          f"'tiny_imagenet_c/<corruption>_<severity>' with corruptions "
                          f"{', '.join(known)}")
    if split != "validation":
        raise ConfigError(f"tiny_imagenet_c has only the split validation, not {split!r}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    label = _check_classes("tiny_imagenet_c", classes, folder)
    paths, labels = [], []
    for wnid in classes:
        found = _images(folder / wnid)
        paths += found
        labels += [label[wnid]] * len(found)
    return FileRecords(paths, np.asarray(labels, np.int32))


def load(name: str, split: str, data_dir: str) -> FileRecords:
    """The split's records; fails with what to set when the files are not there."""
    base, _, variant = name.partition("/")
    if base not in NAMES or bool(variant) != (base == "tiny_imagenet_c"):
        raise ConfigError(f"unknown dataset {name!r}: use tiny_imagenet or "
                          "tiny_imagenet_c/<corruption>_<severity>")
    root = folder(base, data_dir)
    records = (_tiny_imagenet(root, split) if base == "tiny_imagenet"
               else _tiny_imagenet_c(root, variant, split))
    if not len(records):
        raise DatasetNotFoundError(f"{name}: split {split!r} under {root} holds no images")
    return records
