"""Corpus BLEU through sacrebleu, in the two conventions the translation papers report.

"detok" is WMT's: sacrebleu's standard 13a tokenisation of detokenised text, comparable across
papers. "tok" is fairseq's IWSLT convention: the text is already tokenised (and often
BPE-merged back into words), and BLEU splits it on whitespace as given (tokenize='none'). The
two give different numbers for the same output, so a claim must name its variant.
"""

from __future__ import annotations

from collections.abc import Sequence

from lib.config import ConfigError

VARIANTS = ("detok", "tok")
_TOKENIZE = {"detok": "13a", "tok": "none"}


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError as e:
        raise ConfigError('BLEU needs sacrebleu: pip install -e ".[text]"') from e
    return sacrebleu


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], *,
                variant: str = "detok", lowercase: bool = False) -> float:
    """Corpus BLEU in [0, 100] of one reference per hypothesis (sacrebleu's default
    exponential smoothing, as sacrebleu and fairseq report it)."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown BLEU variant {variant!r}; valid variants: "
                          f"{', '.join(VARIANTS)} (detok: WMT-style 13a on detokenised text, "
                          "tok: IWSLT-style on tokenised text)")
    for name, texts in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(texts, str):
            raise ConfigError(f"BLEU {name} must be a list of sentences, not one string")
    if len(hypotheses) != len(references):
        raise ConfigError(f"BLEU needs one reference per hypothesis, got {len(hypotheses)} "
                          f"hypotheses and {len(references)} references")
    if not hypotheses:
        raise ConfigError("BLEU of an empty corpus is undefined: got no hypotheses and no "
                          "references (did the evaluation split yield no examples?)")
    sacrebleu = _sacrebleu()
    result = sacrebleu.corpus_bleu(
        list(hypotheses), [list(references)], tokenize=_TOKENIZE[variant], lowercase=lowercase,
        force=variant == "tok")  # force: tokenised input is what "tok" expects, no warning
    return float(result.score)
