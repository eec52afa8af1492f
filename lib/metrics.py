"""Metric output: JSONL (+ TensorBoard when tensorboardX is installed), progress and ETA.

Per-step metrics are summed on device and fetched at the log interval (no host sync per step).
Only process 0 writes.
"""

from __future__ import annotations

import json
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from lib import files


def quiet_library_logs() -> None:
    """Keeps the console for progress lines: jax start-up and orbax saves log at INFO."""
    from absl import logging as absl_logging

    logging.getLogger("jax").setLevel(logging.WARNING)
    absl_logging.set_verbosity(absl_logging.WARNING)


def read(workdir) -> list[dict]:
    """The rows of a run's metrics.jsonl, in the order they were logged."""
    path = epath.Path(workdir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


CLOCK_KEY = "clock/train_seconds"  # training wall time so far, logged with every eval


def eval_curve(workdir, metric: str = "eval/accuracy") -> dict[str, list[float]]:
    """A run's convergence curve: {'steps', 'seconds', 'values'} of every logged evaluation of
    `metric`, with the training clock at each (compilation, evaluation and checkpointing
    excluded: lib.train's TrainClock), for areas under the curve and times to a target."""
    rows = [r for r in read(workdir) if metric in r and CLOCK_KEY in r]
    if not rows:
        raise ValueError(f"{workdir}: no evaluation of {metric!r} with a training clock in "
                         "metrics.jsonl")
    return {"steps": [r["step"] for r in rows], "seconds": [r[CLOCK_KEY] for r in rows],
            "values": [r[metric] for r in rows]}


def _is_writer() -> bool:
    return jax.process_index() == 0


class MetricWriter:
    """metrics.jsonl: one `{"step": s, "split/name": value, ...}` line per write.

    The whole file is rewritten (atomically) on each write; it stays small, and this works on
    object stores such as gs:// that cannot append. Opening reads the file and writes nothing
    (an unreadable file is a WorkdirError). TensorBoard events of steps logged again after a
    resume appear twice; metrics.jsonl is truncated instead.
    """

    def __init__(self, workdir):
        self.workdir = epath.Path(workdir)
        self.path = self.workdir / "metrics.jsonl"
        self._lines: list[str] = []
        self._tb = None
        if _is_writer() and self.path.exists():
            self._lines = [line for line in self.path.read_text().splitlines() if line]
            try:
                for line in self._lines:
                    int(json.loads(line)["step"])
            except (ValueError, KeyError, TypeError) as e:
                raise files.WorkdirError(
                    f"{self.path} is not a metrics file of this project ({e}); move it away "
                    "(the run then logs from its checkpoint on) or use a new --workdir") from e

    def count(self) -> int:
        return len(self._lines)

    def keep_first(self, count: int) -> None:
        """Keeps the first `count` lines: those logged when the checkpoint resumed from was
        saved. A resumed run logs the rest again."""
        if _is_writer():
            self._lines = self._lines[:count]
            self._save()

    def truncate_after(self, step: int) -> None:
        """Drops lines logged after `step` (resuming a checkpoint that holds no line count)."""
        if _is_writer():
            self._lines = [line for line in self._lines if json.loads(line)["step"] <= step]
            self._save()

    def _save(self) -> None:
        files.write_text_atomic(self.path, "".join(line + "\n" for line in self._lines))

    def write(self, step: int, values: dict[str, float]) -> None:
        if not _is_writer():
            return
        values = {k: float(v) for k, v in values.items()}
        self._lines.append(json.dumps({"step": step, **values}))
        self._save()
        if self._tb is None:
            self._tb = _tensorboard(self.workdir)
        if self._tb:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb:
            self._tb.close()


def _tensorboard(workdir):
    """A tensorboardX writer in workdir/tensorboard, or False where tensorboardX is missing."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return False
    return SummaryWriter(str(workdir / "tensorboard"))


LAST_VALUE = ("lr",)  # logged as the value at the last step, not the window mean


@jax.jit
def _accumulate(acc: dict, step_metrics: dict, step) -> dict:
    finite = step_metrics["finite"]
    first_bad = jnp.where((acc["first_bad"] < 0) & (finite == 0), step, acc["first_bad"])
    sums = {k: acc["sums"][k] + v for k, v in step_metrics.items()
            if k != "finite" and k not in LAST_VALUE}
    last = {k: step_metrics[k] for k in LAST_VALUE if k in step_metrics}
    return {"sums": sums, "last": last, "count": acc["count"] + 1, "first_bad": first_bad}


class StepMetrics:
    """Per-step metrics summed on device (one small dispatch per step, no host sync).

    Each step reports `finite` (1 when its loss and updated parameters are finite); `fetch`
    returns window means and the first step that was not finite, if any. A window still open
    at a checkpoint is saved with it (`saved`/`restore`), so a resumed run logs the same means
    at the same steps as an uninterrupted one.
    """

    def __init__(self):
        self._acc = None

    def add(self, step_metrics: dict, step: int) -> None:
        if self._acc is None:
            zeros = {k: jnp.zeros_like(v) for k, v in step_metrics.items()
                     if k != "finite" and k not in LAST_VALUE}
            self._acc = {"sums": zeros, "last": {}, "count": jnp.zeros((), jnp.int32),
                         "first_bad": jnp.full((), -1, jnp.int32)}
        self._acc = _accumulate(self._acc, step_metrics, step)

    def first_bad(self) -> int | None:
        """The first non-finite step of the open window, if any; the window stays open."""
        if self._acc is None:
            return None
        first_bad = int(jax.device_get(self._acc["first_bad"]))
        return first_bad if first_bad >= 0 else None

    def fetch(self) -> tuple[dict[str, float], int | None]:
        """(means over the window, first non-finite step or None), and starts a new window."""
        if self._acc is None:
            return {}, None
        acc, self._acc = jax.device_get(self._acc), None
        means = {k: float(v) / int(acc["count"]) for k, v in acc["sums"].items()}
        means.update({k: float(v) for k, v in acc["last"].items()})
        first_bad = int(acc["first_bad"])
        return means, (first_bad if first_bad >= 0 else None)

    def saved(self) -> dict:
        """The open window as JSON values ({} when none is open); floats round-trip exactly."""
        if self._acc is None:
            return {}
        acc = jax.device_get(self._acc)

        def values(tree):
            return {k: [np.asarray(v).item(), np.asarray(v).dtype.name] for k, v in tree.items()}

        return {"sums": values(acc["sums"]), "last": values(acc["last"]),
                "count": int(acc["count"]), "first_bad": int(acc["first_bad"])}

    def restore(self, saved: dict) -> None:
        """Reopens a window that `saved` returned."""
        if not saved:
            self._acc = None
            return

        def arrays(tree):
            return {k: jnp.asarray(np.asarray(v, dtype)) for k, (v, dtype) in tree.items()}

        self._acc = {"sums": arrays(saved["sums"]), "last": arrays(saved["last"]),
                     "count": jnp.asarray(saved["count"], jnp.int32),
                     "first_bad": jnp.asarray(saved["first_bad"], jnp.int32)}


class TrainClock:
    """Wall time of training alone: `run` and `pause` bracket what counts. The train loop pauses
    it for compilation, evaluation, hooks and checkpoint saves, after waiting for the steps in
    flight, so their device time counts as training. Checkpointed, so resumed runs continue it."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = float(seconds)
        self._since: float | None = None

    def run(self) -> None:
        self._since = time.perf_counter()

    def pause(self, pending=None) -> None:
        """Stops counting once `pending` (arrays still being computed) is ready."""
        if self._since is None:
            return
        jax.block_until_ready(pending)
        self.seconds += time.perf_counter() - self._since
        self._since = None


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
