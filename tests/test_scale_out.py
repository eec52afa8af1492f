"""Scale-out end to end: 1×1 / 1×8 / 2×4 equality, SIGTERM, kill -9, dead peers, partial saves.

Multi-process runs are real `python -m lib.main` processes on 127.0.0.1 with 4 fake CPU devices
each, joined by jax.distributed (gloo collectives), as on a pod or a GPU cluster.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from helpers import DIGITS, REPO, digits_config, final_params, read_metrics, train_losses

from lib import distributed, train

STEPS = 40
ARGS = [f"--config={DIGITS}:steps={STEPS}", "--config.log_every=1",
        "--config.checkpoint_every=10", "--config.progress=False"]
# Across topologies only the reduction order differs; at lr 0.1 such float differences grow
# step by step (to ~1e-3 in the loss by step 17 of the 40-step run), so topologies are compared
# on a 12-step run, whose lr drops tenfold at steps 6 and 9.
SHORT_ARGS = [f"--config={DIGITS}:steps=12", "--config.log_every=1", "--config.progress=False"]
TOPOLOGIES = {"1x1": (1, 1), "1x8": (1, 8), "2x4": (2, 4)}  # processes × devices per process
EXIT_PREEMPTED = 75


def start(workdir, processes=1, devices=8, args=ARGS, extra=()) -> list[subprocess.Popen]:
    """Starts one run as `processes` processes; their output goes to WORKDIR.pI.log."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    group = []
    if processes > 1:
        group = [f"--coordinator_address={distributed.local_coordinator_address()}",
                 f"--num_processes={processes}"]
    procs = []
    for i in range(processes):
        pid_flag = [f"--process_id={i}"] if processes > 1 else []
        log = open(f"{workdir}.p{i}.log", "a")  # the child keeps it open
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "lib.main", *args, f"--workdir={workdir}", *group, *pid_flag,
             *extra], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def finish(procs, timeout=300) -> list[int]:
    try:
        return [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def output(workdir, i=0) -> str:
    return open(f"{workdir}.p{i}.log").read()


def logged_step(workdir) -> int:
    try:
        return max((m["step"] for m in read_metrics(workdir)), default=0)
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def wait_for_step(workdir, step, procs, timeout=240) -> None:
    deadline = time.time() + timeout
    while logged_step(workdir) < step:
        assert time.time() < deadline, f"step {step} not reached in {timeout}s"
        assert all(p.poll() is None for p in procs), output(workdir)[-3000:]
        time.sleep(0.05)


def run_to_end(workdir, processes=1, devices=8, args=ARGS) -> None:
    codes = finish(start(workdir, processes, devices, args))
    assert codes == [0] * processes, output(workdir)[-3000:]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted 40-step runs as 1×8 and 2×4, for the interrupted runs to equal."""
    root = tmp_path_factory.mktemp("references")
    run_to_end(root / "1x8")
    run_to_end(root / "2x4", processes=2, devices=4)
    return root


def assert_same_run(a, b, exact: bool) -> None:
    if exact:
        assert train_losses(a) == train_losses(b)
    else:
        np.testing.assert_allclose(train_losses(a), train_losses(b), rtol=1e-5)
    (pa, sa), (pb, sb) = final_params(a), final_params(b)
    tol = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-3, "atol": 1e-4}
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], err_msg=k, **tol)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), sa, sb)
    ra, rb = (json.loads((w / "results.json").read_text()) for w in (a, b))
    np.testing.assert_allclose(ra["eval/loss"], rb["eval/loss"], rtol=0 if exact else 1e-5)


def test_topologies_give_the_same_run(tmp_path):
    for name, (processes, devices) in TOPOLOGIES.items():
        run_to_end(tmp_path / name, processes, devices, SHORT_ARGS)
    assert len(train_losses(tmp_path / "1x1")) == 12
    assert_same_run(tmp_path / "1x1", tmp_path / "1x8", exact=False)
    assert_same_run(tmp_path / "1x8", tmp_path / "2x4", exact=False)
    info = json.loads((tmp_path / "2x4" / "run.json").read_text())
    assert (info["process_count"], info["device_count"]) == (2, 8)
    assert "finished:" in output(tmp_path / "2x4", 1)  # process 1 ran to the end


def preempted_step(workdir, processes=1) -> int:
    """The step every process last reported saving at exit 75 (they must agree)."""
    steps = {int(re.findall(r"preempted \(SIGTERM\) at step (\d+)", output(workdir, i))[-1])
             for i in range(processes)}
    assert len(steps) == 1, steps
    return steps.pop()


def starts(workdir) -> int:
    try:
        return len(json.loads((workdir / "run.json").read_text())["starts"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def sigterm_when(workdir, procs, ready, victim=0, timeout=240) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            output(workdir)[-3000:]
        time.sleep(0.02)
    procs[victim].send_signal(signal.SIGTERM)


# No periodic checkpoints: every checkpoint in these runs is the one a SIGTERM asked for.
PREEMPT_ARGS = [*ARGS, "--config.checkpoint_every=1000"]


def test_sigterm_checkpoints_exits_75_and_resumes_exactly(tmp_path, references):
    workdir = tmp_path / "run"
    procs = start(workdir, args=PREEMPT_ARGS)
    sigterm_when(workdir, procs, lambda: logged_step(workdir) >= 12)
    assert finish(procs) == [EXIT_PREEMPTED], output(workdir)[-3000:]
    stopped = preempted_step(workdir)
    assert logged_step(workdir) == stopped < STEPS
    assert [p.name for p in (workdir / "checkpoints").iterdir()] == [str(stopped)]

    # a SIGTERM during the next start's restore or compilation saves its first step
    procs = start(workdir, args=PREEMPT_ARGS)
    sigterm_when(workdir, procs, lambda: starts(workdir) == 2)
    assert finish(procs) == [EXIT_PREEMPTED], output(workdir)[-3000:]
    assert preempted_step(workdir) == stopped + 1

    assert finish(start(workdir, args=PREEMPT_ARGS)) == [0]
    assert_same_run(workdir, references / "1x8", exact=True)


def test_sigterm_to_one_process_stops_all_at_one_step(tmp_path, references):
    """Preemption reaches one worker; jax's preemption service makes all save the same step."""
    workdir = tmp_path / "run"
    procs = start(workdir, processes=2, devices=4, args=PREEMPT_ARGS)
    sigterm_when(workdir, procs, lambda: logged_step(workdir) >= 12, victim=1)
    assert finish(procs) == [EXIT_PREEMPTED] * 2, output(workdir, 1)[-3000:]
    step = preempted_step(workdir, processes=2)
    assert [p.name for p in (workdir / "checkpoints").iterdir()] == [str(step)]
    elsewhere = tmp_path / "resumed_as_1x8"
    shutil.copytree(workdir, elsewhere)

    # a SIGTERM before the resumed run's first step still meets a sync point: that step
    procs = start(workdir, processes=2, devices=4, args=PREEMPT_ARGS)
    sigterm_when(workdir, procs, lambda: starts(workdir) == 2, victim=1)
    assert finish(procs) == [EXIT_PREEMPTED] * 2, output(workdir, 1)[-3000:]
    assert preempted_step(workdir, processes=2) == step + 1

    assert finish(start(workdir, processes=2, devices=4, args=PREEMPT_ARGS)) == [0, 0]
    assert_same_run(workdir, references / "2x4", exact=True)

    # The checkpoint also resumes on another topology (one process, 8 devices): same data
    # position and state, so the first step after it matches up to reduction order.
    run_to_end(elsewhere, args=PREEMPT_ARGS)
    resumed, reference = train_losses(elsewhere), train_losses(references / "2x4")
    assert len(resumed) == STEPS and resumed[:step] == reference[:step]
    np.testing.assert_allclose(resumed[step], reference[step], rtol=1e-5)


def test_kill_9_at_several_steps_then_rerun_equals_uninterrupted(tmp_path, references):
    """kill -9 during start-up and between checkpoints; each rerun resumes the last complete one."""
    workdir = tmp_path / "run"
    procs = start(workdir)
    time.sleep(1.0)  # still importing / compiling: nothing saved yet
    procs[0].kill()
    finish(procs)
    for step in (7, 18, 27):
        procs = start(workdir)
        wait_for_step(workdir, step, procs)
        procs[0].kill()
        assert finish(procs) == [-signal.SIGKILL]
        assert not (workdir / "results.json").exists()
    assert finish(start(workdir)) == [0]
    assert_same_run(workdir, references / "1x8", exact=True)


@pytest.mark.parametrize("victim", [1, 0])
def test_dead_peer_makes_the_other_process_exit(tmp_path, victim):
    """kill -9 of a worker (1) or of the coordinator (0): the survivor exits non-zero in < 60 s."""
    workdir = tmp_path / "run"
    procs = start(workdir, processes=2, devices=4,
                  args=[f"--config={DIGITS}:steps=100000", "--config.log_every=1"],
                  extra=["--heartbeat_timeout=10"])
    wait_for_step(workdir, 3, procs)
    procs[victim].kill()
    killed_at = time.time()
    survivor = procs[1 - victim]
    code = finish([survivor], timeout=120)[0]
    elapsed = time.time() - killed_at
    finish(procs)
    assert code != 0
    assert elapsed < 60, f"survivor took {elapsed:.0f}s to exit"
    assert "JAX distributed service detected fatal errors" in output(workdir, 1 - victim)


def test_interrupted_checkpoint_is_never_loaded(tmp_path):
    """A save cut short leaves only a temporary directory: resume skips and removes it."""
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    train.run(digits_config(), reference)
    train.run(digits_config(steps=12), resumed)  # then pretend step 12 was never committed:
    ckpts = resumed / "checkpoints"
    partial = ckpts / "12.orbax-checkpoint-tmp-1790000000000000"
    shutil.move(ckpts / "12", partial)
    for f in (p for p in partial.rglob("*") if p.is_file()):
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])  # half-written files
    (resumed / "results.json").unlink()
    train.run(digits_config(), resumed)
    assert not partial.exists()
    assert sorted(p.name for p in ckpts.iterdir()) == ["12", "8"]
    assert_same_run(resumed, reference, exact=True)
