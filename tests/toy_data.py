"""Data sources for tests, named in configs as "tests.toy_data:function"."""

import numpy as np

from lib.data.records import ArrayRecords, Split

SIDE = 16


def _squares(count: int, seed: int):
    """Images whose only content is a bright rectangle, and that rectangle as fg_mask, so
    image == 255 * fg_mask exactly: any misalignment between the two shows."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, SIDE, SIDE, 1), np.uint8)
    for m in masks:
        top, left = rng.integers(0, SIDE - 4, size=2)
        h, w = rng.integers(3, SIDE - max(top, left), size=2)
        m[top:top + h, left:left + w] = 1
    return masks * 255, masks


def masked_squares(data_cfg, split: str) -> Split:
    """Labelled images with a foreground mask (a spatial key); ids number the examples."""
    count = {"train": 64, "test": 24}[split]
    images, masks = _squares(count, {"train": 0, "test": 1}[split])
    labels = (np.arange(count) % 4).astype(np.int32)
    records = ArrayRecords(images, labels, fg_mask=masks, id=np.arange(count))
    return Split("", records, (SIDE, SIDE, 1), 4, 255.0, "tests.toy_data", spatial=("fg_mask",))


def unlabelled(data_cfg, split: str) -> Split:
    """Images without class labels (self-supervised pretraining data)."""
    count = {"train": 40, "test": 10}[split]
    images, _ = _squares(count, 2)
    return Split("", ArrayRecords(images, None, id=np.arange(count)), (SIDE, SIDE, 1), 0, 255.0,
                 "tests.toy_data")
