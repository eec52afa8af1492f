"""Metric output: JSONL (+ TensorBoard when tensorboardX is installed), progress and ETA.

Per-step metrics stay on device until the log interval (no host sync per step); the trainer
hands this module the fetched values. Only process 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import time

import jax
import numpy as np


def quiet_library_logs() -> None:
    """Keeps the console for progress lines: jax start-up and orbax saves log at INFO."""
    from absl import logging as absl_logging

    logging.getLogger("jax").setLevel(logging.WARNING)
    absl_logging.set_verbosity(absl_logging.WARNING)


def _is_writer() -> bool:
    return jax.process_index() == 0


class MetricWriter:
    """Appends `{"step": s, "split/name": value, ...}` lines to metrics.jsonl."""

    def __init__(self, workdir: pathlib.Path):
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._tb = None
        if _is_writer():
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                pass
            else:
                self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drops lines logged after `step`: a resumed run logs those steps again."""
        if not _is_writer() or not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if line and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, values: dict[str, float]) -> None:
        if not _is_writer():
            return
        values = {k: float(v) for k, v in values.items()}
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def mean_of_steps(per_step: list[dict]) -> dict[str, float]:
    """Averages a list of per-step scalar metric dicts fetched from device."""
    fetched = jax.device_get(per_step)
    return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


def first_nonfinite(per_step: list[dict], first_step: int, key: str = "loss") -> int | None:
    """The step number of the first non-finite `key` in a fetched list, or None."""
    for i, m in enumerate(jax.device_get(per_step)):
        if not math.isfinite(float(m[key])):
            return first_step + i
    return None


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Steps/s and ETA over the steps since the last report (first report includes compile)."""

    def __init__(self, start_step: int, total_steps: int):
        self.total = total_steps
        self._last_step, self._last_time = start_step, time.perf_counter()

    def line(self, step: int, values: dict[str, float]) -> str:
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_step, self._last_time = step, now
        shown = " | ".join(f"{k} {v:.4g}" for k, v in values.items())
        eta = _duration((self.total - step) / rate) if rate > 0 else "?"
        return f"step {step}/{self.total} | {shown} | {rate:.2f} steps/s | ETA {eta}"
