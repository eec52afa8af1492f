"""Greedy and beam-search decoding for any autoregressive model, traceable under `jax.jit`.

The model is a `logits_fn(prefix)`: int32 (N, max_length) rows of BOS, the tokens generated so
far, then PAD, to float logits (N, max_length, V) where position t predicts token t + 1. There is
no KV cache: the model recomputes the whole fixed-length buffer each step, so every shape is
static and one compilation serves all steps. Outputs are (batch, max_length) tokens without the
BOS: token i in column i, EOS included when produced, PAD after it. PAD and BOS are never
generated.

Both functions trace `logits_fn` once; wrap them in `jax.jit` with the model state as a jit
argument (`jax.jit(lambda params, src: greedy(lambda p: apply(params, src, p), B, L))`), not
closed over a new function per call, or every call compiles again.
"""

import jax
import jax.numpy as jnp

from lib.text import BOS, EOS, PAD


def _check(batch_size: int, max_length: int, beam_size: int = 1) -> None:
    for name, value in (("batch_size", batch_size), ("max_length", max_length),
                        ("beam_size", beam_size)):
        if int(value) < 1:
            raise ValueError(f"decoding needs {name} >= 1, got {value}")


def _next_log_probs(logits_fn, prefix: jax.Array, step: jax.Array, bos: int, eos: int,
                    pad: int) -> jax.Array:
    """float32 log-probabilities (N, V) of the token after position `step`; PAD and BOS get −inf
    after the softmax (fairseq's order: their mass is dropped, not renormalised), so the output
    format holds whatever the model says."""
    logits = logits_fn(prefix)
    if logits.ndim != 3 or logits.shape[:2] != prefix.shape:
        raise ValueError(f"logits_fn must map a {prefix.shape} prefix to (N, max_length, V) "
                         f"logits, got shape {logits.shape}")
    if logits.shape[-1] <= max(bos, eos, pad):
        raise ValueError(f"a vocabulary of {logits.shape[-1]} has no room for bos={bos}, "
                         f"eos={eos}, pad={pad}")
    log_probs = jax.nn.log_softmax(
        jax.lax.dynamic_index_in_dim(logits, step, axis=1, keepdims=False).astype(jnp.float32))
    return log_probs.at[:, jnp.array([pad, bos])].set(-jnp.inf)


def _prefix(tokens: jax.Array, bos: int) -> jax.Array:
    """BOS followed by all but the last generated column: the model input for any step."""
    return jnp.concatenate([jnp.full_like(tokens[:, :1], bos), tokens[:, :-1]], axis=1)


def greedy(logits_fn, batch_size: int, max_length: int, *, bos: int = BOS, eos: int = EOS,
           pad: int = PAD) -> jax.Array:
    """Argmax decoding (ties: lowest id); a `while_loop` that stops once every row has its EOS."""
    _check(batch_size, max_length)

    def body(state):
        step, tokens, done = state
        log_probs = _next_log_probs(logits_fn, _prefix(tokens, bos), step, bos, eos, pad)
        token = jnp.where(done, pad, jnp.argmax(log_probs, axis=-1).astype(jnp.int32))
        return step + 1, tokens.at[:, step].set(token), done | (token == eos)

    state = (jnp.int32(0), jnp.full((batch_size, max_length), pad, jnp.int32),
             jnp.zeros((batch_size,), bool))
    return jax.lax.while_loop(lambda s: (s[0] < max_length) & ~jnp.all(s[2]), body, state)[1]


def beam_search(logits_fn, batch_size: int, max_length: int, *, beam_size: int,
                length_penalty: float = 1.0, bos: int = BOS, eos: int = EOS, pad: int = PAD
                ) -> tuple[jax.Array, jax.Array]:
    """Beam search as fairseq's `SequenceGenerator` does it; returns the best finished hypothesis
    per example, (batch, max_length) tokens, and its score (batch,).

    fairseq-compatible, so results match the papers' decoding:
    - score = Σ log p / length**length_penalty, length counting the generated tokens with EOS
      (length_penalty 0: the raw sum; larger values favour longer outputs);
    - each step ranks the top 2·beam_size extensions by cumulative log-probability; those among
      the first beam_size that end in EOS (or fill max_length) are finished, and the best
      beam_size that do not end in EOS continue (2·beam_size guarantees enough of them);
    - an example stops once beam_size hypotheses have finished, and its best one by score is
      returned; so a larger beam can still miss the exhaustive argmax, as in fairseq.
    One difference: fairseq forces an EOS at max_len; here the buffer has no room for it, so a
    hypothesis that fills max_length tokens without EOS finishes there, with length max_length.
    Only the best finished hypothesis and a count are kept: that is all the output needs.
    logits_fn sees (batch·beam_size, max_length) prefixes; example b owns rows b·beam_size to
    b·beam_size + beam_size − 1."""
    _check(batch_size, max_length, beam_size)
    b, k, length = batch_size, beam_size, max_length

    def body(state):
        step, seqs, log_p, best, best_score, n_done = state
        log_probs = _next_log_probs(logits_fn, _prefix(seqs.reshape(b * k, length), bos), step,
                                    bos, eos, pad)
        vocab = log_probs.shape[-1]
        scores, index = jax.lax.top_k((log_p[..., None] + log_probs.reshape(b, k, vocab))
                                      .reshape(b, k * vocab), 2 * k)
        token = (index % vocab).astype(jnp.int32)
        cand = jnp.take_along_axis(seqs, (index // vocab)[..., None], axis=1)
        cand = cand.at[:, :, step].set(token)

        ends = (token == eos) | (step == length - 1)
        finished = (ends & (jnp.arange(2 * k) < k) & jnp.isfinite(scores)
                    & (n_done < k)[:, None])
        normed = jnp.where(finished, scores / (step + 1.0) ** length_penalty, -jnp.inf)
        j = jnp.argmax(normed, axis=1)
        new = jnp.take_along_axis(normed, j[:, None], axis=1)[:, 0]
        better = new > best_score
        best = jnp.where(better[:, None], jnp.take_along_axis(cand, j[:, None, None], 1)[:, 0],
                         best)
        best_score = jnp.where(better, new, best_score)

        log_p, keep = jax.lax.top_k(jnp.where(token == eos, -jnp.inf, scores), k)
        seqs = jnp.take_along_axis(cand, keep[..., None], axis=1)
        return (step + 1, seqs, log_p, best, best_score,
                n_done + jnp.sum(finished, axis=1, dtype=jnp.int32))

    # Only beam 0 is live at first, so the first step does not pick k copies of one token.
    log_p = jnp.tile(jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf), (b, 1))
    state = (jnp.int32(0), jnp.full((b, k, length), pad, jnp.int32), log_p,
             jnp.full((b, length), pad, jnp.int32), jnp.full((b,), -jnp.inf),
             jnp.zeros((b,), jnp.int32))
    state = jax.lax.while_loop(lambda s: (s[0] < length) & jnp.any(s[5] < k), body, state)
    return state[3], state[4]
