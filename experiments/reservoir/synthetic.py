"""The synthetic "translation" task of spec §6, offline and seeded.

Vocabulary: PAD 0, BOS 1, EOS 2 and 32 content tokens 3 … 34. A source is uniform random
content tokens, of a length uniform in {6 … 14}. Its target: the source reversed, every token
mapped through a fixed random permutation of the content tokens (seed 1234), then each
adjacent pair swapped (positions 0↔1, 2↔3, …; an odd last token stays). Both sides end in EOS
(the target as the spec says; the source as fairseq appends it). 20,000 training pairs and
1,000 each for validation and test, every split from its own fixed seed, whatever the run's.

    data.name = "experiments.reservoir.synthetic:translation"
"""

from __future__ import annotations

import functools

import numpy as np

from lib.config import ConfigError
from lib.data.sequences import TokenRecords, TokenSplit
from lib.text import EOS

CONTENT, FIRST = 32, 3  # content tokens, and the id of the first
LENGTHS = (6, 14)
PERMUTATION_SEED = 1234
SPLITS = {"train": (20_000, 0), "validation": (1_000, 1), "test": (1_000, 2)}  # size, seed


def permutation() -> np.ndarray:
    """Content token i (0-based) maps to content token permutation()[i]."""
    return np.random.default_rng(PERMUTATION_SEED).permutation(CONTENT)


def translate(source: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """A source's target, without EOS: reverse, map, swap adjacent pairs."""
    mapped = perm[source[::-1] - FIRST] + FIRST
    out = mapped.copy()
    pairs = len(out) // 2 * 2
    out[0:pairs:2], out[1:pairs:2] = mapped[1:pairs:2], mapped[0:pairs:2]
    return out


@functools.lru_cache(maxsize=4)
def pairs(split: str) -> tuple[list, list]:
    size, seed = SPLITS[split]
    rng = np.random.default_rng(seed)
    perm = permutation()
    sources, targets = [], []
    for length in rng.integers(LENGTHS[0], LENGTHS[1] + 1, size):
        source = rng.integers(FIRST, FIRST + CONTENT, length)
        sources.append(np.append(source, EOS))
        targets.append(np.append(translate(source, perm), EOS))
    return sources, targets


def translation(data_cfg, split: str) -> TokenSplit:
    """A lib.data source (data_cfg, split name) -> TokenSplit."""
    if split not in SPLITS:
        raise ConfigError(f"the synthetic translation task has splits {', '.join(SPLITS)}, "
                          f"not {split!r}")
    sources, targets = pairs(split)
    return TokenSplit("", TokenRecords({"inputs": sources, "targets": targets}),
                      vocab_size=FIRST + CONTENT,
                      origin=f"synthetic translation (spec §6), {split} seed {SPLITS[split][1]}")
