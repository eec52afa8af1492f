"""Multi-process start-up and preemption (DESIGN.md rules 6 and 7).

One process runs per TPU VM worker, per GPU node, or per GPU; every process runs the same
program on its share of each batch. Where the process group comes from, first match wins:

1. flags `--coordinator_address --num_processes --process_id` (lib.main);
2. environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID;
3. SLURM (inside `srun`, more than one task): coordinator on the first node of the step;
4. Cloud TPU: TPU_WORKER_HOSTNAMES / TPU_WORKER_ID where set, else jax asks the TPU VM's
   metadata server (multi-slice included).

None of these: a single process, and nothing is started.

A process that stops sending heartbeats (killed, hung host) makes every other process abort
after `heartbeat_timeout` seconds with "Terminating process because the JAX distributed service
detected fatal errors", instead of waiting forever in a collective.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import socket
import threading
from collections.abc import Mapping

import jax
from jax.experimental import multihost_utils

log = logging.getLogger("lib.distributed")

HEARTBEAT_TIMEOUT_S = 30
TPU_COORDINATOR_PORT = 8476  # the port jax's own Cloud TPU detection uses


class TopologyError(ValueError):
    """The process-group settings are incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Topology:
    """Arguments of `jax.distributed.initialize`; None leaves a value to jax's detection."""

    source: str
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    local_device_ids: tuple[int, ...] | None = None


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise TopologyError(f"{name}={value!r} is not an integer") from None


def _explicit(coordinator_address, num_processes, process_id, source: str) -> Topology | None:
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
             "process_id": process_id}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise TopologyError(
            f"{source}: {', '.join(missing)} missing; a multi-process run needs all three of "
            "coordinator_address (HOST:PORT of process 0), num_processes and process_id")
    if not 0 <= process_id < num_processes:
        raise TopologyError(f"{source}: process_id={process_id} must lie in "
                            f"[0, num_processes={num_processes})")
    if not re.fullmatch(r"\S+:\d+", coordinator_address):
        raise TopologyError(f"{source}: coordinator_address={coordinator_address!r} must be "
                            "HOST:PORT, e.g. 10.0.0.2:1234")
    return Topology(source, coordinator_address, num_processes, process_id)


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: 'gpu[003-005,9],cpu1' -> 'gpu003'."""
    m = re.match(r"([^,\[]+)(?:\[([^,\-\]]+))?", nodelist)
    if not m:
        raise TopologyError(f"cannot read a host from SLURM_STEP_NODELIST={nodelist!r}")
    return m.group(1) + (m.group(2) or "")


def from_slurm(env: Mapping[str, str]) -> Topology | None:
    """Process group of an `srun` step with more than one task.

    The coordinator port follows jax's own SLURM convention (derived from the job id) unless
    JAX_COORDINATOR_PORT is set. With several tasks per node each task gets one GPU: the one
    SLURM bound to it (CUDA_VISIBLE_DEVICES holds one id), else local device SLURM_LOCALID.
    """
    needed = ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_STEP_NODELIST")
    if not all(k in env for k in needed):
        return None  # not inside an srun step
    ntasks = _int(env["SLURM_NTASKS"], "SLURM_NTASKS")
    if ntasks <= 1:
        return None
    job = _int(env["SLURM_JOB_ID"], "SLURM_JOB_ID")
    port = env.get("JAX_COORDINATOR_PORT") or str(job % 2**12 + 65535 - 2**12 + 1)
    nodes = _int(env.get("SLURM_STEP_NUM_NODES", env.get("SLURM_NNODES", "1")), "SLURM_NNODES")
    local_ids = None
    bound = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    if ntasks > nodes and len(bound) != 1:
        local_ids = (_int(env.get("SLURM_LOCALID", "0"), "SLURM_LOCALID"),)
    return Topology("slurm", f"{first_slurm_host(env['SLURM_STEP_NODELIST'])}:{port}", ntasks,
                    _int(env["SLURM_PROCID"], "SLURM_PROCID"), local_ids)


def on_cloud_tpu_vm() -> bool:
    """TPU chips on the PCI bus, by jax's own check (Google vendor id and a TPU device id; the
    vendor alone also matches the network card and disks of ordinary Google Cloud VMs)."""
    try:
        from jax._src import hardware_utils  # not public; its TPU device ids track new chips
        return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
    except (ImportError, AttributeError, OSError) as e:
        log.warning("cannot check the PCI bus for TPU chips (%s); set the process group with "
                    "flags or JAX_* variables if this is a TPU pod", e)
        return False


def from_cloud_tpu(env: Mapping[str, str]) -> Topology | None:
    hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]
    if hosts and "TPU_WORKER_ID" in env and "MEGASCALE_COORDINATOR_ADDRESS" not in env:
        if len(hosts) == 1:
            return None
        return Topology("cloud_tpu_env", f"{hosts[0]}:{TPU_COORDINATOR_PORT}", len(hosts),
                        _int(env["TPU_WORKER_ID"], "TPU_WORKER_ID"))
    if on_cloud_tpu_vm():
        return Topology("cloud_tpu_metadata")  # jax reads the workers from the metadata server
    return None


def resolve(coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, env: Mapping[str, str] | None = None
            ) -> Topology | None:
    """The process group from flags, environment, SLURM or Cloud TPU; None: single process."""
    env = os.environ if env is None else env
    flags = _explicit(coordinator_address, num_processes, process_id, "flags")
    if flags is not None:
        return flags
    env_values = [env.get(f"JAX_{k}") for k in ("COORDINATOR_ADDRESS", "NUM_PROCESSES",
                                                  "PROCESS_ID")]
    if any(v is not None for v in env_values):
        address, count, pid = env_values
        return _explicit(address, None if count is None else _int(count, "JAX_NUM_PROCESSES"),
                         None if pid is None else _int(pid, "JAX_PROCESS_ID"),
                         "environment (JAX_COORDINATOR_ADDRESS/JAX_NUM_PROCESSES/JAX_PROCESS_ID)")
    return from_slurm(env) or from_cloud_tpu(env)


def initialize(topology: Topology | None, heartbeat_timeout: int = HEARTBEAT_TIMEOUT_S) -> None:
    """Joins the process group (blocks until every process has joined); None: nothing to do."""
    if topology is None:
        return
    log.info("starting jax.distributed from %s", topology)
    jax.distributed.initialize(
        coordinator_address=topology.coordinator_address,
        num_processes=topology.num_processes,
        process_id=topology.process_id,
        local_device_ids=(list(topology.local_device_ids)
                          if topology.local_device_ids is not None else None),
        heartbeat_timeout_seconds=heartbeat_timeout,
    )


def is_multiprocess() -> bool:
    return jax.distributed.is_initialized() and jax.process_count() > 1


def local_coordinator_address() -> str:
    """127.0.0.1:PORT with a port free right now, for multi-process runs on one machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


class Preempted(Exception):
    """SIGTERM arrived; every process saved a checkpoint at `step` and stops."""

    def __init__(self, step: int, checkpoint_dir: str):
        super().__init__(
            f"preempted (SIGTERM) at step {step}: a checkpoint of step {step} was saved in "
            f"{checkpoint_dir}; re-running the same command resumes from it")
        self.step = step


class PreemptionWatch:
    """Tells the train loop at which step to checkpoint and stop after a SIGTERM.

    Multi-process: jax's preemption service catches SIGTERM on any process and agrees with
    the others on one step (the largest step any process has reached, plus one), so all save
    the same step. Single process: a SIGTERM handler sets a flag read after the current step.
    Create it before the slow parts of a start (restore, compilation) so that a SIGTERM there
    is not lost, and call `reached` after every step on every process.
    """

    def __init__(self):
        self._multi = jax.distributed.is_initialized()
        self._signalled = False
        self._previous = None
        if not self._multi and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        del signum, frame
        log.warning("SIGTERM: checkpointing after the current step, then exiting")
        self._signalled = True

    def reached(self, steps_this_start: int) -> bool:
        """Whether to checkpoint now, after the `steps_this_start`-th step of this start.

        The count restarts at 1 on every start: jax's counter starts at 0, so a SIGTERM that
        comes before the first step (during restore or compilation) agrees on step 1, which a
        count of absolute steps of a resumed run would never meet.
        """
        if self._multi:
            return multihost_utils.reached_preemption_sync_point(steps_this_start)
        return self._signalled

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
