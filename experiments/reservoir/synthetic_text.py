"""Offline token streams for the quick runs of the language-model, masked-LM and GLUE configs.

Vocabulary: PAD 0, BOS 1, EOS 2, UNK 3 and 32 content tokens 4 … 35. A record is BOS, a walk of
a length uniform in {12 … 28} on a fixed sparse Markov chain over the content tokens, and EOS:
the first token is uniform, and each token is followed by one of its two successors, the first
with probability 0.8 (successors drawn once, seed 4321). A token is thus predictable from the
one before it (language modelling: at best ≈ 0.8 next-token accuracy) and from its neighbours
(masked LM).

`labelled` draws half the records from a second chain (successors from seed 8765) and labels
each record with its chain (0 or 1): telling the chains apart takes reading the bigrams, a
sentence classification task on the same vocabulary, so a model pre-trained on `tokens` can
be fine-tuned on it. Splits: train 4,000, validation 500, test 500 records, each from its own
fixed seed, whatever the run's.

    data.name = "experiments.reservoir.synthetic_text:tokens"    (LM, masked LM)
    data.name = "experiments.reservoir.synthetic_text:labelled"  (sentence classification)
"""

from __future__ import annotations

import functools

import numpy as np

from lib.config import ConfigError
from lib.data.sequences import TokenRecords, TokenSplit
from lib.text import BOS, EOS, UNK

CONTENT, FIRST = 32, UNK + 1  # content tokens, and the id of the first
VOCAB_SIZE = FIRST + CONTENT
LENGTHS = (12, 28)  # content tokens per record; BOS and EOS make it at most 30
MAX_LENGTH = LENGTHS[1] + 2
FOLLOW = 0.8  # probability of a token's first successor
CHAIN_SEEDS = (4321, 8765)
SPLITS = {"train": (4_000, 10), "validation": (500, 11), "test": (500, 12)}  # size, seed


@functools.lru_cache(maxsize=2)
def successors(chain: int = 0) -> np.ndarray:
    """(CONTENT, 2) 0-based successors of each content token in chain 0 or 1: two distinct
    tokens, neither the token itself."""
    rng = np.random.default_rng(CHAIN_SEEDS[chain])
    out = np.empty((CONTENT, 2), np.int64)
    for i in range(CONTENT):
        others = np.delete(np.arange(CONTENT), i)
        out[i] = rng.choice(others, 2, replace=False)
    return out


def walk(rng: np.random.Generator, length: int, chain: int = 0) -> np.ndarray:
    """`length` content-token ids (FIRST …) of a walk on the chain."""
    nexts = successors(chain)
    out = np.empty(length, np.int64)
    out[0] = rng.integers(CONTENT)
    for t in range(1, length):
        out[t] = nexts[out[t - 1], 0 if rng.random() < FOLLOW else 1]
    return out + FIRST


@functools.lru_cache(maxsize=6)
def records(split: str, labelled: bool) -> tuple[list, np.ndarray]:
    """(BOS + walk + EOS per record, the chain of each)."""
    size, seed = SPLITS[split]
    rng = np.random.default_rng([seed, int(labelled)])
    chains = rng.integers(2, size=size) if labelled else np.zeros(size, np.int64)
    tokens = [np.concatenate([[BOS], walk(rng, int(rng.integers(LENGTHS[0], LENGTHS[1] + 1)),
                                          int(chain)), [EOS]])
              for chain in chains]
    return tokens, chains.astype(np.int32)


def _split(data_cfg, split: str, labelled: bool) -> TokenSplit:
    if split not in SPLITS:
        raise ConfigError(f"the synthetic token streams have splits {', '.join(SPLITS)}, not "
                          f"{split!r}")
    if data_cfg.max_length < MAX_LENGTH:
        raise ConfigError(f"synthetic token records are up to {MAX_LENGTH} tokens long: set "
                          f"data.max_length to at least {MAX_LENGTH}")
    tokens, chains = records(split, labelled)
    kind = "labelled by chain" if labelled else "one chain"
    return TokenSplit("", TokenRecords({"tokens": tokens}, chains if labelled else None),
                      VOCAB_SIZE, 2 if labelled else 0,
                      origin=f"synthetic Markov token streams ({kind}), {split} seed "
                             f"{SPLITS[split][1]}")


def tokens(data_cfg, split: str) -> TokenSplit:
    """A lib.data source: 'tokens' records of one chain."""
    return _split(data_cfg, split, labelled=False)


def labelled(data_cfg, split: str) -> TokenSplit:
    """A lib.data source: 'tokens' records of two chains, 'label' the chain."""
    return _split(data_cfg, split, labelled=True)
