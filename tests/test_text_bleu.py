"""lib.text.bleu against sacrebleu called directly and against BLEU computed by hand."""

import collections
import math
import sys

import pytest

from lib.config import ConfigError
from lib.text import bleu

sacrebleu = pytest.importorskip("sacrebleu")

HYPS = ["The cat sat on the mat, didn't it?", "A quick brown fox jumps over the dog."]
REFS = ["The cat sat on a mat, didn't it?", "The quick brown fox jumped over the lazy dog."]


def hand_bleu(hypotheses: list[str], references: list[str]) -> tuple[float, list[float]]:
    """Papineni et al.'s corpus BLEU on whitespace tokens, in percent, and its precisions."""
    matches, totals = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            h_grams = collections.Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            r_grams = collections.Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, r_grams[g]) for g, c in h_grams.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    precisions = [m / t for m, t in zip(matches, totals)]
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * brevity * math.exp(sum(map(math.log, precisions)) / 4), precisions


def test_identical_text_scores_100():
    for variant in bleu.VARIANTS:
        # sacrebleu computes exp(log(100)) = 100.00000000000004, so not bit-exactly 100.0
        assert bleu.corpus_bleu(REFS, REFS, variant=variant) == pytest.approx(100.0, abs=1e-9)


def test_detok_equals_sacrebleu_called_directly():
    expected = sacrebleu.corpus_bleu(HYPS, [REFS]).score
    assert bleu.corpus_bleu(HYPS, REFS) == expected
    assert bleu.corpus_bleu(HYPS, REFS, variant="detok") == expected
    assert 0 < expected < 100


def test_tok_equals_sacrebleu_with_no_tokenisation():
    expected = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="none").score
    assert bleu.corpus_bleu(HYPS, REFS, variant="tok") == expected
    assert expected != bleu.corpus_bleu(HYPS, REFS, variant="detok")  # "mat," is one token


def test_tok_equals_hand_computation():
    # Tokenised text, 16 hypothesis tokens against 17 reference tokens: a brevity penalty.
    hyps = ["the cat sat on the mat .", "a quick brown fox jumps over the dog ."]
    refs = ["the cat sat on a mat .", "the quick brown fox jumped over the lazy dog ."]
    expected, precisions = hand_bleu(hyps, refs)
    assert all(p > 0 for p in precisions) and len(" ".join(hyps).split()) < 17
    assert bleu.corpus_bleu(hyps, refs, variant="tok") == pytest.approx(expected, abs=1e-9)


def test_lowercase():
    hyp, ref = ["The Cat sat on the Mat ."], ["the cat sat on the mat ."]
    assert bleu.corpus_bleu(hyp, ref) < 100
    assert bleu.corpus_bleu(hyp, ref, lowercase=True) == pytest.approx(100.0, abs=1e-9)
    assert bleu.corpus_bleu(hyp, ref, variant="tok", lowercase=True) == pytest.approx(100.0)


def test_errors():
    with pytest.raises(ConfigError, match="detok, tok"):
        bleu.corpus_bleu(HYPS, REFS, variant="multi-bleu")
    with pytest.raises(ConfigError, match="2 hypotheses and 1 references"):
        bleu.corpus_bleu(HYPS, REFS[:1])
    with pytest.raises(ConfigError, match="empty"):
        bleu.corpus_bleu([], [])
    with pytest.raises(ConfigError, match="list of sentences"):
        bleu.corpus_bleu("the cat", "the cat")


def test_missing_sacrebleu_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # import raises
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[text\]"'):
        bleu.corpus_bleu(HYPS, REFS)
