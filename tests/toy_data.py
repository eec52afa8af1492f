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


def token_pairs(data_cfg, split: str):
    """Token pairs of 2–20 tokens (ids 3–9, then EOS): 'inputs' a random sequence, 'targets'
    its reverse. The 'long' split goes up to 40 tokens."""
    from lib.data.sequences import TokenRecords, TokenSplit

    count, seed = {"train": (50, 0), "test": (21, 1), "long": (5, 2)}[split]
    rng = np.random.default_rng(seed)
    top = 40 if split == "long" else 20
    inputs = [np.append(rng.integers(3, 10, rng.integers(1, top)), 2) for _ in range(count)]
    targets = [np.append(s[-2::-1], 2) for s in inputs]
    return TokenSplit("", TokenRecords({"inputs": inputs, "targets": targets}), 10,
                      origin="tests.toy_data")


def token_stream(data_cfg, split: str):
    """'tokens' records of 4–15 ids counting up from a random start through the cycle 4–11,
    then EOS: the next token is predictable, so a language model's loss falls in a few steps."""
    from lib.data.sequences import TokenRecords, TokenSplit

    count, seed = {"train": (64, 0), "test": (20, 1)}[split]
    rng = np.random.default_rng(seed)
    tokens = [np.append(4 + (rng.integers(8) + np.arange(rng.integers(4, 16))) % 8, 2)
              for _ in range(count)]
    return TokenSplit("", TokenRecords({"tokens": tokens}), 12, origin="tests.toy_data")
