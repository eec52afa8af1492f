"""Checkpoints: a damaged latest checkpoint is set aside and the run resumes from the previous
one, ending bit-identical to an uninterrupted run; a resumed run's metrics.jsonl equals the
uninterrupted run's after any sequence of interruptions; other runs' checkpoints restore on any
device count."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from etils import epath
from helpers import (
    DIGITS,
    Crash,
    cli,
    crash_on_batch,
    digits_config,
    final_params,
    read_metrics,
    same_lines,
    timeless,
)

from lib import checkpoint, train

# log_every 3 and checkpoint_every 4: checkpoints fall inside metric windows.
SETTINGS = {"log_every": 3, "checkpoint_every": 4, "keep_checkpoints": 3}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference") / "run"
    train.run(digits_config(**SETTINGS), workdir)
    return workdir


def test_checksums_find_every_change(tmp_path):
    step = epath.Path(tmp_path)
    (step / "state" / "d").mkdir(parents=True)
    (step / "state" / "d" / "chunk").write_bytes(bytes(range(256)) * 4)
    (step / "data").mkdir()
    (step / "data" / "metadata").write_text('{"position": 3}')
    (step / "_CHECKPOINT_METADATA").write_text('{"init_timestamp_nsecs": 1}')
    checkpoint.write_checksums(step)
    assert checkpoint.verify(step) == (True, "")
    (step / "commit_success.txt").write_text("written after the checksums")  # not covered
    (step / "_CHECKPOINT_METADATA").write_text('{"commit_timestamp_nsecs": 2}')  # rewritten
    assert checkpoint.verify(step)[0] is True
    (step / "_CHECKPOINT_METADATA").write_text("garbage")
    assert checkpoint.verify(step) == (False, "its _CHECKPOINT_METADATA is missing or "
                                              "unreadable")
    (step / "_CHECKPOINT_METADATA").write_text("{}")

    chunk = step / "state" / "d" / "chunk"
    original = chunk.read_bytes()
    flipped = bytearray(original)
    flipped[700] ^= 0x10
    chunk.write_bytes(bytes(flipped))
    assert checkpoint.verify(step) == (False, "1 of its files changed since it was saved "
                                              "(state/d/chunk)")
    chunk.write_bytes(original[:100])
    assert checkpoint.verify(step)[0] is False
    chunk.write_bytes(original)
    shutil.rmtree(step / "data")
    assert checkpoint.verify(step) == (False, "1 of its files are missing (data/metadata)")
    (step / checkpoint.CHECKSUMS).write_text("{garbage")
    assert checkpoint.verify(step) == (False, "its checksums.json is unreadable")
    (step / checkpoint.CHECKSUMS).unlink()
    assert checkpoint.verify(step)[0] is None


def _largest_chunk(step_dir):
    return max((p for p in step_dir.joinpath("state").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)


def _truncate(step_dir):
    chunk = _largest_chunk(step_dir)
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])


def _flip_bit(step_dir):
    chunk = _largest_chunk(step_dir)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))


def _overwrite(step_dir):
    chunk = _largest_chunk(step_dir)
    chunk.write_bytes(os.urandom(chunk.stat().st_size))


DAMAGE = {
    "truncated chunk": _truncate,
    "flipped bit": _flip_bit,
    "overwritten chunk": _overwrite,
    "missing state item": lambda d: shutil.rmtree(d / "state"),
    "missing data item": lambda d: shutil.rmtree(d / "data"),
    "garbage _METADATA": lambda d: (d / "state" / "_METADATA").write_text("garbage"),
    "garbage _CHECKPOINT_METADATA": lambda d: (d / "_CHECKPOINT_METADATA").write_text("{"),
}


def _interrupted_after_step_10(workdir, monkeypatch):
    """Checkpoints at steps 4 and 8, the run killed during step 11."""
    crash_on_batch(monkeypatch, 11)
    with pytest.raises(Crash):
        train.run(digits_config(**SETTINGS), workdir)
    monkeypatch.undo()
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4", "8"]


def assert_same_run(workdir, reference):
    (pa, sa), (pb, sb) = final_params(workdir), final_params(reference)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    jax.tree.map(np.testing.assert_array_equal, sa, sb)
    assert same_lines(workdir) == same_lines(reference)
    ra, rb = (json.loads((w / "results.json").read_text()) for w in (workdir, reference))
    assert timeless(ra) == timeless(rb)


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, monkeypatch, reference,
                                                               damage, caplog):
    workdir = tmp_path / "run"
    _interrupted_after_step_10(workdir, monkeypatch)
    DAMAGE[damage](workdir / "checkpoints" / "8")
    train.run(digits_config(**SETTINGS), workdir)
    assert_same_run(workdir, reference)
    aside = workdir / checkpoint.SET_ASIDE / "8"
    assert aside.is_dir()  # kept, not deleted
    assert any("moved to" in r.getMessage() and str(aside) in r.getMessage()
               for r in caplog.records)


def test_no_good_checkpoint_stops_and_moves_nothing(tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    _interrupted_after_step_10(workdir, monkeypatch)
    for step in ("4", "8"):
        _flip_bit(workdir / "checkpoints" / step)
    with pytest.raises(checkpoint.NoGoodCheckpointError, match=r"(?s)checkpoints/8: 1 of its "
                       r"files changed.*checkpoints/4: 1 of its files changed.*Nothing was moved"):
        train.run(digits_config(**SETTINGS), workdir)
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4", "8"]
    assert not (workdir / checkpoint.SET_ASIDE).exists()


def test_checkpoint_without_checksums_still_restores(tmp_path, monkeypatch, reference):
    """Checkpoints written before checksums existed are restored as they are."""
    workdir = tmp_path / "run"
    _interrupted_after_step_10(workdir, monkeypatch)
    (workdir / "checkpoints" / "8" / checkpoint.CHECKSUMS).unlink()
    train.run(digits_config(**SETTINGS), workdir)
    assert_same_run(workdir, reference)
    assert not (workdir / checkpoint.SET_ASIDE).exists()


def test_init_workdir_of_another_device_count(tmp_path, reference):
    """A run made on 8 devices is the starting point of a run on 1 device."""
    out = cli(f"--config={DIGITS}:steps=12,trainable=all", f"--workdir={tmp_path / 'one'}",
              f"--config.init.workdir={reference}", "--config.init.step=8",
              "--config.progress=False", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "one" / "run.json").read_text())["device_count"] == 1


def test_deferred_eval_is_logged_once_after_a_second_interruption(tmp_path, monkeypatch):
    """A SIGTERM at step 8 defers that step's eval to the resumed run, which logs it and is
    killed before its next checkpoint; the run after that logs it again, once."""
    settings = {**SETTINGS, "eval_every": 4, "checkpoint_every": 5}
    reference = tmp_path / "reference"
    train.run(digits_config(**settings), reference)
    workdir = tmp_path / "run"
    monkeypatch.setattr(train.distributed.PreemptionWatch, "reached",
                        lambda self, steps_this_start: steps_this_start == 8)
    with pytest.raises(train.distributed.Preempted):
        train.run(digits_config(**settings), workdir)
    monkeypatch.undo()
    assert not any("eval/loss" in m and m["step"] == 8 for m in read_metrics(workdir))
    crash_on_batch(monkeypatch, 3)  # the deferred eval's batch, steps 9 and 10's: during 10
    with pytest.raises(Crash):
        train.run(digits_config(**settings), workdir)
    monkeypatch.undo()
    assert [m["step"] for m in read_metrics(workdir) if "eval/loss" in m] == [4, 8]
    train.run(digits_config(**settings), workdir)
    assert_same_run(workdir, reference)


def test_hook_before_the_first_step_is_logged_once_after_a_kill(tmp_path, monkeypatch):
    settings = {**SETTINGS, "task": "helpers:HookAtStart"}
    reference = tmp_path / "reference"
    train.run(digits_config(**settings), reference)
    assert read_metrics(reference)[0] == {"step": 0, "hook/at_start": 1.0}
    workdir = tmp_path / "run"
    crash_on_batch(monkeypatch, 3)  # before the first checkpoint
    with pytest.raises(Crash):
        train.run(digits_config(**settings), workdir)
    monkeypatch.undo()
    train.run(digits_config(**settings), workdir)
    assert_same_run(workdir, reference)
