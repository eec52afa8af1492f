"""Translation quality by decoding: greedy or beam search over an eval pass, then corpus BLEU.

The encoder runs once per batch; the decoder recomputes the fixed-length prefix buffer at each
step (lib.text.decoding), so one compilation serves every batch of a shape. For beam search the
encoder output is repeated per beam (rows b·beam … b·beam + beam − 1 belong to example b, the
layout beam_search expects). Hypotheses and references are turned into text by `detokenize`
(a tokenizer's decode, or token ids joined by spaces for tokenizer-free data), each cut at
its first EOS; padding rows are skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lib import sharding
from lib.text import EOS, bleu, decoding


def ids_text(ids) -> str:
    """Token ids up to the first EOS, as a space-separated string (tokenizer-free data)."""
    out = []
    for t in np.asarray(ids).tolist():
        if t == EOS:
            break
        if t > EOS:
            out.append(str(t))
    return " ".join(out)


def _decode(setup, beam_size: int, length_penalty: float, state, inputs):
    model = setup.model(state)
    memory, mask = model.encode(inputs)
    batch, length = inputs.shape[0], inputs.shape[1]
    if beam_size == 1:
        return decoding.greedy(lambda p: model.decode(p, memory, mask), batch, length)
    memory, mask = (jnp.repeat(x, beam_size, axis=0) for x in (memory, mask))
    tokens, _ = decoding.beam_search(lambda p: model.decode(p, memory, mask), batch, length,
                                     beam_size=beam_size, length_penalty=length_penalty)
    return tokens


class Translator:
    """Jitted decoding of a trainer's eval batches (one compilation per batch shape)."""

    def __init__(self, trainer, beam_size: int, length_penalty: float):
        self.trainer = trainer
        self._decode = jax.jit(
            functools.partial(_decode, trainer.setup, beam_size, length_penalty),
            in_shardings=(trainer.state_sharding, trainer.batch_sharding),
            out_shardings=sharding.replicated(trainer.mesh))

    def translations(self, state, batches, detokenize: Callable = ids_text
                     ) -> tuple[list[str], list[str]]:
        """(hypotheses, references) of every real row of `batches`, in batch order."""
        hypotheses, references = [], []
        for local in batches:
            batch = sharding.global_batch(local, self.trainer.batch_sharding)
            tokens = np.asarray(jax.device_get(self._decode(state, batch["inputs"])))
            targets = np.asarray(jax.device_get(batch["targets"]))
            real = np.asarray(jax.device_get(batch["mask"])) > 0
            for row in np.flatnonzero(real):
                hypotheses.append(detokenize(tokens[row]))
                references.append(detokenize(targets[row]))
        return hypotheses, references

    def bleu(self, state, batches, detokenize: Callable = ids_text, *, variant: str = "tok",
             lowercase: bool = False) -> float:
        hypotheses, references = self.translations(state, batches, detokenize)
        return bleu.corpus_bleu(hypotheses, references, variant=variant, lowercase=lowercase)
