"""ImageNet-9 (the `backgrounds_challenge` release) from the user's files, for background
robustness (background_aug.md §4).

    data.name = "imagenet9/<variant>"   split "val"   data.data_dir = <root> (or $IMAGENET9_DIR)

Layout as the release unpacks: <root>/<variant>/val/<NN>_<name>/*.JPEG for the variants
original, only_fg, mixed_same, mixed_rand, mixed_next, no_fg, only_bg_b, only_bg_t; the label
of a folder is its number NN (0–8), and <root>/in_to_in9.json maps every ImageNet class index
("0" … "999") to its IN-9 class, or −1 for a class outside the nine. Images are 224×224 and
are evaluated as they are (no resize: data.augment='none', data.image_size=0).
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from lib.config import ConfigError
from lib.data.errors import DatasetNotFoundError
from lib.data.tiny_imagenet import FileRecords, _images

NAME = "imagenet9"
VARIANTS = ("original", "only_fg", "mixed_same", "mixed_rand", "mixed_next", "no_fg",
            "only_bg_b", "only_bg_t")
NUM_CLASSES = 9
IMAGE_SHAPE = (224, 224, 3)
MAP_FILE = "in_to_in9.json"
_ENV = "IMAGENET9_DIR"
_LAYOUT = f"<variant>/val/<NN>_<name>/*.JPEG and {MAP_FILE}"


def root(data_dir: str) -> pathlib.Path:
    given = data_dir or os.environ.get(_ENV, "")
    if not given:
        raise DatasetNotFoundError(
            f"{NAME} is read from the user's files: set data.data_dir (or ${_ENV}) to the "
            f"unpacked backgrounds_challenge folder holding {_LAYOUT}")
    path = pathlib.Path(given).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"{NAME}: folder {path} does not exist (data.data_dir or "
                                   f"${_ENV}); it should hold {_LAYOUT}")
    return path


def load(name: str, split: str, data_dir: str) -> FileRecords:
    """One variant's images with their IN-9 labels."""
    base, _, variant = name.partition("/")
    if base != NAME or variant not in VARIANTS:
        raise ConfigError(f"unknown dataset {name!r}: use imagenet9/<variant> with a variant "
                          f"of {', '.join(VARIANTS)}")
    if split != "val":
        raise ConfigError(f"{NAME} has only the split val, not {split!r}")
    folder = root(data_dir) / variant / "val"
    classes = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    numbers = [p.name.partition("_")[0] for p in classes]
    if numbers != [f"{i:02d}" for i in range(NUM_CLASSES)]:
        raise DatasetNotFoundError(
            f"{NAME}: {folder} should hold the nine class folders 00_… to 08_…; it holds "
            f"{[p.name for p in classes] or 'none'}")
    paths, labels = [], []
    for label, path in enumerate(classes):
        found = _images(path)
        paths += found
        labels += [label] * len(found)
    return FileRecords(paths, np.asarray(labels, np.int32))


def class_map(data_dir: str, num_classes: int = 1000) -> np.ndarray:
    """[num_classes] int32: the IN-9 class of each ImageNet class, −1 outside the nine."""
    path = root(data_dir) / MAP_FILE
    if not path.is_file():
        raise DatasetNotFoundError(f"{NAME}: {path} is missing; the release ships it at the "
                                   "top of its folder")
    mapping = json.loads(path.read_text())
    missing = [str(i) for i in range(num_classes) if str(i) not in mapping]
    bad = {k: v for k, v in mapping.items() if v not in range(-1, NUM_CLASSES)}
    if missing or bad:
        raise DatasetNotFoundError(
            f"{NAME}: {path} must map every class index 0..{num_classes - 1} to an IN-9 class "
            f"0..8 or -1; " + (f"missing {missing[:3]}" if missing else f"bad values {bad}"))
    return np.array([mapping[str(i)] for i in range(num_classes)], np.int32)
