"""run.json: what produced a run (code version, packages, devices), one entry per start."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import pathlib
import platform
import subprocess

import jax
from etils import epath

from lib import files

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
            "tensorflow-datasets", "ml-collections", "chex", "numpy")

DATA_ORDER_NOTE = (
    "full batches only, from a continuous stream of per-epoch permutations seeded by config.seed "
    "(lth_common.md §3 port decision); epoch boundaries fall inside batches"
)


REPO = pathlib.Path(__file__).resolve().parent.parent


def git_commit(root: pathlib.Path = REPO) -> str:
    """HEAD (+dirty) of the checkout; in a copy without .git (launch/tpu/setup.sh), the commit
    its GIT_COMMIT file names."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = dirty = ""
    if commit:
        return commit + ("+dirty" if dirty else "")
    copied = root / "GIT_COMMIT"
    if copied.is_file():
        return copied.read_text().strip() + " (copy without .git)"
    return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def describe(mesh) -> dict:
    devices = jax.devices()
    return {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "host": platform.node(),
        "packages": package_versions(),
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "mesh": dict(mesh.shape),
        "data_order": DATA_ORDER_NOTE,
    }


def record_start(workdir, mesh, changed_keys: list[str] = (), data_origins: dict | None = None
                 ) -> None:
    """run.json: this start's description at the top level, every start under "starts";
    `data_origins` says where each split was read from."""
    if jax.process_index() != 0:
        return
    path = epath.Path(workdir) / "run.json"
    starts = []
    if path.exists():
        try:
            starts = list(json.loads(path.read_text())["starts"])
        except (ValueError, KeyError, TypeError) as e:
            raise files.WorkdirError(f"{path} is not a run.json of this project ({e}); move it "
                                     "away or use a new --workdir") from e
    current = describe(mesh)
    if data_origins:
        current["data"] = dict(data_origins)
    if changed_keys:
        current["config_keys_changed_at_this_start"] = list(changed_keys)
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    files.write_text_atomic(path, json.dumps({**current, "starts": starts + [current]},
                                             indent=2) + "\n")
