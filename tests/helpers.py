"""Shared by the end-to-end tests: the digits config, CLI runs, reading a run's outputs."""

import json
import os
import pathlib
import subprocess
import sys

import jax

from lib import config as config_lib
from lib import train

REPO = pathlib.Path(__file__).resolve().parent.parent
DIGITS = REPO / "experiments/batchnorm_only/configs/digits.py"


def digits_config(trainable="all", steps=12, **overrides):
    c = config_lib.load_file(DIGITS, f"trainable={trainable},steps={steps}")
    return config_lib.updated(c, {"log_every": 1, "checkpoint_every": 4, "progress": False,
                                  "async_checkpointing": False, **overrides})


def read_metrics(workdir):
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def train_losses(workdir):
    return [m["train/loss"] for m in read_metrics(workdir) if "train/loss" in m]


def final_params(workdir):
    _, _, state = train.load_final(workdir)
    return jax.device_get(state["params"]), jax.device_get(state["batch_stats"])


def cli(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "lib.main", *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu", **env}, timeout=300,
    )


class Crash(RuntimeError):
    """A simulated kill."""


def crash_on_batch(monkeypatch, n: int) -> None:
    """Makes the n-th global batch the trainer builds (train and eval batches alike) raise
    Crash, as a kill at that point would; monkeypatch.undo() or a new patch restores it."""
    real, calls = train.sharding.global_batch, {"n": 0}

    def crashing(batch, sh):
        calls["n"] += 1
        if calls["n"] == n:
            raise Crash("simulated kill")
        return real(batch, sh)

    monkeypatch.setattr(train.sharding, "global_batch", crashing)
