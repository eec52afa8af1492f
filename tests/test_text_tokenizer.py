"""lib.text.tokenizer: fixed special ids, round trips, resume without retraining, clear errors."""

import json
import pathlib
import pickle
import random
import subprocess
import sys

import pytest

from lib.config import ConfigError
from lib.text import tokenizer as tok

pytest.importorskip("sentencepiece")

WORDS = ("the a cat dog bird sat ran flew on over under mat tree house red small quick "
         "brown jumps sleeps near").split()
VOCAB = 80
ROOT = pathlib.Path(__file__).resolve().parents[1]


def sentences(count: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(count)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    return folder, tok.train(sentences(), folder, vocab_size=VOCAB)


def test_special_ids_and_files(trained):
    folder, t = trained
    assert (tok.PAD, tok.BOS, tok.EOS, tok.UNK) == (0, 1, 2, 3)
    assert t.vocab_size == VOCAB
    assert [t._sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    info = json.loads((folder / tok.INFO_FILE).read_text())
    assert info == {"vocab_size": VOCAB, "model_type": "bpe", "sha256": t.sha256,
                    "character_coverage": 1.0}
    assert sorted(p.name for p in folder.iterdir()) == [tok.INFO_FILE, tok.MODEL_FILE]


def test_round_trip(trained):
    _, t = trained
    texts = sentences()[:50]
    ids = t.encode_batch(texts)
    assert ids == [t.encode(s) for s in texts]
    assert all(min(i) > tok.UNK for i in ids)  # no specials added, nothing unknown
    assert [t.decode(i) for i in ids] == texts


def test_decode_stops_at_eos_and_skips_pad_bos(trained):
    _, t = trained
    a, b = t.encode("the cat sat"), t.encode("on the mat")
    assert t.decode([tok.BOS, *a, tok.EOS, *b, tok.PAD]) == "the cat sat"
    assert t.decode([tok.BOS, *a[:1], tok.PAD, *a[1:]]) == "the cat sat"
    assert t.decode([tok.EOS, *a]) == ""
    with pytest.raises(ValueError, match="outside"):
        t.decode([VOCAB + 5])


def test_pickles(trained):
    _, t = trained
    copy = pickle.loads(pickle.dumps(t))
    assert copy.sha256 == t.sha256 and copy.encode("the cat") == t.encode("the cat")


def test_train_or_load_reuses_without_retraining(tmp_path):
    calls = []

    def texts():
        calls.append(1)
        return sentences()

    first = tok.train_or_load(texts, tmp_path, vocab_size=VOCAB)
    model = tmp_path / tok.MODEL_FILE
    stamp = model.stat().st_mtime_ns
    second = tok.train_or_load(texts, tmp_path, vocab_size=VOCAB, model_type="bpe")
    assert second.sha256 == first.sha256 == tok.load(tmp_path).sha256
    assert model.stat().st_mtime_ns == stamp and len(calls) == 1
    with pytest.raises(ConfigError, match=r"other settings: vocab_size 80, not 90.*--workdir"):
        tok.train_or_load(texts, tmp_path, vocab_size=90)
    with pytest.raises(ConfigError, match="model_type 'bpe', not 'unigram'"):
        tok.train_or_load(texts, tmp_path, vocab_size=VOCAB, model_type="unigram")
    assert model.stat().st_mtime_ns == stamp and len(calls) == 1


def test_training_is_deterministic(trained, tmp_path):
    _, t = trained
    assert tok.train(sentences(), tmp_path, vocab_size=VOCAB).sha256 == t.sha256


SAMPLED = """
import sys
from lib.text import tokenizer as tok
from tests.test_text_tokenizer import sentences
print(tok.train(iter(sentences(400)), sys.argv[1], vocab_size=60, max_sentences=50).sha256)
"""


def test_sampled_training_is_the_same_in_every_process(tmp_path):
    # sentencepiece's own sampling (input_sentence_size) draws another sample per process.
    shas = {subprocess.run([sys.executable, "-c", SAMPLED, str(tmp_path / str(i))], check=True,
                           capture_output=True, text=True, cwd=ROOT).stdout for i in range(2)}
    assert len(shas) == 1
    assert tok.load(tmp_path / "0").sha256 == shas.pop().strip()
    full = tok.train(sentences(400), tmp_path / "full", vocab_size=60)
    assert full.sha256 != tok.load(tmp_path / "0").sha256  # the sample is not all the text
    with pytest.raises(ConfigError, match="max_sentences must be an int"):
        tok.train(sentences(), tmp_path, vocab_size=60, max_sentences=-1)


def test_check_matches(trained, tmp_path):
    _, t = trained
    saved = json.loads((trained[0] / tok.INFO_FILE).read_text())
    tok.check_matches(t, saved, "run/tokenizer.json")
    with pytest.raises(ConfigError, match=r"run/tokenizer.json.*sha256 'abc' there.*--workdir"):
        tok.check_matches(t, {**saved, "sha256": "abc"}, "run/tokenizer.json")
    with pytest.raises(ConfigError, match="vocab_size 90 there, 80 here"):
        tok.check_matches(t, {**saved, "vocab_size": 90}, "run/tokenizer.json")


def test_vocab_too_large(tmp_path):
    with pytest.raises(ConfigError, match=r"vocab_size=5000 is too large.*Lower vocab_size to "
                                          r"\d+ or less"):
        tok.train(sentences(), tmp_path, vocab_size=5000)
    assert not (tmp_path / tok.MODEL_FILE).exists()


def test_bad_settings_and_texts(tmp_path):
    with pytest.raises(ConfigError, match="bpe, unigram, char, word"):
        tok.train(sentences(), tmp_path, vocab_size=VOCAB, model_type="wordpiece")
    with pytest.raises(ConfigError, match="above 4"):
        tok.train(sentences(), tmp_path, vocab_size=3)
    with pytest.raises(ConfigError, match="no sentences"):
        tok.train([], tmp_path, vocab_size=VOCAB)
    with pytest.raises(ConfigError, match="must be str, got int at position 2"):
        tok.train(["a b", "c d", 7], tmp_path, vocab_size=VOCAB)

    def failing_source():
        yield from sentences(200)
        raise FileNotFoundError("the corpus went away")

    with pytest.raises(FileNotFoundError, match="corpus went away"):  # not sentencepiece's
        tok.train(failing_source(), tmp_path, vocab_size=VOCAB)
    assert not any(tmp_path.iterdir())


def test_load_errors(tmp_path, trained):
    with pytest.raises(ConfigError, match=r"tokenizer.model not found.*lib.text.tokenizer.train"):
        tok.load(tmp_path)
    (tmp_path / tok.MODEL_FILE).write_bytes((trained[0] / tok.MODEL_FILE).read_bytes())
    with pytest.raises(ConfigError, match="tokenizer.json is missing"):
        tok.load(tmp_path)
    info = json.loads((trained[0] / tok.INFO_FILE).read_text())
    (tmp_path / tok.INFO_FILE).write_text(json.dumps({**info, "sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="different trainings"):
        tok.load(tmp_path)
    (tmp_path / tok.MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a sentencepiece model"):
        tok.load(tmp_path)


def test_missing_sentencepiece_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[text\]"'):
        tok.train(sentences(), tmp_path, vocab_size=VOCAB)
