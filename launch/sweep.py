"""Runs every point of a config file's sweep, which its `get_sweep(arg)` lists.

    python launch/sweep.py --config=experiments/batchnorm_only/configs/digits.py:seeds=2 \\
        --workdir_root=workdirs/digits --mode=local [--dry-run] [-- --config.k=v ...]

The `:arg` of --config goes to get_sweep. The point {"trainable": "all", "seed": 0} runs
FILE.py:trainable=all,seed=0 in the workdir ROOT/trainable=all,seed=0. A point whose workdir
holds results.json is skipped, so running a sweep again continues it. Overrides after `--` go
to every point. Modes:

  local  the points one after another, each in launch/local.sh's restart loop;
  slurm  one SLURM array job with one task per point (launch/gpu/slurm.sh --commands); the
         tasks' lib.main arguments go to a commands file in ROOT, which must be on the
         cluster's shared filesystem;
  tpu    the points one after another on one TPU VM or slice that setup.sh prepared
         (launch/tpu/run.sh); ROOT must be gs://, which every worker reads and writes.

Finished points in a gs:// ROOT are found with `gcloud storage ls`. --dry-run prints the
commands (for slurm: each task's lib.main arguments as a comment, then the submission) and runs
nothing, gcloud included: with a gs:// ROOT it lists every point, finished or not. Exit code: 0
when every point ran (or was submitted) without error, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import re
import shlex
import subprocess
import sys

from lib import config as config_lib

LAUNCH = pathlib.Path(__file__).resolve().parent
MODES = ("local", "slurm", "tpu")
# Per mode: (option of this script, option of the mode's launch script, type, help).
MODE_OPTIONS = {
    "local": [("--max_restarts", "--max_restarts", int, "relaunches of a failed run")],
    "slurm": [
        ("--nodes", "--nodes", int, "nodes per point"),
        ("--gpus_per_node", "--gpus_per_node", int, "GPUs per node"),
        ("--per_gpu", "--per_gpu", bool, "one process per GPU instead of one per node"),
        ("--partition", "--partition", str, "SLURM partition"),
        ("--time", "--time", str, "time limit per task, e.g. 24:00:00"),
        ("--account", "--account", str, "SLURM account"),
        ("--max_parallel", "--max_parallel", int, "at most N tasks at once"),
    ],
    "tpu": [
        ("--tpu_name", "--name", str, "the TPU VM or slice (required)"),
        ("--zone", "--zone", str, "its zone (required)"),
        ("--project", "--project", str, "Google Cloud project"),
    ],
}
REQUIRED = {"tpu": ("--tpu_name", "--zone")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch/sweep.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
        usage="%(prog)s --config FILE.py[:arg] --workdir_root DIR --mode {local,slurm,tpu} "
              "[options] [-- --config.k=v ...]")
    parser.add_argument("--config", required=True, metavar="FILE.py[:arg]",
                        help="config file with get_sweep(arg)")
    parser.add_argument("--workdir_root", required=True, metavar="DIR",
                        help="the points' workdirs go here")
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    for mode, options in MODE_OPTIONS.items():
        group = parser.add_argument_group(f"--mode {mode}")
        for option, _, kind, help_ in options:
            if kind is bool:
                group.add_argument(option, action="store_true", help=help_)
            else:
                group.add_argument(option, type=kind, help=help_,
                                   metavar="N" if kind is int else None)
    return parser


def _value(args: argparse.Namespace, option: str):
    return getattr(args, option.removeprefix("--"))


def _launcher_options(args: argparse.Namespace) -> list[str]:
    """The mode's options that were given, spelled for its launch script."""
    out = []
    for option, flag, kind, _ in MODE_OPTIONS[args.mode]:
        value = _value(args, option)
        if value is not None and value is not False:
            out += [flag] if kind is bool else [flag, str(value)]
    return out


def point_arg(point: dict) -> str:
    """{"depth": 14, "seed": 0} -> "depth=14,seed=0", the arg format of lib.config.parse_arg."""
    items = []
    for key, value in point.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "," in f"{key}{text}" or "=" in key or text != text.strip():
            raise ValueError(f"sweep point {point}: {key}={text!r} cannot be written as a "
                             "config arg (no commas, no '=' in keys, no outer spaces)")
        items.append(f"{key}={text}")
    return ",".join(items)


def workdir_name(point: dict) -> str:
    """The point's arg with characters that do not belong in a path replaced by '_'."""
    return re.sub(r"[^\w.=,+-]", "_", point_arg(point))


def finished(root: str) -> set[str]:
    """Names of the workdirs directly under root that hold results.json (gs:// via gcloud)."""
    if not root.startswith("gs://"):
        return {p.parent.name for p in pathlib.Path(root).glob("*/results.json")}
    ls = subprocess.run(["gcloud", "storage", "ls", f"{root}/*/results.json"],
                        capture_output=True, text=True)
    if ls.returncode and "matched no objects" not in ls.stderr:
        sys.exit(f"error: cannot list the finished runs in {root}: {ls.stderr.strip()}")
    return {line.split("/")[-2] for line in ls.stdout.splitlines()}


def _points(parser: argparse.ArgumentParser, spec: str) -> list[dict]:
    path, arg = config_lib.split_config_spec(spec)
    try:
        module = config_lib._import_file(path)
        if not hasattr(module, "get_sweep"):
            parser.error(f"{path} defines no get_sweep(arg), so it has no sweep to run")
        points = module.get_sweep(arg)
    except config_lib.ConfigError as e:
        parser.error(str(e))
    if not points or not all(isinstance(p, dict) and p for p in points):
        parser.error(f"{path}: get_sweep({arg!r}) must return a non-empty list of non-empty dicts")
    return points


def _submit_array_job(args, todo: list[tuple[str, str]], overrides: list[str]) -> int:
    """Writes one line of lib.main arguments per point, then submits them as one array job."""
    lines = [shlex.join([f"--config={spec}", f"--workdir={workdir}", *overrides])
             for spec, workdir in todo]
    text = "".join(line + "\n" for line in lines)
    # Named by content: a later sweep in the same root never rewrites the file of a queued one.
    commands = pathlib.Path(args.workdir_root,
                            f"sweep-{hashlib.sha1(text.encode()).hexdigest()[:10]}.txt")
    submit = [str(LAUNCH / "gpu" / "slurm.sh"), "--commands", str(commands),
              *_launcher_options(args)]
    if args.dry_run:
        for task, line in enumerate(lines):
            print(f"# task {task}: {line}")
        print(shlex.join(submit))
        return 0
    commands.parent.mkdir(parents=True, exist_ok=True)
    commands.write_text(text)
    return subprocess.run(submit).returncode


def _run_in_turn(args, todo: list[tuple[str, str]], overrides: list[str]) -> int:
    """Runs the points one after another through launch/local.sh or launch/tpu/run.sh."""
    script = LAUNCH / ("local.sh" if args.mode == "local" else "tpu/run.sh")
    tail = ["--", *overrides] if overrides else []
    cmds = [[str(script), "--config", spec, "--workdir", workdir, *_launcher_options(args), *tail]
            for spec, workdir in todo]
    if args.dry_run:
        for cmd in cmds:
            print(shlex.join(cmd))
        return 0
    failed = []
    for i, ((_, workdir), cmd) in enumerate(zip(todo, cmds)):
        print(f"[{i + 1}/{len(cmds)}] {shlex.join(cmd)}", file=sys.stderr, flush=True)
        if code := subprocess.run(cmd).returncode:
            failed.append(f"{workdir} (exit {code})")
    if failed:
        print(f"error: {len(failed)} of {len(cmds)} points failed: {', '.join(failed)}",
              file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    overrides = []
    if "--" in argv:
        argv, overrides = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    parser = _parser()
    args = parser.parse_args(argv)
    for mode, options in MODE_OPTIONS.items():
        for option, _, _, _ in options:
            if mode != args.mode and _value(args, option) not in (None, False):
                parser.error(f"{option} applies to --mode {mode}")
    for option in REQUIRED.get(args.mode, ()):
        if _value(args, option) is None:
            parser.error(f"--mode {args.mode} needs {option}")
    root = args.workdir_root = args.workdir_root.rstrip("/")
    if args.mode == "slurm" and "://" in root:
        parser.error("--mode slurm writes its commands file to --workdir_root, which must be on "
                     "the cluster's shared filesystem")
    if args.mode == "tpu" and not root.startswith("gs://"):
        parser.error("--mode tpu needs a gs:// --workdir_root: a local path would be on the "
                     "TPU's disks, not here where finished points are looked up")

    path, _ = config_lib.split_config_spec(args.config)
    points = _points(parser, args.config)
    try:
        names = [workdir_name(p) for p in points]
        specs = [f"{path}:{point_arg(p)}" for p in points]
    except ValueError as e:
        parser.error(str(e))
    if len(set(names)) != len(names):
        parser.error(f"get_sweep gives points with the same workdir name: {sorted(names)}")
    if args.dry_run and root.startswith("gs://"):
        done = set()  # a dry run calls no gcloud
        print(f"--dry-run: finished points in {root} are not looked up", file=sys.stderr)
    else:
        done = finished(root)
    todo = [(spec, f"{root}/{name}") for spec, name in zip(specs, names) if name not in done]
    print(f"{len(todo)} of {len(points)} points to run ({len(points) - len(todo)} finished "
          f"in {root})", file=sys.stderr, flush=True)
    if not todo:
        return 0
    if args.mode == "slurm":
        return _submit_array_job(args, todo, overrides)
    return _run_in_turn(args, todo, overrides)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
