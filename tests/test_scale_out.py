"""Scale-out end to end: 1×1 / 1×8 / 2×4 equality, SIGTERM, kill -9, dead peers, partial saves.

Multi-process runs are real `python -m lib.main` processes on 127.0.0.1 with 4 fake CPU devices
each, joined by jax.distributed (gloo collectives), as on a pod or a GPU cluster. They compile
with XLA's optimisations off, as the in-process tests do (conftest.py): start-up is 2× faster.
"""

import itertools
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
from helpers import (
    DIGITS,
    REPO,
    digits_config,
    final_params,
    read_metrics,
    same_lines,
    timeless,
    train_losses,
)

from lib import distributed, train

STEPS = 40
# Checkpoints (every 5) and SIGTERMs fall inside metric windows (every 3) and between evals
# (every 4): a resumed run must still log the lines an uninterrupted one logs.
ARGS = [f"--config={DIGITS}:steps={STEPS}", "--config.log_every=3", "--config.eval_every=4",
        "--config.checkpoint_every=5", "--config.progress=False"]
# Across topologies only the reduction order differs; at lr 0.1 such float differences grow
# step by step (to ~1e-3 in the loss by step 17 of the 40-step run), so topologies are compared
# on a 12-step run, whose lr drops tenfold at steps 6 and 9.
SHORT_ARGS = [f"--config={DIGITS}:steps=12", "--config.log_every=1", "--config.progress=False"]
TOPOLOGIES = {"1x1": (1, 1), "1x8": (1, 8), "2x4": (2, 4)}  # processes × devices per process
EXIT_PREEMPTED = 75


def start(workdir, processes=1, devices=8, args=ARGS, extra=(),
          compile_cache=True) -> list[subprocess.Popen]:
    """Starts one run as `processes` processes; their output goes to WORKDIR.pI.log.
    `compile_cache=False` leaves out the suite's persistent compilation cache (conftest.py), so
    that compiling the step takes its seconds between the start's record and its first step."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    if not compile_cache:
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
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
def reference(tmp_path_factory):
    """reference(name): the uninterrupted 40-step run as topology `name` (1x1, 1x8 or 2x4),
    made on first use, so that a test worker makes only the ones its tests compare with."""
    root, made = tmp_path_factory.mktemp("references"), set()

    def get(name: str):
        if name not in made:
            run_to_end(root / name, *TOPOLOGIES[name])
            made.add(name)
        return root / name

    return get


def assert_same_run(a, b, exact: bool) -> None:
    if exact:
        assert same_lines(a) == same_lines(b)  # every line: train windows and evals
    else:
        np.testing.assert_allclose(train_losses(a), train_losses(b), rtol=1e-5)
    (pa, sa), (pb, sb) = final_params(a), final_params(b)
    tol = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-3, "atol": 1e-4}
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], err_msg=k, **tol)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), sa, sb)
    ra, rb = (json.loads((w / "results.json").read_text()) for w in (a, b))
    if exact:
        assert timeless(ra) == timeless(rb)
    else:
        np.testing.assert_allclose(ra["eval/loss"], rb["eval/loss"], rtol=1e-5)


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


def test_kill_9_and_sigterm_at_random_steps_equal_uninterrupted(tmp_path, reference):
    """One run interrupted eleven times: a SIGTERM during start-up (before the first step),
    then kill -9 and SIGTERM in turn at seeded random steps, five of each. Every rerun resumes;
    the finished run equals the uninterrupted one in results.json, parameters and every line of
    metrics.jsonl. One device: what is tested here does not depend on the device count."""
    workdir = tmp_path / "run"
    # the last target leaves the run a few steps: a SIGTERM in its final step would not stop it
    targets = np.sort(np.random.default_rng(2026).choice(np.arange(2, STEPS - 6), 10, False))
    kinds = itertools.cycle(["kill", "sigterm"])
    events = [("sigterm", None)] + [(next(kinds), int(t)) for t in targets]
    for kind, target in events:
        procs = start(workdir, devices=1)
        if target is None:  # as soon as this start is recorded: restoring or compiling
            sigterm_when(workdir, procs, lambda: starts(workdir) == 1)
        else:
            wait_for_step(workdir, max(target, logged_step(workdir) + 1), procs)
            if kind == "kill":
                procs[0].kill()
            else:
                procs[0].send_signal(signal.SIGTERM)
        codes = finish(procs)
        assert codes == ([-signal.SIGKILL] if kind == "kill" else [EXIT_PREEMPTED]), \
            output(workdir)[-3000:]
        if kind == "sigterm":  # it saved the step it reported
            assert (workdir / "checkpoints" / str(preempted_step(workdir))).is_dir()
        assert not (workdir / "results.json").exists()
    assert preempted_step(workdir) > 0
    assert finish(start(workdir, devices=1)) == [0]
    assert starts(workdir) == len(events) + 1
    assert_same_run(workdir, reference("1x1"), exact=True)


def test_sigterm_to_one_process_stops_all_at_one_step(tmp_path, reference):
    """Preemption reaches one worker; jax's preemption service makes all save the same step."""
    workdir = tmp_path / "run"
    procs = start(workdir, processes=2, devices=4, args=PREEMPT_ARGS)
    sigterm_when(workdir, procs, lambda: logged_step(workdir) >= 12, victim=1)
    assert finish(procs) == [EXIT_PREEMPTED] * 2, output(workdir, 1)[-3000:]
    step = preempted_step(workdir, processes=2)
    assert [p.name for p in (workdir / "checkpoints").iterdir()] == [str(step)]
    elsewhere = tmp_path / "resumed_as_1x8"
    shutil.copytree(workdir, elsewhere)

    # a SIGTERM before the resumed run's first step still meets a sync point: that step. The
    # signal goes when the start is recorded, before compilation; with a cached compilation the
    # first step could come before jax's preemption notice reaches process 0 (CI: step + 2).
    procs = start(workdir, processes=2, devices=4, args=PREEMPT_ARGS, compile_cache=False)
    sigterm_when(workdir, procs, lambda: starts(workdir) == 2, victim=1)
    assert finish(procs) == [EXIT_PREEMPTED] * 2, output(workdir, 1)[-3000:]
    assert preempted_step(workdir, processes=2) == step + 1

    assert finish(start(workdir, processes=2, devices=4, args=PREEMPT_ARGS)) == [0, 0]
    assert_same_run(workdir, reference("2x4"), exact=True)

    # The checkpoint also resumes on another topology (one process, 8 devices): same data
    # position and state, so the first window after it matches up to reduction order.
    run_to_end(elsewhere, args=PREEMPT_ARGS)
    resumed, reference = same_lines(elsewhere), same_lines(reference("2x4"))
    before = [m for m in reference if m["step"] <= step]
    assert resumed[:len(before)] == before
    assert [m["step"] for m in resumed] == [m["step"] for m in reference]
    first = next(i for i, m in enumerate(reference) if m["step"] > step and "train/loss" in m)
    np.testing.assert_allclose(resumed[first]["train/loss"], reference[first]["train/loss"],
                               rtol=1e-5)


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
