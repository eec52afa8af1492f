"""Command line: train and evaluate one config in one workdir; re-running resumes.

    python -m lib.main --config=experiments/batchnorm_only/configs/cifar_resnet.py:quick \
        --workdir=/tmp/run [--config.optim.lr=0.05 ...]

Multi-process runs (one process per host or per GPU) start on their own under SLURM and on Cloud
TPU; elsewhere pass --coordinator_address, --num_processes and --process_id (or the variables
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) to every process. See lib.distributed.

Exit codes: 0 finished; 2 bad input (config, dataset, workdir, mesh, process group) with a
message saying what to do; 3 non-finite loss (the last good checkpoint is kept); 75 preempted
(SIGTERM: every process checkpointed the same step; re-running the same command resumes it).
A process whose peer died aborts (SIGABRT; status 134 in a shell) within --heartbeat_timeout s; the
re-run resumes from the last complete checkpoint.
"""

from __future__ import annotations

import os
import re
import sys

from absl import app, flags
from ml_collections import config_flags

from configs import base
from lib import config as config_lib
from lib import distributed, files

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, optionally with ':arg' (e.g. file.py:quick).",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (local path or gs://).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 (multi-process runs outside SLURM/TPU).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based.")
_HEARTBEAT = flags.DEFINE_integer(
    "heartbeat_timeout", distributed.HEARTBEAT_TIMEOUT_S, "Seconds without a heartbeat after "
    "which a process counts as dead and the others abort.", lower_bound=1)
flags.mark_flags_as_required(["config", "workdir"])

EXIT_BAD_INPUT = 2
EXIT_NONFINITE = 3
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: try again


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Prints the error and exits. A failing process of a multi-process run skips jax's
    shutdown barrier, where it would wait for peers that may never get there; they notice its
    end by its missing heartbeats and abort."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    if distributed.is_multiprocess():
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)


def _override_keys(argv: list[str]) -> list[str]:
    """Keys of `--config.k=v` and `--config.k v` overrides."""
    return [m.group(1) for a in argv if (m := re.match(r"--config\.([\w.]+)(=|$)", a))]


def _unknown_override(key: str, reference) -> str | None:
    """Explains an override key that the config does not declare, else None."""
    node, done = reference, []
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node:
            options = list(node.keys()) if hasattr(node, "keys") else []
            close = config_lib.closest_keys(part, options)
            where = ".".join(done) or "the top level"
            hint = ""
            if close:
                hint = f" Did you mean: {', '.join('.'.join(done + [c]) for c in close)}?"
            return (f"unknown config key {key!r}: {part!r} is not a key of {where}.{hint} "
                    f"Valid keys there: {', '.join(sorted(options))}")
        node, done = node[part], done + [part]
    return None


def _config_spec(argv: list[str]) -> str | None:
    """The value of --config in argv (`--config=X` or `--config X`)."""
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            return a.split("=", 1)[1]
        if a == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _parse_flags(argv: list[str]) -> list[str]:
    """Parses the flags, and loads and validates the config: every problem with them exits 2
    with one message, before anything runs."""
    try:
        reference = base.get_config()
        if (spec := _config_spec(argv)) is not None:
            # Loaded once here for its errors, which config_flags would report with a traceback,
            # and for the keys it declares (its papers' sections).
            loaded = config_lib.load_file(*config_lib.split_config_spec(spec), check=False)
            reference = config_lib.reference_config(loaded)[0]
        for key in _override_keys(argv):
            if (message := _unknown_override(key, reference)) is not None:
                _fail(message)
        rest = flags.FLAGS(argv)
        config_lib.validate(_CONFIG.value)  # with the overrides applied
        return rest
    except (flags.Error, config_lib.ConfigError) as e:  # bad flag or config value, or ':arg'
        lines = [line for line in str(e).splitlines() if line.strip()]
        if any(line.startswith("Traceback") for line in lines):  # the config file raised
            lines = [lines[0].rstrip(":") + ":", lines[-1]]
        _fail("\n".join(lines))


def main(argv: list[str]) -> None:
    del argv
    from lib import checkpoint, compile_cache, data, metrics, precision, registry, train

    metrics.quiet_library_logs()
    precision.guard_cpu_bfloat16(_CONFIG.value.model.dtype)  # before JAX's backend starts
    try:
        distributed.initialize(
            distributed.resolve(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value),
            heartbeat_timeout=_HEARTBEAT.value)
    except distributed.TopologyError as e:
        _fail(f"process group: {e}")

    config = _CONFIG.value
    try:
        files.check_workdir(_WORKDIR.value)
        compile_cache.enable(config.compile_cache, _WORKDIR.value)  # a procedure's stages too
        run = registry.resolve(config.procedure, "procedure") if config.procedure else train.run
        results = run(config, _WORKDIR.value)
    except distributed.Preempted as e:  # every process is here: jax's shutdown barrier is fine
        print(e, file=sys.stderr, flush=True)
        sys.exit(EXIT_PREEMPTED)
    except train.NonFiniteLossError as e:
        _fail(str(e), EXIT_NONFINITE)
    except (config_lib.ConfigError, files.WorkdirError, data.DatasetError,
            train.WorkdirConfigMismatchError, checkpoint.CheckpointError) as e:
        _fail(str(e))
    print(f"finished: {_summary(results)}; results in {_WORKDIR.value}/results.json", flush=True)


def _summary(results: dict) -> str:
    """The eval metrics; for a procedure, also those of each stage (its dict entries)."""
    own = ", ".join(f"{k} {v:.4f}" for k, v in results.items() if k.startswith("eval/"))
    stages = [f"{stage}: {_summary(r)}" for stage, r in results.items() if isinstance(r, dict)]
    return "; ".join(part for part in (own, *stages) if part)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
