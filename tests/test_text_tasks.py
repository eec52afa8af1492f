"""Token tasks of lib.text.tasks beside Translation: RoBERTa masking rates, masked-LM, sentence
classification and language-model evaluation sums against numpy, padding rows, refusals, and
a short language-model training run."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.base import get_config
from lib import config as config_lib
from lib import train
from lib.config import ConfigError
from lib.data.pipeline import DatasetInfo
from lib.text import PAD, masking, tasks
from tests.helpers import train_losses

VOCAB = 12  # the data's ids: 0–3 special, 4–11 regular


def config(**changes):
    return config_lib.updated(get_config(), {
        "model.width": 16, "model.num_heads": 2, "model.mlp_dim": 32,
        "model.encoder_types": "LL", "data.max_length": 16, **changes})


def info(keys=("tokens",), num_classes=0, vocab_size=VOCAB):
    return DatasetInfo("toy", (), num_classes, 10, 10, keys=keys, vocab_size=vocab_size)


def log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def batch(rows, mask, **extra):
    """Rows padded with PAD to 8 tokens; 'index' numbers them, -1 for padding rows."""
    tokens = np.zeros((len(rows), 8), np.int32)
    for r, row in enumerate(rows):
        tokens[r, :len(row)] = row
    mask = np.asarray(mask, np.float32)
    index = np.where(mask > 0, np.arange(len(rows)) + 10, -1).astype(np.int32)
    return {"tokens": jnp.asarray(tokens), "mask": jnp.asarray(mask),
            "index": jnp.asarray(index), **extra}


# Rows 0 and 1 are real (lengths 6 and 4 with EOS); row 2 is a padding row that holds tokens,
# so only its mask keeps it out.
ROWS = [[4, 5, 6, 7, 8, 2], [9, 10, 11, 2], [5, 5, 5, 5, 5, 5, 5, 2]]
MASK = [1, 1, 0]


# --- masking --------------------------------------------------------------------------------


def test_masking_rates_within_three_sigma():
    vocab, mask_id = 50, 50
    tokens = np.random.default_rng(0).integers(0, vocab, (64, 256)).astype(np.int32)
    tokens[:, 200:] = PAD
    fn = jax.jit(functools.partial(masking.mask_tokens, vocab_size=vocab, mask_id=mask_id))
    inputs, targets, weights = map(np.asarray, fn(jnp.asarray(tokens), jax.random.key(7)))
    np.testing.assert_array_equal(targets, tokens)
    selected = weights > 0
    regular = tokens >= masking.REGULAR
    assert not selected[~regular].any()  # PAD, BOS, EOS, UNK never chosen
    assert (tokens < masking.REGULAR).sum() > 1000 and (tokens[:, 200:] == PAD).all()
    np.testing.assert_array_equal(inputs[~selected], tokens[~selected])

    def within_3_sigma(hits, n, p):
        assert abs(hits / n - p) < 3 * math.sqrt(p * (1 - p) / n), (hits, n, p)

    n = selected.sum()
    within_3_sigma(n, regular.sum(), 0.15)
    masked = inputs[selected] == mask_id
    changed = ~masked & (inputs[selected] != tokens[selected])
    same = 1 / (vocab - masking.REGULAR)  # a random draw that hits the original token
    within_3_sigma(masked.sum(), n, 0.8)
    within_3_sigma(changed.sum(), n, 0.1 * (1 - same))
    within_3_sigma(n - masked.sum() - changed.sum(), n, 0.1 + 0.1 * same)
    drawn = inputs[selected][~masked]
    assert drawn.min() >= masking.REGULAR and drawn.max() < vocab  # never special, never MASK

    again = fn(jnp.asarray(tokens), jax.random.key(7))
    other = fn(jnp.asarray(tokens), jax.random.key(8))
    np.testing.assert_array_equal(again[0], inputs)
    assert not np.array_equal(other[0], inputs)


def test_masking_refuses_bad_arguments():
    tokens = jnp.full((2, 3), 5, jnp.int32)
    with pytest.raises(ValueError, match="leaves none"):
        masking.mask_tokens(tokens, jax.random.key(0), vocab_size=4, mask_id=4)
    with pytest.raises(ValueError, match="replace \\+ random"):
        masking.mask_tokens(tokens, jax.random.key(0), vocab_size=9, mask_id=9, replace=0.95)


# --- evaluation sums ------------------------------------------------------------------------


def build(task_cls, data_info):
    c = config()
    return task_cls(c), task_cls(c).build_model(c, data_info, nnx.Rngs(0))


def test_language_model_sums_against_numpy():
    task, model = build(tasks.LanguageModel, info())
    b = batch(ROWS, MASK)
    sums = jax.device_get(task.eval_sums(model, b))
    tokens = np.asarray(b["tokens"])
    logp = log_softmax(model(b["tokens"][:, :-1]))
    nll, correct, count = 0.0, 0, 0
    for r, row in enumerate(ROWS[:2]):  # position t predicts token t + 1 of a real row
        for t in range(len(row) - 1):
            nll -= logp[r, t, tokens[r, t + 1]]
            correct += int(np.argmax(logp[r, t]) == tokens[r, t + 1])
            count += 1
    assert count == 5 + 3 and sums["count"] == 2
    assert sums["count/loss"] == sums["count/accuracy"] == sums["count/bpc"] == count
    assert sums["loss"] == pytest.approx(nll, rel=1e-5)
    assert sums["bpc"] == pytest.approx(nll / math.log(2), rel=1e-5)
    assert sums["accuracy"] == correct


def test_masked_language_model_sums_against_numpy_and_any_batching():
    task, model = build(tasks.MaskedLanguageModel, info())
    assert model.embed.tokens.num_embeddings == VOCAB + 1  # MASK = VOCAB, an extra row
    b = batch(ROWS, MASK)
    sums = jax.device_get(task.eval_sums(model, b))
    tokens = np.asarray(b["tokens"])
    nll, correct, count = 0.0, 0, 0
    for r in range(2):  # each record masked with fold_in(key(0), its index)
        key = jax.random.fold_in(jax.random.key(0), int(b["index"][r]))
        inputs, _, weights = masking.mask_tokens(b["tokens"][r], key, vocab_size=VOCAB,
                                                 mask_id=VOCAB)
        logp = log_softmax(model(inputs[None]))[0]
        for t in np.flatnonzero(np.asarray(weights)):
            nll -= logp[t, tokens[r, t]]
            correct += int(np.argmax(logp[t]) == tokens[r, t])
            count += 1
    assert count > 0 and sums["count"] == 2
    assert sums["count/loss"] == sums["count/accuracy"] == count
    assert sums["loss"] == pytest.approx(nll, rel=1e-5)
    assert sums["accuracy"] == correct
    # one record per batch gives the same sums: its masking depends on its index alone
    parts = [jax.device_get(task.eval_sums(model, {k: v[r:r + 1] for k, v in b.items()}))
             for r in range(2)]
    for k in ("loss", "accuracy", "count/loss"):
        assert parts[0][k] + parts[1][k] == pytest.approx(sums[k], rel=1e-5)


def test_sentence_classification_sums_and_loss_over_real_rows():
    task, model = build(tasks.SentenceClassification, info(num_classes=3))
    assert model.embed.tokens.num_embeddings == VOCAB + 1  # pre-trained MLM maps by path
    labels = jnp.array([2, 0, 1], jnp.int32)
    b = batch(ROWS, MASK, label=labels)
    sums = jax.device_get(task.eval_sums(model, b))
    logp = log_softmax(model.classify(b["tokens"]))
    nll = -(logp[0, 2] + logp[1, 0])
    assert sums["count"] == 2
    assert sums["loss"] == pytest.approx(nll, rel=1e-5)
    assert sums["accuracy"] == int(np.argmax(logp[0]) == 2) + int(np.argmax(logp[1]) == 0)
    loss, metrics = task.train_loss(model, b, jax.random.key(0), 0)
    assert float(loss) == pytest.approx(nll / 2, rel=1e-5) and metrics["loss"] == loss


@pytest.mark.parametrize("task_cls", [tasks.LanguageModel, tasks.MaskedLanguageModel])
def test_padding_rows_contribute_nothing(task_cls):
    task, model = build(task_cls, info())
    b = batch(ROWS, MASK)
    real = {k: v[:2] for k, v in b.items()}
    empty = {**b, "tokens": b["tokens"].at[2].set(PAD)}
    sums = [jax.device_get(task.eval_sums(model, x)) for x in (b, real, empty)]
    for k in sums[0]:
        assert sums[1][k] == pytest.approx(sums[0][k], rel=1e-6)
        assert sums[2][k] == pytest.approx(sums[0][k], rel=1e-6)


def test_tasks_refuse_data_they_cannot_take():
    pairs = info(keys=("inputs", "targets"))
    for task_cls in (tasks.LanguageModel, tasks.MaskedLanguageModel,
                     tasks.SentenceClassification):
        with pytest.raises(ConfigError, match="needs a token dataset with a 'tokens' feature"):
            task_cls(config()).check_data(pairs)
    with pytest.raises(ConfigError, match="needs class labels"):
        tasks.SentenceClassification(config()).check_data(info())
    with pytest.raises(ConfigError, match="only special ids"):
        tasks.MaskedLanguageModel(config()).check_data(info(vocab_size=4))


# --- training -------------------------------------------------------------------------------


def run(tmp_path, task):
    c = config(**{
        "task": f"lib.text.tasks:{task}", "data.name": "tests.toy_data:token_stream",
        "data.batch_size": 8, "data.eval_batch_size": 8, "total_steps": 10,
        "optim.name": "adam", "optim.lr": 1e-2, "optim.weight_decay": 0.0,
        "optim.schedule": "constant", "log_every": 1, "checkpoint_every": 0,
        "progress": False, "async_checkpointing": False})
    results = train.run(c, tmp_path / task)
    losses = train_losses(tmp_path / task)
    assert len(losses) == 10 and np.all(np.isfinite(losses))
    return results, losses


def test_language_model_trains_on_a_token_stream(tmp_path):
    results, losses = run(tmp_path, "LanguageModel")
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3
    assert 0 < results["eval/accuracy"] <= 1
    assert results["eval/bpc"] == pytest.approx(results["eval/loss"] / math.log(2))


def test_masked_language_model_runs_under_the_trainer(tmp_path):
    """About 11 masked tokens per batch: too few for a falling loss in 10 steps, but the
    jitted, sharded step and evaluation run and stay finite."""
    results, _ = run(tmp_path, "MaskedLanguageModel")
    assert np.isfinite(results["eval/loss"]) and 0 <= results["eval/accuracy"] <= 1
