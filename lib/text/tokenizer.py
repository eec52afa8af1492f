"""Subword tokenisation with sentencepiece, with the special ids fixed for the whole project.

Every model has PAD = 0, BOS = 1, EOS = 2, UNK = 3, so padding masks, the decoder's start token
and the stop rule of decoding never depend on which tokenizer a run trained. A run trains its
tokenizer once into its workdir: `tokenizer.model`, and `tokenizer.json` with the settings and
the model's sha256. A resumed run reuses that file instead of retraining, so the token ids its
checkpoint learned keep their meaning; `check_matches` refuses a tokenizer that differs.

sentencepiece normalises text (NFKC, whitespace runs collapsed, ends stripped), so
`decode(encode(s))` gives back `s` for normalised text, and its normal form otherwise.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator

from etils import epath

from lib.config import ConfigError
from lib.files import write_bytes_atomic, write_text_atomic
from lib.text import BOS, EOS, PAD, UNK

MODEL_FILE = "tokenizer.model"
INFO_FILE = "tokenizer.json"
MODEL_TYPES = ("bpe", "unigram", "char", "word")
_TRAIN_KEYS = ("vocab_size", "model_type", "character_coverage", "max_sentences")


def _sentencepiece():
    try:
        import sentencepiece
    except ImportError as e:
        raise ConfigError('subword tokenisation needs sentencepiece: pip install -e ".[text]"'
                          ) from e
    return sentencepiece


class Tokenizer:
    """A trained sentencepiece model whose ids 0-3 are PAD, BOS, EOS and UNK."""

    def __init__(self, model: bytes):
        self._model = bytes(model)
        self._sha256 = hashlib.sha256(self._model).hexdigest()
        try:
            self._sp = _sentencepiece().SentencePieceProcessor(model_proto=self._model)
        except RuntimeError as e:
            raise ConfigError(f"these {len(self._model)} bytes are not a sentencepiece model "
                              f"({e}); train one with lib.text.tokenizer.train") from e
        specials = (self._sp.pad_id(), self._sp.bos_id(), self._sp.eos_id(), self._sp.unk_id())
        if specials != (PAD, BOS, EOS, UNK):
            raise ConfigError(
                f"this sentencepiece model has PAD, BOS, EOS, UNK = {specials}, but the project "
                f"fixes them at {(PAD, BOS, EOS, UNK)}; train it with lib.text.tokenizer.train")

    # Grain's worker processes pickle their transforms; the model bytes are the whole state.
    def __getstate__(self) -> dict:
        return {"model": self._model}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model"])

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def sha256(self) -> str:
        return self._sha256

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, without BOS or EOS (the data pipeline adds what a model needs)."""
        return self._sp.encode(text)

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return self._sp.encode(list(texts))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` up to the first EOS; PAD and BOS are skipped wherever they are."""
        ids = [int(i) for i in ids]
        if EOS in ids:
            ids = ids[:ids.index(EOS)]
        ids = [i for i in ids if i not in (PAD, BOS)]
        outside = [i for i in ids if not 0 <= i < self.vocab_size]
        if outside:
            raise ValueError(f"ids {outside[:5]} lie outside this tokenizer's {self.vocab_size} "
                             "pieces: were they made with another tokenizer or vocab_size?")
        return self._sp.decode(ids)


class _Sentences:
    """Yields the texts to sentencepiece's C++ trainer and keeps what it would lose: the count,
    and an error of the texts' own source (which the trainer turns into a bare RuntimeError)."""

    def __init__(self, texts: Iterable[str]):
        self.texts = texts
        self.count = 0
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for text in self.texts:
                if not isinstance(text, str):
                    raise ConfigError(f"tokenizer training texts must be str, got "
                                      f"{type(text).__name__} at position {self.count}")
                self.count += 1
                yield text
        except Exception as e:  # re-raised by train() once the trainer stops
            self.error = e


def _sample(texts: Iterable[str], count: int) -> list[str]:
    """`count` of the texts drawn uniformly in one pass (reservoir sampling), the same ones on
    every machine and process."""
    rng = random.Random(0)
    kept = []
    for i, text in enumerate(texts):
        if i < count:
            kept.append(text)
        elif (j := rng.randrange(i + 1)) < count:
            kept[j] = text
    return kept


def _check_settings(vocab_size, model_type, character_coverage, max_sentences) -> None:
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"unknown tokenizer model_type {model_type!r}; valid: "
                          f"{', '.join(MODEL_TYPES)}")
    if not isinstance(vocab_size, int) or vocab_size <= UNK + 1:
        raise ConfigError(f"tokenizer vocab_size must be an int above {UNK + 1} (ids 0-{UNK} "
                          f"are PAD, BOS, EOS, UNK), got {vocab_size!r}")
    if not 0.98 <= character_coverage <= 1.0:
        raise ConfigError(f"tokenizer character_coverage must lie in [0.98, 1.0] (sentencepiece's "
                          f"range; 1.0 for small alphabets), got {character_coverage!r}")
    if not isinstance(max_sentences, int) or max_sentences < 0:
        raise ConfigError(f"tokenizer max_sentences must be an int, 0 to train on all text or "
                          f"the size of a random sample, got {max_sentences!r}")


def train(texts: Iterable[str], directory, *, vocab_size: int, model_type: str = "bpe",
          character_coverage: float = 1.0, max_sentences: int = 0) -> Tokenizer:
    """Trains a tokenizer on `texts` into `directory` and returns it, loaded from there.

    max_sentences > 0 trains on a random sample of that many sentences, drawn here with a
    fixed seed: sentencepiece's own sampling (input_sentence_size) draws another sample in
    every process, and the same texts must give the same model bytes (DESIGN.md rule 5).
    """
    _check_settings(vocab_size, model_type, character_coverage, max_sentences)
    if isinstance(texts, str):
        raise ConfigError("tokenizer training texts must be an iterable of sentences, not one str")
    spm = _sentencepiece()
    sentences = _Sentences(texts)
    feed = iter(sentences)
    if max_sentences:
        feed = iter(_sample(feed, max_sentences))
        if sentences.error is not None:
            raise sentences.error
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=feed, model_writer=writer, vocab_size=vocab_size,
            model_type=model_type, character_coverage=character_coverage,
            pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
            minloglevel=2)  # warnings and errors only; its progress log is thousands of lines
    except RuntimeError as e:
        if sentences.error is not None:
            raise sentences.error from None
        if sentences.count == 0:
            raise ConfigError("tokenizer training got no sentences: the texts were empty") from e
        limit = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)",
                          str(e))
        if limit is None:
            raise
        used = min(sentences.count, max_sentences or sentences.count)
        raise ConfigError(
            f"tokenizer vocab_size={vocab_size} is too large for its training text: a "
            f"{model_type} model of these {used} sentences has at most {limit.group(1)} "
            f"pieces. Lower vocab_size to {limit.group(1)} or less, or train on more text"
            + (" (a larger max_sentences)" if used < sentences.count else "")) from None
    if sentences.error is not None:
        raise sentences.error
    tokenizer = Tokenizer(writer.getvalue())
    if tokenizer.vocab_size != vocab_size:  # a char model has one piece per character
        raise ConfigError(f"a {model_type} tokenizer of this text has {tokenizer.vocab_size} "
                          f"pieces, not vocab_size={vocab_size}; set vocab_size to "
                          f"{tokenizer.vocab_size}")
    folder = epath.Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    info = {"vocab_size": vocab_size, "model_type": model_type, "sha256": tokenizer.sha256,
            "character_coverage": character_coverage}
    # The info first: a tokenizer.model present means both files are complete.
    write_text_atomic(folder / INFO_FILE, json.dumps(info, indent=2) + "\n")
    write_bytes_atomic(folder / MODEL_FILE, writer.getvalue())
    return load(folder)


def _read_info(folder: epath.Path) -> dict:
    path = folder / INFO_FILE
    if not path.exists():
        raise ConfigError(f"{path} is missing beside {folder / MODEL_FILE}; both come from "
                          "lib.text.tokenizer.train: restore the pair, or delete the model to "
                          "train a new one (only if no checkpoint was trained with it)")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); restore it from the run that "
                          "trained the tokenizer, or delete both tokenizer files to retrain") from e
    if not isinstance(info, dict):
        raise ConfigError(f"{path} holds {type(info).__name__}, not the tokenizer's settings")
    return info


def load(directory) -> Tokenizer:
    """The tokenizer that `train` wrote into `directory`, checked against its sha256."""
    folder = epath.Path(directory)
    model_path = folder / MODEL_FILE
    if not model_path.exists():
        raise ConfigError(
            f"no tokenizer in {folder}: {model_path} not found. Create it with "
            f"lib.text.tokenizer.train(texts, {str(folder)!r}, vocab_size=...) (a run's first "
            "start does), or point at the workdir that holds it")
    info = _read_info(folder)
    tokenizer = Tokenizer(model_path.read_bytes())
    if info.get("sha256") != tokenizer.sha256:
        raise ConfigError(f"{model_path} has sha256 {tokenizer.sha256[:12]}…, but {INFO_FILE} "
                          f"beside it says {str(info.get('sha256'))[:12]}…: the two files come "
                          "from different trainings. Restore the run's own pair, or delete both "
                          "to retrain (only if no checkpoint was trained with them)")
    return tokenizer


def check_matches(tokenizer: Tokenizer, expected: dict, where: str) -> None:
    """Raises ConfigError unless `tokenizer` is the one a saved run recorded (its tokenizer.json
    `expected`, found at `where`): other ids would silently mean other pieces to its checkpoint."""
    actual = {"sha256": tokenizer.sha256, "vocab_size": tokenizer.vocab_size}
    differs = [f"{key} {expected.get(key)!r} there, {value!r} here"
               for key, value in actual.items() if expected.get(key) != value]
    if differs:
        raise ConfigError(
            f"the tokenizer recorded in {where} differs from this one ({'; '.join(differs)}): "
            "its checkpoint's token ids would mean other pieces. Resume with the workdir's own "
            "tokenizer (lib.text.tokenizer.load on that workdir), or start afresh with a new "
            "--workdir")


def train_or_load(texts_fn: Callable[[], Iterable[str]], directory, **train_kwargs) -> Tokenizer:
    """The tokenizer in `directory` when one is there (a resume), else one trained on
    `texts_fn()` (called only then: reading the text is skipped on resume).

    `train_kwargs` are `train`'s settings; a saved tokenizer trained with another vocab_size,
    model_type or character_coverage is an error, never silently used or replaced.
    """
    unknown = sorted(set(train_kwargs) - set(_TRAIN_KEYS))
    if unknown or "vocab_size" not in train_kwargs:
        raise TypeError(f"train_or_load takes vocab_size and optionally "
                        f"{', '.join(_TRAIN_KEYS[1:])}; got {sorted(train_kwargs)}")
    folder = epath.Path(directory)
    if not (folder / MODEL_FILE).exists():
        return train(texts_fn(), folder, **train_kwargs)
    info = _read_info(folder)
    asked = {"vocab_size": train_kwargs["vocab_size"],
             "model_type": train_kwargs.get("model_type", "bpe"),
             "character_coverage": train_kwargs.get("character_coverage", 1.0)}
    differs = [f"{key} {info.get(key)!r}, not {value!r}" for key, value in asked.items()
               if info.get(key) != value]
    if differs:
        raise ConfigError(
            f"the workdir's tokenizer ({folder / MODEL_FILE}) was trained with other settings: "
            f"{'; '.join(differs)}. Resume with the settings it was trained with, or start "
            "afresh with a new --workdir")
    return load(folder)
