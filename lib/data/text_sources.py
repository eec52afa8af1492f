"""Text datasets as token splits (lib.data.sequences), and the raw text a tokenizer learns from.

Sources by data.name:
- "parallel_text" (user-supplied): data.data_dir holds `{split}.{lang}` files, e.g. train.de,
  train.en, valid.de, valid.en, test.de, test.en: UTF-8, one sentence per line, line i of both
  languages a translation pair (fairseq's prepare-iwslt14.sh output before BPE, or any such
  pair). The languages are data.source_language and data.target_language. A pair whose two
  lines are both empty is dropped (and counted in the split's origin); one empty side is an
  error, as are differing line counts and bytes that are not UTF-8.
- "wmt14_translate/de-en", "wmt16_translate/de-en" (TFDS): features named by language.
- "glue/<task>" (TFDS): sst2, mnli and the other classification tasks of GLUE_FIELDS; MNLI's
  eval split is 'validation_matched', and GLUE's test splits have no labels.
- "enwik8" (user-supplied): the Hutter Prize file `data.data_dir/enwik8` (unzip
  http://mattmahoney.net/dc/enwik8.zip: 100,000,000 bytes), split 90/5/5 percent into
  train / valid / test as Dai et al. 2019 (90M / 5M / 5M bytes).
- "text_lines" (user-supplied, masked-LM pre-training): data.data_dir holds `{split}.txt`
  (train.txt, valid.txt, ...): UTF-8, one document or sentence per line. Empty lines are
  skipped (and counted in the split's origin).
- "lm1b" (TFDS, the One Billion Word benchmark: 30M / 306k sentences in train / test, no
  validation split; hold one out with data.validation_examples): its 'text' feature, one
  sentence per record; a small stand-in for the RoBERTa corpus.

Records: translation 'inputs' = encode(source) + EOS, 'targets' = encode(target) + EOS; GLUE
'tokens' = BOS + encode(sentence) + EOS, for sentence pairs RoBERTa's BOS + a + EOS + EOS + b
+ EOS, and the class labels; text_lines and lm1b 'tokens' = BOS + encode(line) + EOS, a line
longer than data.max_length tokens truncated to its first data.max_length − 2 pieces, EOS
kept (so no record is ever dropped; truncated lines are counted in the origin); enwik8
'tokens' = chunks of data.max_length bytes, id = byte + 4
(PAD, BOS, EOS, UNK keep ids 0-3; the last chunk of a split may be shorter). With
data.lowercase, text is lowercased before tokenising (and before a tokenizer learns from it).

Every text source but enwik8 needs the subword tokenizer in data.tokenizer; the procedure
lib.text.procedure:run trains one on `training_text` into the workdir first. GLUE fine-tuning
of a pre-trained model must use the pre-training run's tokenizer, not one trained on GLUE.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

import numpy as np
from etils import epath

from lib.config import ConfigError
from lib.data import sources
from lib.data.sequences import TokenRecords, TokenSplit
from lib.text import BOS, EOS, UNK
from lib.text import tokenizer as tokenizer_lib

PARALLEL_FORMAT = ("parallel_text format: data.data_dir holds {split}.{lang} files (train.de, "
                   "train.en, valid.de, ...), UTF-8, one sentence per line, line i of the two "
                   "languages a translation pair (fairseq's prepare-iwslt14.sh output before BPE)")
ENWIK8_FILE = "enwik8"
ENWIK8_BYTES = 100_000_000
ENWIK8_URL = "http://mattmahoney.net/dc/enwik8.zip"
ENWIK8_SPLITS = ("train", "valid", "test")  # 90 / 5 / 5 percent of the file, in this order
BYTE_OFFSET = UNK + 1  # enwik8 byte b is token id b + 4
GLUE_FIELDS = {  # the text features of each GLUE classification task, in pair order
    "cola": ("sentence",), "sst2": ("sentence",), "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}
TEXT_LINES_FORMAT = ("text_lines format: data.data_dir holds {split}.txt files (train.txt, "
                     "valid.txt, ...), UTF-8, one document or sentence per line")
TOKENIZED = ("parallel_text", "wmt14_translate", "wmt16_translate", "glue", "text_lines",
             "lm1b")  # data.name bases
ENCODE_CHUNK = 65_536  # sentences per sentencepiece call: whole lists of ids for millions of
# WMT sentences would take gigabytes before they become int32 arrays


def needs_tokenizer(data_cfg) -> bool:
    return data_cfg.name.partition("/")[0] in TOKENIZED


def _tokenizer(data_cfg) -> tokenizer_lib.Tokenizer:
    if not data_cfg.tokenizer:
        raise ConfigError(
            f"{data_cfg.name} is text read as subword ids, so it needs a tokenizer: set "
            "data.tokenizer to a directory holding tokenizer.model/.json (e.g. an earlier run's "
            "workdir/tokenizer), or run with procedure = \"lib.text.procedure:run\", which "
            "trains one of data.vocab_size pieces on the train text into the workdir")
    return tokenizer_lib.load(data_cfg.tokenizer)


def _case(data_cfg, text) -> str:
    """A TFDS text value (bytes in prepared data) or a line as str, lowercased if asked."""
    if isinstance(text, np.ndarray):
        text = text.item()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return text.lower() if data_cfg.lowercase else text


def _encode(tokenizer, texts: list[str], prefix: tuple = (), suffix: tuple = (EOS,)
            ) -> list[np.ndarray]:
    out = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        out += [np.array([*prefix, *ids, *suffix], np.int32)
                for ids in tokenizer.encode_batch(texts[start:start + ENCODE_CHUNK])]
    return out


def _languages(data_cfg) -> tuple[str, str]:
    pair = data_cfg.source_language, data_cfg.target_language
    if not all(pair) or pair[0] == pair[1]:
        raise ConfigError(f"data.source_language={pair[0]!r}, data.target_language={pair[1]!r}: "
                          "translation needs two different languages")
    return pair


def _translation_split(tokenizer, texts: tuple[list[str], list[str]], origin: str
                       ) -> TokenSplit:
    records = TokenRecords({"inputs": _encode(tokenizer, texts[0]),
                            "targets": _encode(tokenizer, texts[1])})
    return TokenSplit("", records, tokenizer.vocab_size, origin=origin)


# Parallel text files.

def _lines(path: epath.Path, file_format: str = PARALLEL_FORMAT) -> list[str]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # -sig: a byte-order mark is not part of line 1
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)
        raise ConfigError(f"line {line} of {path} is not UTF-8 ({e.reason} at its byte "
                          f"{column}): convert the file to UTF-8 ({file_format})") from None
    lines = text.split("\n")  # not splitlines: U+2028 and the like may occur inside a sentence
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _user_folder(data_cfg, source: str, file_format: str) -> epath.Path:
    """data.data_dir, which a source of user files reads; refused when unset or missing."""
    if not data_cfg.data_dir:
        raise ConfigError(f"{source} reads data.data_dir, which is empty: set it to the folder "
                          f"of the text files ({file_format})")
    folder = epath.Path(data_cfg.data_dir)
    if not folder.is_dir():
        raise ConfigError(f"{source}: folder {folder} does not exist ({file_format})")
    return folder


def _parallel_files(data_cfg, split: str) -> list[epath.Path]:
    folder = _user_folder(data_cfg, "parallel_text", PARALLEL_FORMAT)
    paths = [folder / f"{split}.{lang}" for lang in _languages(data_cfg)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        present = sorted(p.name for p in folder.iterdir()) or ["nothing"]
        raise ConfigError(
            f"parallel_text: {folder} lacks {', '.join(missing)}; it has "
            f"{', '.join(present)}. data.train_split / data.eval_split name the split, "
            f"data.source_language / data.target_language the languages ({PARALLEL_FORMAT})")
    return paths


def _parallel_pairs(data_cfg, split: str) -> tuple[list[str], list[str], int, str]:
    """(source lines, target lines, pairs dropped as empty on both sides, where from)."""
    paths = _parallel_files(data_cfg, split)
    sides = [_lines(p) for p in paths]
    if len(sides[0]) != len(sides[1]):
        raise ConfigError(
            f"{paths[0]} has {len(sides[0])} lines but {paths[1]} has {len(sides[1])}: line i "
            f"of one must translate line i of the other ({PARALLEL_FORMAT})")
    empty = [[not line.strip() for line in side] for side in sides]
    one_sided = [i for i, (a, b) in enumerate(zip(*empty)) if a != b]
    if one_sided:
        i = one_sided[0]
        blank, full = (paths[0], paths[1]) if empty[0][i] else (paths[1], paths[0])
        more = f" ({len(one_sided) - 1} more such lines)" if len(one_sided) > 1 else ""
        raise ConfigError(f"line {i + 1} of {blank.name} is empty but line {i + 1} of "
                          f"{full.name} is not: remove the pair or fill it{more} (folder "
                          f"{blank.parent}; {PARALLEL_FORMAT})")
    keep = [i for i, e in enumerate(empty[0]) if not e]
    texts = tuple([_case(data_cfg, side[i]) for i in keep] for side in sides)
    return *texts, len(empty[0]) - len(keep), f"{paths[0]} / {paths[1].name}"


def parallel_text(data_cfg, split: str) -> TokenSplit:
    source, target, dropped, where = _parallel_pairs(data_cfg, split)
    skipped = f"; {dropped} empty pairs dropped" if dropped else ""
    return _translation_split(_tokenizer(data_cfg), (source, target),
                              f"{where} ({len(source)} pairs{skipped})")


# TFDS: WMT translation and GLUE.

def _tfds_open(data_cfg, split: str, fields: tuple):
    """(data source, builder) of a prepared TFDS split that has the features `fields`."""
    source, builder = sources.tfds_source(data_cfg.name, split, data_cfg.data_dir)
    missing = [f for f in fields if f not in builder.info.features]
    if missing:
        hint = ("; set data.source_language / data.target_language"
                if "translate" in data_cfg.name else "")
        raise ConfigError(f"TFDS dataset {data_cfg.name!r} has no feature {', '.join(missing)}; "
                          f"it has {', '.join(sorted(builder.info.features))}{hint}")
    return source, builder


def _tfds_texts(data_cfg, source, fields: tuple) -> Iterator[tuple[str, ...]]:
    """Each record's texts of `fields`, in order."""
    for i in range(len(source)):
        record = source[i]
        yield tuple(_case(data_cfg, record[f]) for f in fields)


# The large splits (WMT, lm1b, text_lines) last encoded in this process: encoding millions of
# sentences takes minutes, and a run opens its train and eval splits twice each (get_info, then
# the batches; a held-out validation split opens the train split once more).
KEPT_SPLITS = 2
_kept: collections.OrderedDict = collections.OrderedDict()


def _kept_split(key: tuple, build: Callable[[], TokenSplit]) -> TokenSplit:
    """build(), or the split kept from an earlier call with the same key."""
    if key not in _kept:
        _kept[key] = build()
        while len(_kept) > KEPT_SPLITS:
            _kept.popitem(last=False)
    _kept.move_to_end(key)
    return _kept[key]


def wmt_translation(data_cfg, split: str) -> TokenSplit:
    languages, tokenizer = _languages(data_cfg), _tokenizer(data_cfg)

    def build() -> TokenSplit:
        source, builder = _tfds_open(data_cfg, split, languages)
        pairs = list(_tfds_texts(data_cfg, source, languages))
        return _translation_split(
            tokenizer, ([p[0] for p in pairs], [p[1] for p in pairs]),
            f"TFDS {data_cfg.name} {split} in {builder.data_dir} ({len(pairs)} pairs, "
            f"{languages[0]} -> {languages[1]})")

    return _kept_split((data_cfg.name, split, data_cfg.data_dir, languages, data_cfg.lowercase,
                        tokenizer.sha256), build)


def _glue_fields(data_cfg) -> tuple[str, ...]:
    task = data_cfg.name.partition("/")[2].partition(":")[0]
    if task not in GLUE_FIELDS:
        raise ConfigError(f"data.name={data_cfg.name!r}: the GLUE classification tasks are "
                          f"{', '.join('glue/' + t for t in GLUE_FIELDS)} (stsb is regression)")
    return GLUE_FIELDS[task]


def glue(data_cfg, split: str) -> TokenSplit:
    fields, tokenizer = _glue_fields(data_cfg), _tokenizer(data_cfg)
    source, builder = _tfds_open(data_cfg, split, (*fields, "label"))
    records = [source[i] for i in range(len(source))]
    columns = [[_case(data_cfg, r[f]) for r in records] for f in fields]
    labels = np.array([r["label"] for r in records], np.int64)
    if (labels < 0).any():
        raise ConfigError(f"the {split!r} split of {data_cfg.name} has no labels (GLUE keeps "
                          "its test labels private): evaluate on 'validation' (MNLI: "
                          "'validation_matched')")
    parts = [_encode(tokenizer, columns[0], prefix=(BOS,))]
    parts += [_encode(tokenizer, column, prefix=(EOS,)) for column in columns[1:]]
    tokens = [np.concatenate(pieces) for pieces in zip(*parts)]
    return TokenSplit("", TokenRecords({"tokens": tokens}, labels.astype(np.int32)),
                      tokenizer.vocab_size, builder.info.features["label"].num_classes,
                      f"TFDS {data_cfg.name} {split} in {builder.data_dir} ({len(source)} "
                      "examples)")


# enwik8.

def enwik8(data_cfg, split: str) -> TokenSplit:
    if split not in ENWIK8_SPLITS:
        raise ConfigError(f"enwik8 has splits {', '.join(ENWIK8_SPLITS)} (90/5/5 percent of the "
                          f"file), not {split!r}: set data.train_split / data.eval_split")
    if data_cfg.max_length < 1:
        raise ConfigError("enwik8 records are chunks of data.max_length bytes: set "
                          "data.max_length (e.g. 512)")
    how = (f"enwik8 is user-supplied: unzip {ENWIK8_URL} (the Hutter Prize file, "
           f"{ENWIK8_BYTES:,} bytes) into a folder and set data.data_dir to it")
    if not data_cfg.data_dir:
        raise ConfigError(f"data.data_dir is empty. {how}")
    path = epath.Path(data_cfg.data_dir) / ENWIK8_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found. {how}")
    data = np.frombuffer(path.read_bytes(), np.uint8)
    size = len(data)
    if size < len(ENWIK8_SPLITS):
        raise ConfigError(f"{path} has {size} bytes: too few for three splits. {how}")
    first = min(size * 90 // 100, size - 2)  # each split at least one byte long
    second = max(min(size * 95 // 100, size - 1), first + 1)
    low, high = {"train": (0, first), "valid": (first, second), "test": (second, size)}[split]
    ids = data[low:high].astype(np.int32) + BYTE_OFFSET
    length = data_cfg.max_length
    chunks = [ids[i:i + length] for i in range(0, len(ids), length)]
    warning = ("" if size == ENWIK8_BYTES else
               f"; WARNING: {size:,} bytes, not the real enwik8's {ENWIK8_BYTES:,}: results "
               "are not comparable to published ones")
    return TokenSplit("", TokenRecords({"tokens": chunks}), 256 + BYTE_OFFSET,
                      origin=f"{path} bytes [{low:,}, {high:,}) in chunks of {length}{warning}")


# Masked-LM pre-training text: one record per line (text_lines) or per sentence (lm1b).

def _line_records(data_cfg, tokenizer, texts: list[str], where: str, skipped: int
                  ) -> TokenSplit:
    """'tokens' = BOS + encode(text) + EOS per text, at most data.max_length long: a longer
    line keeps its first data.max_length − 2 pieces and its EOS."""
    if data_cfg.max_length < 3:
        raise ConfigError(f"{data_cfg.name} records are BOS + a line's pieces + EOS, truncated "
                          f"to data.max_length={data_cfg.max_length} tokens: set it to at least 3 "
                          "(RoBERTa: 512)")
    if not texts:
        raise ConfigError(f"{where} has no text: every line is empty")
    room, tokens, truncated = data_cfg.max_length - 2, [], 0
    for start in range(0, len(texts), ENCODE_CHUNK):
        for ids in tokenizer.encode_batch(texts[start:start + ENCODE_CHUNK]):
            truncated += len(ids) > room
            tokens.append(np.array([BOS, *ids[:room], EOS], np.int32))
    notes = [f"{len(tokens)} lines"]
    if skipped:
        notes.append(f"{skipped} empty lines skipped")
    if truncated:
        notes.append(f"{truncated} truncated to data.max_length={data_cfg.max_length}")
    return TokenSplit("", TokenRecords({"tokens": tokens}), tokenizer.vocab_size,
                      origin=f"{where} ({'; '.join(notes)})")


def _text_lines_file(data_cfg, split: str) -> epath.Path:
    folder = _user_folder(data_cfg, "text_lines", TEXT_LINES_FORMAT)
    path = folder / f"{split}.txt"
    if not path.is_file():
        present = sorted(p.name for p in folder.iterdir()) or ["nothing"]
        raise ConfigError(f"text_lines: {folder} lacks {path.name}; it has {', '.join(present)}. "
                          f"data.train_split / data.eval_split name the split "
                          f"({TEXT_LINES_FORMAT})")
    return path


def _text_lines(data_cfg, split: str) -> tuple[list[str], int, epath.Path]:
    """(the non-empty lines of {split}.txt, lowercased with data.lowercase; the count of empty
    lines; the file)."""
    path = _text_lines_file(data_cfg, split)
    lines = _lines(path, TEXT_LINES_FORMAT)
    texts = [_case(data_cfg, line) for line in lines if line.strip()]
    return texts, len(lines) - len(texts), path


def text_lines(data_cfg, split: str) -> TokenSplit:
    tokenizer, path = _tokenizer(data_cfg), _text_lines_file(data_cfg, split)
    stat = path.stat()

    def build() -> TokenSplit:
        texts, skipped, _ = _text_lines(data_cfg, split)
        return _line_records(data_cfg, tokenizer, texts, str(path), skipped)

    return _kept_split((data_cfg.name, str(path), stat.length, stat.mtime, data_cfg.lowercase,
                        data_cfg.max_length, tokenizer.sha256), build)


LM1B_FIELDS = ("text",)


def lm1b(data_cfg, split: str) -> TokenSplit:
    tokenizer = _tokenizer(data_cfg)

    def build() -> TokenSplit:
        source, builder = _tfds_open(data_cfg, split, LM1B_FIELDS)
        texts = [text for text, in _tfds_texts(data_cfg, source, LM1B_FIELDS)]
        kept = [text for text in texts if text.strip()]
        return _line_records(data_cfg, tokenizer, kept,
                             f"TFDS {data_cfg.name} {split} in {builder.data_dir}",
                             len(texts) - len(kept))

    return _kept_split((data_cfg.name, split, data_cfg.data_dir, data_cfg.lowercase,
                        data_cfg.max_length, tokenizer.sha256), build)


# Tokenizer training text.

def training_text(data_cfg) -> Iterator[str]:
    """The text of the whole train split (data.train_split, before any subset) that a tokenizer
    is trained on: both languages of translation (one joint vocabulary), every sentence of
    GLUE, every non-empty line of text_lines and lm1b; lowercased with data.lowercase."""
    base, split = data_cfg.name.partition("/")[0], data_cfg.train_split
    if base == "parallel_text":
        rows = zip(*_parallel_pairs(data_cfg, split)[:2])
    elif base == "text_lines":
        rows = ((text,) for text in _text_lines(data_cfg, split)[0])
    elif base == "lm1b":
        source = _tfds_open(data_cfg, split, LM1B_FIELDS)[0]
        rows = (row for row in _tfds_texts(data_cfg, source, LM1B_FIELDS) if row[0].strip())
    elif base in TOKENIZED:
        fields = _glue_fields(data_cfg) if base == "glue" else _languages(data_cfg)
        rows = _tfds_texts(data_cfg, _tfds_open(data_cfg, split, fields)[0], fields)
    else:
        raise ConfigError(f"data.name={data_cfg.name!r} is not a text dataset read with a "
                          f"tokenizer (those are {', '.join(TOKENIZED)})")
    for texts in rows:
        yield from texts
