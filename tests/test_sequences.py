"""Token batches (lib.data.sequences through lib.data): fixed shapes, every record once per
epoch, token budgets per bucket, process shares, exact resume, and refusals."""

import numpy as np
import pytest

from configs.base import get_config
from lib import data
from lib.config import ConfigError
from lib.data import sequences, sources

N_TRAIN, N_EVAL = 50, 21


def cfg(**overrides):
    c = get_config().data
    c.update({"name": "tests.toy_data:token_pairs", "batch_size": 8, "eval_batch_size": 8,
              "max_length": 24, "eval_split": "test"})
    c.update(overrides)
    return c


def records():
    return sources.open_split(cfg(), "train").records


def epoch(c, seed=0):
    """One epoch of global batches, and the record indices they hold."""
    split = sources.open_split(c, "train")
    plan = sequences._TrainPlan(split.records, c, seed, 8)
    it = data.train_iterator(c, seed=seed)
    batches = [next(it) for _ in range(plan.per_epoch)]
    return batches, np.concatenate([b["index"][b["mask"] > 0] for b in batches])


def test_examples_batches_hold_every_record_once_per_epoch():
    batches, seen = epoch(cfg())
    assert sorted(seen) == list(range(N_TRAIN))
    for b in batches:
        assert b["inputs"].shape == b["targets"].shape == (8, 24)
        assert b["inputs"].dtype == np.int32
    rec = records()
    for b in batches:  # each row is its record, padded with PAD (0)
        for row, i in enumerate(b["index"]):
            if i >= 0:
                n = len(rec[i]["inputs"])
                np.testing.assert_array_equal(b["inputs"][row, :n], rec[i]["inputs"])
                assert not b["inputs"][row, n:].any()
            else:
                assert b["mask"][row] == 0 and not b["inputs"][row].any()


def test_token_batches_respect_budget_buckets_and_device_multiple():
    c = cfg(batching="tokens", batch_tokens=256, bucket_step=8)
    batches, seen = epoch(c)
    assert sorted(seen) == list(range(N_TRAIN))
    lengths = records().lengths()
    shapes = set()
    for b in batches:
        rows, length = b["inputs"].shape
        shapes.add((rows, length))
        assert length in (8, 16, 24) and rows % 8 == 0
        assert rows == {8: 32, 16: 16, 24: 8}[length]  # floor(256 / L) down to a multiple of 8
        real = b["index"][b["mask"] > 0]
        assert np.all(lengths[real] <= length) and np.all(lengths[real] > length - 8)
    assert len(shapes) <= 3


def test_epochs_differ_and_runs_repeat():
    c = cfg(batching="tokens", batch_tokens=96)
    first, _ = epoch(c, seed=0)
    again, _ = epoch(c, seed=0)
    other, _ = epoch(c, seed=1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["index"], b["index"])
    assert any(not np.array_equal(a["index"], b["index"]) for a, b in zip(first, other))


def test_resume_from_iterator_state_gives_the_same_batches():
    c = cfg(batching="tokens", batch_tokens=96)
    it = data.train_iterator(c, seed=0)
    for _ in range(5):
        next(it)
    state = it.get_state()
    expected = [next(it)["index"] for _ in range(4)]
    resumed = data.train_iterator(c, seed=0)
    resumed.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed)["index"], want)


def test_process_shares_make_the_global_batch():
    c = cfg()
    whole = data.train_iterator(c, seed=0)
    parts = [data.train_iterator(c, seed=0, process_index=p, process_count=2) for p in (0, 1)]
    for _ in range(3):
        g = next(whole)
        halves = [next(p) for p in parts]
        np.testing.assert_array_equal(np.concatenate([h["index"] for h in halves]), g["index"])


def test_eval_pass_covers_every_record_once():
    for overrides in ({}, {"batching": "tokens", "batch_tokens": 96}):
        batches = list(data.eval_batches(cfg(**overrides)))
        seen = np.concatenate([b["index"][b["mask"] > 0] for b in batches])
        assert sorted(seen) == list(range(N_EVAL))
    info = data.get_info(cfg())
    assert (info.vocab_size, info.num_train, info.num_eval) == (10, N_TRAIN, N_EVAL)
    assert set(info.keys) == {"inputs", "targets"}


def test_long_records_dropped_from_training_refused_in_evaluation():
    c = cfg(max_length=10)
    lengths = records().lengths()
    _, seen = epoch(c)
    assert sorted(seen) == sorted(np.flatnonzero(lengths <= 10))
    with pytest.raises(ConfigError, match="longer than data.max_length=10.*raise"):
        list(data.eval_batches(c))


@pytest.mark.parametrize("overrides, message", [
    ({"max_length": 0}, "set data.max_length"),
    ({"batching": "words"}, "data.batching='words'"),
    ({"batching": "tokens", "batch_tokens": 10}, "cannot hold one record"),
])
def test_bad_token_configs(overrides, message):
    with pytest.raises(ConfigError, match=message):
        data.get_info(cfg(**overrides))
