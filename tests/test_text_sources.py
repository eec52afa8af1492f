"""Text sources (lib.data.text_sources) and tokenise-then-train (lib.text.procedure): the
parallel-file format and each of its errors, enwik8 bytes, WMT and GLUE through TFDS mock data,
and a tokenizer trained once per workdir."""

import random

import numpy as np
import pytest

from configs.base import get_config
from lib import config as config_lib
from lib import data
from lib.config import ConfigError
from lib.data import sources, text_sources
from lib.text import BOS, EOS
from lib.text import procedure as text_procedure
from lib.text import tokenizer as tok

pytest.importorskip("sentencepiece")

DE = "Der die das Hund Katze sitzt läuft auf unter dem Baum Haus rot klein schnell groß".split()
EN = "The a dog cat sits runs on under the tree house red small quick big brown".split()
VOCAB = 80
SPLITS = {"train": 300, "valid": 20, "test": 20}


def sentence(rng, words) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(2, 8)))


def write_corpus(folder, empty_pair_at=(5,)):
    """{split}.de / {split}.en with SPLITS lines; the train files hold a pair of empty lines at
    each `empty_pair_at`."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    lines = {}
    for split, count in SPLITS.items():
        de = [sentence(rng, DE) for _ in range(count)]
        en = [sentence(rng, EN) for _ in range(count)]
        if split == "train":
            for i in empty_pair_at:
                de[i] = en[i] = ""
        (folder / f"{split}.de").write_text("\n".join(de) + "\n", encoding="utf-8")
        (folder / f"{split}.en").write_text("\n".join(en) + "\n", encoding="utf-8")
        lines[split] = (de, en)
    return lines


def cfg(folder="", tokenizer="", **overrides):
    c = get_config().data
    c.update({"name": "parallel_text", "data_dir": str(folder), "tokenizer": str(tokenizer),
              "eval_split": "valid", "max_length": 48, "batch_size": 8, "eval_batch_size": 8,
              "vocab_size": VOCAB})
    c.update(overrides)
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iwslt")
    lines = write_corpus(folder)
    tokenizer_dir = folder / "tokenizer"
    tok.train(text_sources.training_text(cfg(folder)), tokenizer_dir, vocab_size=VOCAB)
    return folder, tokenizer_dir, lines


@pytest.mark.parametrize("lowercase", [False, True])
def test_parallel_text_records_decode_to_the_lines(corpus, lowercase):
    folder, tokenizer_dir, lines = corpus
    tokenizer = tok.load(tokenizer_dir)
    c = cfg(folder, tokenizer_dir, lowercase=lowercase)
    for split in ("train", "valid"):
        got = text_sources.parallel_text(c, split)
        de, en = ([s for s in side if s] for side in lines[split])
        assert len(got.records) == len(de) == SPLITS[split] - (split == "train")
        assert got.vocab_size == VOCAB
        case = str.lower if lowercase else str
        for i in range(len(de)):
            record = got.records[i]
            assert record["inputs"][-1] == EOS and record["targets"][-1] == EOS
            assert tokenizer.decode(record["inputs"]) == case(de[i])
            assert tokenizer.decode(record["targets"]) == case(en[i])
    assert "1 empty pairs dropped" in text_sources.parallel_text(c, "train").origin
    assert "dropped" not in text_sources.parallel_text(c, "valid").origin


def test_training_text_is_both_languages_of_the_train_split(corpus):
    folder, _, lines = corpus
    texts = list(text_sources.training_text(cfg(folder, lowercase=True)))
    de, en = ([s.lower() for s in side if s] for side in lines["train"])
    assert texts[:4] == [de[0], en[0], de[1], en[1]] and len(texts) == 2 * len(de)
    with pytest.raises(ConfigError, match="not a text dataset read with a tokenizer"):
        next(text_sources.training_text(cfg(name="enwik8")))


def broken(tmp_path, change):
    folder = tmp_path / "data"
    write_corpus(folder, empty_pair_at=())
    change(folder)
    return folder


def blank_line_2(folder):
    lines = (folder / "train.de").read_text().split("\n")
    lines[1] = "  "
    (folder / "train.de").write_text("\n".join(lines))


def bad_byte_on_line_3(folder):
    raw = (folder / "train.en").read_bytes().split(b"\n")
    raw[2] = b"caf\xe9 " + raw[2]  # Latin-1 é
    (folder / "train.en").write_bytes(b"\n".join(raw))


@pytest.mark.parametrize("change, split, message", [
    (lambda f: (f / "valid.en").unlink(), "valid",
     r"lacks valid\.en; it has test\.de, test\.en, train\.de, train\.en, valid\.de\. "),
    (lambda f: (f / "train.en").write_text("one\ntwo\n"), "train",
     r"train\.de has 300 lines but .*train\.en has 2: line i of one must translate line i"),
    (blank_line_2, "train", r"line 2 of train\.de is empty but line 2 of train\.en is not: "
                            r"remove the pair or fill it"),
    (bad_byte_on_line_3, "train", r"line 3 of .*train\.en is not UTF-8 \(invalid continuation "
                                  r"byte at its byte 4\): convert the file to UTF-8"),
], ids=["missing_file", "line_counts", "one_sided_empty", "bad_utf8"])
def test_parallel_text_errors_say_what_is_wrong(tmp_path, corpus, change, split, message):
    with pytest.raises(ConfigError, match=message) as e:
        text_sources.parallel_text(cfg(broken(tmp_path, change), corpus[1]), split)
    assert "parallel_text format: data.data_dir holds {split}.{lang} files" in str(e.value)


def test_parallel_text_needs_its_folder_and_a_tokenizer(tmp_path, corpus):
    with pytest.raises(ConfigError, match="folder .*nowhere does not exist"):
        text_sources.parallel_text(cfg(tmp_path / "nowhere", corpus[1]), "train")
    with pytest.raises(ConfigError, match="data.data_dir, which is empty"):
        text_sources.parallel_text(cfg("", corpus[1]), "train")
    with pytest.raises(ConfigError, match='set data.tokenizer .* procedure = "lib.text.procedure'):
        text_sources.parallel_text(cfg(corpus[0]), "train")


def test_parallel_text_through_the_pipeline(corpus):
    folder, tokenizer_dir, _ = corpus
    c = cfg(folder, tokenizer_dir)
    info = data.get_info(c)
    assert (info.keys, info.vocab_size, info.num_train, info.num_eval) == (
        ("inputs", "targets"), VOCAB, SPLITS["train"] - 1, SPLITS["valid"])
    batch = next(data.train_iterator(c, seed=0))
    assert batch["inputs"].shape == batch["targets"].shape == (8, 48)
    assert batch["inputs"].max() < VOCAB and (batch["targets"] == EOS).sum(1).min() == 1
    assert sum(int(b["mask"].sum()) for b in data.eval_batches(c)) == SPLITS["valid"]


def enwik8_cfg(folder, **overrides):
    return cfg(folder, **{"name": "enwik8", "max_length": 64, **overrides})


def test_enwik8_splits_bytes_90_5_5_into_shifted_ids(tmp_path):
    raw = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)
    (tmp_path / "enwik8").write_bytes(raw.tobytes())
    expected = {"train": raw[:1800], "valid": raw[1800:1900], "test": raw[1900:]}
    for split, part in expected.items():
        got = text_sources.enwik8(enwik8_cfg(tmp_path), split)
        chunks = [got.records[i]["tokens"] for i in range(len(got.records))]
        assert got.vocab_size == 260 and all(len(c) <= 64 for c in chunks[-1:])
        assert all(len(c) == 64 for c in chunks[:-1])
        np.testing.assert_array_equal(np.concatenate(chunks), part.astype(np.int32) + 4)
        assert "not the real enwik8's 100,000,000" in got.origin
    (tmp_path / "enwik8").write_bytes(b"abc")
    sizes = [len(text_sources.enwik8(enwik8_cfg(tmp_path), s).records[0]["tokens"])
             for s in ("train", "valid", "test")]
    assert sizes == [1, 1, 1]


def test_enwik8_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"enwik8 not found\. .*unzip http://mattmahoney.net/dc/"
                                          r"enwik8\.zip .*100,000,000 bytes"):
        text_sources.enwik8(enwik8_cfg(tmp_path), "train")
    (tmp_path / "enwik8").write_bytes(b"ab")
    with pytest.raises(ConfigError, match="has 2 bytes: too few"):
        text_sources.enwik8(enwik8_cfg(tmp_path), "train")
    with pytest.raises(ConfigError, match="splits train, valid, test .* not 'validation'"):
        text_sources.enwik8(enwik8_cfg(tmp_path), "validation")
    with pytest.raises(ConfigError, match="set data.max_length"):
        text_sources.enwik8(enwik8_cfg(tmp_path, max_length=0), "train")


tfds = pytest.importorskip("tensorflow_datasets")


def test_wmt_by_tfds_name_gives_translation_pairs(corpus):
    c = cfg(tokenizer=corpus[1], name="wmt14_translate/de-en", eval_split="validation")
    with tfds.testing.mock_data(num_examples=6):
        split = sources.open_split(c, "train")
        again = text_sources.wmt_translation(c, "train")  # kept: no second encoding
        assert text_sources.wmt_translation(c, "train") is again
        with pytest.raises(ConfigError, match="has no feature fr; it has de, en; set data.source"):
            text_sources.wmt_translation(config_lib.updated(c, {"source_language": "fr"}),
                                         "validation")
        texts = list(text_sources.training_text(c))
    assert set(split.records.features) == {"inputs", "targets"} and len(split.records) == 6
    assert split.vocab_size == VOCAB and "TFDS wmt14_translate/de-en train" in split.origin
    assert all(split.records[i]["targets"][-1] == EOS for i in range(6))
    assert len(texts) == 12


@pytest.mark.parametrize("name, num_classes, eos_count", [("glue/sst2", 2, 1),
                                                          ("glue/mnli", 3, 3)])
def test_glue_by_tfds_name_gives_labelled_token_records(corpus, name, num_classes, eos_count):
    c = cfg(tokenizer=corpus[1], name=name)
    with tfds.testing.mock_data(num_examples=5):
        split = text_sources.glue(c, "validation")
    assert split.num_classes == num_classes and split.vocab_size == VOCAB
    for i in range(5):  # RoBERTa's format: <s> a </s> (</s> b </s>)
        tokens, label = split.records[i]["tokens"], split.records[i]["label"]
        assert tokens[0] == BOS and tokens[-1] == EOS and (tokens == EOS).sum() == eos_count
        assert 0 <= label < num_classes


def test_glue_fields_match_tfds_and_test_labels_are_refused(corpus, monkeypatch):
    for task, fields in text_sources.GLUE_FIELDS.items():
        features = sources.tfds_builder(f"glue/{task}", "").info.features
        assert set(fields) | {"label"} <= set(features), task

    class Unlabelled(list):  # GLUE's test splits: label -1
        pass

    builder = sources.tfds_builder("glue/sst2", "")
    records = Unlabelled([{"sentence": "the dog", "label": -1}])
    monkeypatch.setattr(sources, "tfds_source", lambda *a: (records, builder))
    with pytest.raises(ConfigError, match="'test' split of glue/sst2 has no labels"):
        text_sources.glue(cfg(tokenizer=corpus[1], name="glue/sst2"), "test")
    with pytest.raises(ConfigError, match="stsb is regression"):
        text_sources.glue(cfg(tokenizer=corpus[1], name="glue/stsb"), "test")


def test_procedure_trains_the_tokenizer_once_and_reuses_it(tmp_path, corpus, monkeypatch):
    seen = []
    monkeypatch.setattr(text_procedure.train, "run",
                        lambda config, workdir: seen.append(config) or {"eval/loss": 1.0})
    config = get_config()
    config.data = cfg(corpus[0])
    config.procedure = "lib.text.procedure:run"
    workdir = tmp_path / "run"
    assert text_procedure.run(config, workdir) == {"eval/loss": 1.0}
    model = workdir / "tokenizer" / tok.MODEL_FILE
    stamp = model.stat().st_mtime_ns
    text_procedure.run(config, workdir)
    assert model.stat().st_mtime_ns == stamp
    assert [c.data.tokenizer for c in seen] == [str(workdir / "tokenizer")] * 2
    assert tok.load(seen[0].data.tokenizer).vocab_size == VOCAB
    with pytest.raises(ConfigError, match="trained with other settings: vocab_size 80, not 90"):
        text_procedure.run(config_lib.updated(config, {"data.vocab_size": 90}), workdir)
    with pytest.raises(ConfigError, match="set data.tokenizer to the directory it trained with"):
        text_procedure.run(config_lib.updated(config, {"init.workdir": str(workdir)}),
                           tmp_path / "finetune")
    byte_level = config_lib.updated(config, {"data.name": "enwik8"})
    text_procedure.run(byte_level, tmp_path / "bytes")  # no tokenizer to train
    assert seen[-1].data.tokenizer == "" and not (tmp_path / "bytes").exists()


def test_procedure_on_other_processes_loads_what_process_0_wrote(tmp_path, corpus, monkeypatch):
    """Process 1 of 2 never trains: it waits for process 0's outcome, then loads the file."""
    from jax.experimental import multihost_utils

    monkeypatch.setattr(text_procedure.jax, "process_index", lambda: 1)
    monkeypatch.setattr(text_procedure.jax, "process_count", lambda: 2)
    outcome = {"failed": 0}
    monkeypatch.setattr(multihost_utils, "broadcast_one_to_all", lambda x: outcome["failed"])
    config = get_config()
    config.data = cfg(corpus[0])
    with pytest.raises(ConfigError, match="does not see .*tokenizer.model, which process 0 wrote"):
        text_procedure.workdir_tokenizer(config, tmp_path)
    outcome["failed"] = 1
    with pytest.raises(ConfigError, match="training the tokenizer failed on process 0"):
        text_procedure.workdir_tokenizer(config, tmp_path)
    outcome["failed"] = 0
    tok.train(text_sources.training_text(config.data), tmp_path / "tokenizer", vocab_size=VOCAB)
    assert text_procedure.workdir_tokenizer(config, tmp_path) == str(tmp_path / "tokenizer")


# Masked-LM pre-training text: text_lines (user files) and lm1b (TFDS).

LINES = {"train": 60, "valid": 10}


def write_lines(folder, empty_at=(3, 7)):
    """{split}.txt with LINES lines of English words; train has empty (or blank) lines at
    `empty_at` and one line far longer than 48 pieces."""
    rng = random.Random(1)
    folder.mkdir(parents=True, exist_ok=True)
    lines = {}
    for split, count in LINES.items():
        text = [sentence(rng, EN) for _ in range(count)]
        if split == "train":
            for i in empty_at:
                text[i] = " " if i % 2 else ""
            text[10] = " ".join(EN * 6)
        (folder / f"{split}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
        lines[split] = text
    return lines


def lines_cfg(folder="", tokenizer="", **overrides):
    return cfg(folder, tokenizer, **{"name": "text_lines", **overrides})


@pytest.fixture(scope="module")
def lines_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lines")
    lines = write_lines(folder)
    tokenizer_dir = folder / "tokenizer"
    tok.train(text_sources.training_text(lines_cfg(folder)), tokenizer_dir, vocab_size=VOCAB)
    return folder, tokenizer_dir, lines


def test_text_lines_records_are_bos_line_eos_truncated_keeping_eos(lines_corpus):
    folder, tokenizer_dir, lines = lines_corpus
    tokenizer = tok.load(tokenizer_dir)
    got = text_sources.text_lines(lines_cfg(folder, tokenizer_dir), "train")
    kept = [line for line in lines["train"] if line.strip()]
    assert len(got.records) == len(kept) == LINES["train"] - 2 and got.vocab_size == VOCAB
    assert "58 lines; 2 empty lines skipped; 1 truncated to data.max_length=48" in got.origin
    for i, line in enumerate(kept):
        tokens = got.records[i]["tokens"]
        assert tokens[0] == BOS and tokens[-1] == EOS and len(tokens) <= 48
        pieces = tokenizer.encode_batch([line])[0]
        np.testing.assert_array_equal(tokens[1:-1], pieces[:46])
    long = kept.index(" ".join(EN * 6))
    assert len(got.records[long]["tokens"]) == 48  # truncated, EOS kept
    valid = text_sources.text_lines(lines_cfg(folder, tokenizer_dir), "valid")
    assert "(10 lines)" in valid.origin
    assert tokenizer.decode(valid.records[0]["tokens"]) == lines["valid"][0]


def test_text_lines_training_text_and_pipeline(lines_corpus):
    folder, tokenizer_dir, lines = lines_corpus
    texts = list(text_sources.training_text(lines_cfg(folder, lowercase=True)))
    assert texts == [line.lower() for line in lines["train"] if line.strip()]
    c = lines_cfg(folder, tokenizer_dir)
    assert text_sources.needs_tokenizer(c) and text_sources.needs_tokenizer(
        lines_cfg(name="lm1b"))
    info = data.get_info(c)
    assert (info.keys, info.num_train, info.num_eval) == (("tokens",), 58, 10)
    batch = next(data.train_iterator(c, seed=0))
    real = batch["tokens"][batch["mask"] > 0]
    assert batch["tokens"].shape == (8, 48) and len(real) and (real[:, 0] == BOS).all()


@pytest.mark.parametrize("change, message", [
    (lambda f: (f / "valid.txt").unlink(), r"lacks valid\.txt; it has train\.txt\. "),
    (lambda f: (f / "valid.txt").write_bytes(b"ok\ncaf\xe9\n"),
     r"line 2 of .*valid\.txt is not UTF-8 .* convert the file to UTF-8"),
    (lambda f: (f / "valid.txt").write_text("\n \n"), r"valid\.txt has no text"),
], ids=["missing_file", "bad_utf8", "all_empty"])
def test_text_lines_errors_say_what_is_wrong(tmp_path, lines_corpus, change, message):
    folder = tmp_path / "data"
    write_lines(folder)
    change(folder)
    with pytest.raises(ConfigError, match=message) as e:
        text_sources.text_lines(lines_cfg(folder, lines_corpus[1]), "valid")
    if "text" not in message:
        assert "text_lines format: data.data_dir holds {split}.txt files" in str(e.value)


def test_text_lines_needs_its_folder_a_tokenizer_and_room(tmp_path, lines_corpus):
    folder, tokenizer_dir, _ = lines_corpus
    with pytest.raises(ConfigError, match="data.data_dir, which is empty"):
        text_sources.text_lines(lines_cfg("", tokenizer_dir), "train")
    with pytest.raises(ConfigError, match="folder .*nowhere does not exist"):
        text_sources.text_lines(lines_cfg(tmp_path / "nowhere", tokenizer_dir), "train")
    with pytest.raises(ConfigError, match="set data.tokenizer"):
        text_sources.text_lines(lines_cfg(folder), "train")
    with pytest.raises(ConfigError, match="max_length=2 tokens: set it to at least 3"):
        text_sources.text_lines(lines_cfg(folder, tokenizer_dir, max_length=2), "train")


def test_lm1b_by_tfds_name_gives_token_records(lines_corpus):
    c = lines_cfg(tokenizer=lines_corpus[1], name="lm1b", eval_split="validation",
                  validation_examples=2)
    with tfds.testing.mock_data(num_examples=6):
        train = sources.open_split(c, "train")
        held = sources.open_split(c, "eval")
        texts = list(text_sources.training_text(c))
    assert set(train.records.features) == {"tokens"} and train.vocab_size == VOCAB
    assert (len(train.records), len(held.records)) == (4, 2)
    assert "TFDS lm1b train in" in train.origin and "validation part" in held.origin
    for split in (train, held):
        for i in range(len(split.records)):
            tokens = split.records[i]["tokens"]
            assert tokens[0] == BOS and tokens[-1] == EOS and len(tokens) <= 48
    assert len(texts) == 6 and all(isinstance(t, str) and t.strip() for t in texts)
