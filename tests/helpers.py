"""Shared by the end-to-end tests: the digits config, CLI runs, reading a run's outputs."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
from etils import epath

from lib import checkpoint, train
from lib import config as config_lib
from lib import task as task_lib

REPO = pathlib.Path(__file__).resolve().parent.parent
DIGITS = REPO / "experiments/batchnorm_only/configs/digits.py"


def digits_config(trainable="all", steps=12, **overrides):
    c = config_lib.load_file(DIGITS, f"trainable={trainable},steps={steps}")
    return config_lib.updated(c, {"log_every": 1, "checkpoint_every": 4, "progress": False,
                                  "async_checkpointing": False, **overrides})


def read_metrics(workdir):
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def timeless(row: dict) -> dict:
    """A metrics or results row without its wall-clock values, which differ between any two
    runs."""
    return {k: v for k, v in row.items() if k != train.CLOCK_KEY and not k.startswith("wall_")}


def same_lines(workdir) -> list[dict]:
    """metrics.jsonl rows as a resumed run must reproduce them (wall-clock values aside)."""
    return [timeless(m) for m in read_metrics(workdir)]


def train_losses(workdir):
    return [m["train/loss"] for m in read_metrics(workdir) if "train/loss" in m]


def final_params(workdir):
    _, _, state = train.load_final(workdir)
    return jax.device_get(state["params"]), jax.device_get(state["batch_stats"])


def cli(*args, **env):
    """`python -m lib.main ARGS`, compiling with XLA's optimisations off as in-process tests do
    (conftest.py): start-up takes half the time."""
    return subprocess.run(
        [sys.executable, "-m", "lib.main", *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1", **env},
        timeout=300,
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


def fake_tiny_imagenet(root: pathlib.Path, corrupted: dict | None = None) -> list:
    """The released Tiny ImageNet layout with 200 classes, one train and one validation image
    each (64×64 JPEGs, class c's pixels near 50 + c; class 7's are grayscale), the validation
    annotations in shuffled order, and with `corrupted` ({'<name>_<severity>': fn(pixels)})
    a Tiny ImageNet-C folder root/'c' of the validation images. Returns the sorted wnids."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    wnids = [f"n{i:08d}" for i in rng.permutation(200) + 100]
    (root / "train").mkdir(parents=True)
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    pixels = {}
    for c, wnid in enumerate(sorted(wnids)):
        image = np.clip(50 + c + rng.integers(-3, 4, (64, 64, 3)), 0, 255).astype(np.uint8)
        pixels[wnid] = image[..., 0] if c == 7 else image
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        Image.fromarray(pixels[wnid]).save(folder / f"{wnid}_0.JPEG", quality=95)
        Image.fromarray(pixels[wnid]).save(root / "val" / "images" / f"val_{c}.JPEG", quality=95)
    rows = [f"val_{c}.JPEG\t{wnid}\t0\t0\t63\t63" for c, wnid in enumerate(sorted(wnids))]
    (root / "val" / "val_annotations.txt").write_text(
        "\n".join(rows[i] for i in rng.permutation(200)) + "\n")
    for variant, corrupt in (corrupted or {}).items():
        name, severity = variant.rsplit("_", 1)
        for c, wnid in enumerate(sorted(wnids)):
            folder = root / "c" / name / severity / wnid
            folder.mkdir(parents=True)
            Image.fromarray(corrupt(pixels[wnid])).save(folder / f"val_{c}.JPEG", quality=95)
    return sorted(wnids)


class HookAtStart(task_lib.Classification):
    """Classification with a hook before the first step that logs one value (as pruning at
    initialisation does): `task="helpers:HookAtStart"`."""

    def hook_due(self, step):
        return step == 0

    def hook(self, trainer, state, step):
        return state, {"hook/at_start": 1.0}


def saved(workdir, step):
    """The state a run checkpointed at `step`, as saved (host arrays)."""
    ckpt = checkpoint.Checkpointer(epath.Path(workdir) / "checkpoints", keep=1, read_only=True)
    try:
        return ckpt.restore_as_saved(step)[0]
    finally:
        ckpt.close()


def copy_value(state, copy: str, name: str):
    """The value an EMA copy (model_state[copy]) holds for parameter `name`: the same path
    below the copy as below the parameter's own top-level module."""
    node = state["model_state"][copy]
    for part in name.split("/")[1:]:
        node = node[part] if part in node else node[int(part)]
    return np.asarray(node, np.float64)
