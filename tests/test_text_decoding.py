"""Greedy and beam-search decoding against numpy loops, an exhaustive search and worked cases."""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.text.decoding import BOS, EOS, PAD, beam_search, greedy

A, B_ = 3, 4  # the content tokens of the worked examples (V = 5)


def linear_logits(w, bias, per, prefix):
    """A random causal model: position t sees prefix[:t+1] through w (L, L, V, V) plus a bias
    per example, bias[row // per], so a mixed-up beam layout shows."""
    length = prefix.shape[1]
    causal = jnp.triu(jnp.ones((length, length)))[:, :, None, None]
    one_hot = jax.nn.one_hot(prefix, w.shape[-1])
    return (jnp.einsum("nsv,stvw->ntw", one_hot, w * causal)
            + jnp.asarray(bias)[jnp.arange(prefix.shape[0]) // per])


def random_model(seed, batch, length, vocab):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(length, length, vocab, vocab)).astype(np.float32),
            rng.normal(size=(batch, length, vocab)).astype(np.float32))


def np_log_probs(w, bias, b, prefix):
    """numpy log-probabilities of the token after `prefix` (BOS first), PAD and BOS at −inf."""
    t = len(prefix) - 1
    logits = sum(w[s, t, tok] for s, tok in enumerate(prefix)) + bias[b, t]
    out = logits - np.max(logits)
    out = out - np.log(np.sum(np.exp(out)))
    out[[PAD, BOS]] = -np.inf
    return out


def np_score(w, bias, b, seq, length_penalty):
    """Σ log p of `seq` (no BOS, EOS included) over len(seq)**length_penalty."""
    total = sum(np_log_probs(w, bias, b, [BOS] + seq[:i])[tok] for i, tok in enumerate(seq))
    return total / len(seq) ** length_penalty


def markov_logits(table):
    """A model whose next token depends only on the current one: logits = table[token]."""
    table = jnp.asarray(table)
    return lambda prefix: table[prefix]


def markov_table(rows, vocab=5):
    """Log-probability table from {token: {next: p}}; unlisted rows are uniform."""
    table = np.zeros((vocab, vocab), np.float32)
    for tok, probs in rows.items():
        table[tok] = -1e9
        for nxt, p in probs.items():
            table[tok, nxt] = np.log(p)
    return table


def pad_to(tokens, length):
    return tokens + [PAD] * (length - len(tokens))


def test_beam_size_one_equals_greedy():
    batch, length, vocab = 4, 6, 6
    run_greedy = jax.jit(lambda w, bias: greedy(
        functools.partial(linear_logits, w, bias, 1), batch, length))
    run_beam = jax.jit(lambda w, bias: beam_search(
        functools.partial(linear_logits, w, bias, 1), batch, length, beam_size=1))
    for seed in range(5):
        model = random_model(seed, batch, length, vocab)
        np.testing.assert_array_equal(run_beam(*model)[0], run_greedy(*model))


def test_greedy_matches_numpy_loop():
    batch, length, vocab = 6, 7, 6
    b, tok, pos, nxt = np.meshgrid(*map(np.arange, (batch, vocab, length, vocab)),
                                   indexing="ij")
    table = ((3 * (b + 1) * tok + 5 * pos + 7 * nxt + 2 * b) % 11).astype(np.float32)

    def logits_fn(prefix):  # per example, depends on the current token and its position
        return jnp.asarray(table)[jnp.arange(batch)[:, None], prefix, jnp.arange(length)]

    expected = []
    for row in range(batch):
        out, current = [], BOS
        for t in range(length):
            logits = table[row, current, t].copy()
            logits[[PAD, BOS]] = -np.inf
            current = int(np.argmax(logits))
            out.append(current)
            if current == EOS:
                break
        expected.append(pad_to(out, length))
    expected = np.array(expected)
    assert (expected == EOS).any(axis=1).sum() not in (0, batch)  # both kinds of row occur
    got = jax.jit(functools.partial(greedy, logits_fn, batch, length))()
    np.testing.assert_array_equal(got, expected)


def test_beam_finds_what_greedy_misses():
    # Greedy takes A (0.6) and then EOS (0.34): p = 0.204. B (0.39) then EOS (0.9) gives 0.351.
    table = markov_table({BOS: {A: 0.6, B_: 0.39, EOS: 0.01},
                          A: {EOS: 0.34, A: 0.33, B_: 0.33},
                          B_: {EOS: 0.9, A: 0.05, B_: 0.05}})
    fn = markov_logits(table)
    np.testing.assert_array_equal(jax.jit(functools.partial(greedy, fn, 2, 5))(),
                                  [pad_to([A, EOS], 5)] * 2)
    tokens, scores = jax.jit(functools.partial(beam_search, fn, 2, 5, beam_size=2))()
    np.testing.assert_array_equal(tokens, [pad_to([B_, EOS], 5)] * 2)
    np.testing.assert_allclose(scores, (np.log(0.39) + np.log(0.9)) / 2, rtol=1e-5)
    assert np.log(0.39 * 0.9) > np.log(0.6 * 0.34)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_beam_matches_exhaustive_search(length_penalty):
    # V = 5: three tokens can be generated (EOS, A, B_). With beam_size 16 nothing is pruned in
    # 4 steps: the 12 extensions at step 3 all rank in the first beam_size, so every EOS there
    # finishes, and the 8 three-token prefixes all continue.
    batch, length, vocab, beam = 2, 4, 5, 16
    run = jax.jit(lambda w, bias: beam_search(
        functools.partial(linear_logits, w, bias, beam), batch, length, beam_size=beam,
        length_penalty=length_penalty))
    words = [list(c) for n in range(length + 1) for c in itertools.product((A, B_), repeat=n)]
    candidates = [c + [EOS] for c in words if len(c) < length] + [c for c in words
                                                                  if len(c) == length]
    assert len(candidates) == 31
    for seed in range(3):
        w, bias = random_model(seed, batch, length, vocab)
        tokens, scores = run(w, bias)
        for b in range(batch):
            score = functools.partial(np_score, w, bias, b, length_penalty=length_penalty)
            best = max(candidates, key=score)
            np.testing.assert_array_equal(tokens[b], pad_to(best, length))
            np.testing.assert_allclose(scores[b], score(best), rtol=1e-5, atol=1e-5)


def test_length_penalty_favours_longer_outputs():
    # [EOS]: log 0.55 = −0.598. [A, EOS]: log 0.44 + log 0.9 = −0.927, i.e. −0.463 per token.
    table = markov_table({BOS: {EOS: 0.55, A: 0.44, B_: 0.01},
                          A: {EOS: 0.9, A: 0.05, B_: 0.05}})
    decode = functools.partial(beam_search, markov_logits(table), 1, 5, beam_size=2)
    tokens, score = jax.jit(functools.partial(decode, length_penalty=0.0))()
    np.testing.assert_array_equal(tokens, [pad_to([EOS], 5)])
    np.testing.assert_allclose(score, [np.log(0.55)], rtol=1e-5)
    tokens, score = jax.jit(functools.partial(decode, length_penalty=1.0))()
    np.testing.assert_array_equal(tokens, [pad_to([A, EOS], 5)])
    np.testing.assert_allclose(score, [(np.log(0.44) + np.log(0.9)) / 2], rtol=1e-5)


def test_output_format():
    batch, length, vocab, beam = 16, 6, 6, 3
    w, bias = random_model(7, batch, length, vocab)
    bias[..., EOS] -= 2.0  # so that some rows fill max_length without EOS
    greedy_out = jax.jit(functools.partial(
        greedy, functools.partial(linear_logits, w, bias, 1), batch, length))()
    beam_out, scores = jax.jit(functools.partial(
        beam_search, functools.partial(linear_logits, w, bias, beam), batch, length,
        beam_size=beam))()
    assert scores.shape == (batch,) and np.isfinite(scores).all()
    for out in (np.asarray(greedy_out), np.asarray(beam_out)):
        assert out.shape == (batch, length) and out.dtype == np.int32
        assert not (out == BOS).any()
        ended = np.cumsum(out == EOS, axis=1) - (out == EOS) > 0  # strictly after the first EOS
        assert (out[ended] == PAD).all() and not (out[~ended] == PAD).any()
        assert (out == EOS).any(axis=1).sum() not in (0, batch)


def test_bad_arguments():
    fn = markov_logits(np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError, match="beam_size >= 1, got 0"):
        beam_search(fn, 2, 5, beam_size=0)
    with pytest.raises(ValueError, match="max_length >= 1, got 0"):
        beam_search(fn, 2, 0, beam_size=2)
    with pytest.raises(ValueError, match="max_length >= 1, got 0"):
        greedy(fn, 2, 0)
    with pytest.raises(ValueError, match=r"\(N, max_length, V\) logits"):
        greedy(lambda prefix: jnp.zeros(prefix.shape[:1] + (5,)), 2, 5)
