"""Checkpoints: the only module that imports orbax (rule 7).

A checkpoint holds the train state (step, RNG, parameters, BN statistics, optimizer state), the
data iterator's state, so a resumed run continues the exact data order, and the loop's state
(the partial metric window, an eval a preemption skipped), so its metrics.jsonl continues the
same lines. Orbax writes each checkpoint to a temporary directory and renames it when complete
(on gs://, where renames are not atomic, it marks completion with a commit file), so a
checkpoint interrupted by a crash is never listed, let alone restored; its leftovers are deleted
at the next start.

Each checkpoint also carries `checksums.json`: the SHA-256 of every file in it, written once
its files are complete and before it is committed, and checked before every restore. A
checkpoint that fails the check (a truncated or overwritten chunk, a flipped bit, a missing
item) is not restored: `restore_latest` moves it to `checkpoints_set_aside/` beside the
checkpoints (never deleting it), warns, and resumes from the newest good one. Checkpoints
written before checksums existed are restored as they are, unchecked.

Every process calls save and restore (orbax coordinates them; each writes its own shards of
sharded arrays). The data state stored is process 0's: Grain's state is the number of local
batches consumed (per worker where data.num_workers > 0), the same on every process. Process 0
writes and checks the checksums and tells the others its verdict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from lib import files

log = logging.getLogger(__name__)

CHECKSUMS = "checksums.json"
# Orbax rewrites this one at commit, after the checksums (it adds the commit time), so it is
# only checked for being JSON.
_REWRITTEN_AT_COMMIT = "_CHECKPOINT_METADATA"
SET_ASIDE = "checkpoints_set_aside"  # beside the checkpoints directory
_TMP_MARK = ".orbax-checkpoint-tmp"  # orbax's name for a step directory still being written
# Orbax warnings that say nothing to a user: a read-only manager (another run's checkpoints,
# opened to read them) will not save, which is the point.
_UNINFORMATIVE = ("read_only=True", "is read only", "read only=True")


class _DropUninformative(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in _UNINFORMATIVE)


logging.getLogger("absl").addFilter(_DropUninformative())


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message says what was found and what to do."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint whose files do not match the checksums written with it."""


class NoGoodCheckpointError(CheckpointError):
    """A run has checkpoints, and none of them restores."""


def _digest(path: epath.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _content(step_dir: epath.Path) -> list[tuple[str, epath.Path]]:
    """(path relative to step_dir, path) of every file in a checkpoint that the checksums
    cover: all but themselves and orbax's commit record."""
    out, folders = [], [step_dir]
    while folders:
        for p in folders.pop().iterdir():
            if p.is_dir():
                folders.append(p)
            else:
                out.append((str(p.relative_to(step_dir)), p))
    return sorted((rel, p) for rel, p in out if rel not in (CHECKSUMS, _REWRITTEN_AT_COMMIT))


def write_checksums(step_dir: epath.Path) -> None:
    sums = {rel: _digest(p) for rel, p in _content(step_dir)}
    files.write_text_atomic(step_dir / CHECKSUMS, json.dumps(sums, indent=0, sort_keys=True))


def verify(step_dir: epath.Path) -> tuple[bool | None, str]:
    """(True, '') when every file listed in the checksums is there with its digest; (False,
    what differs) when not; (None, ...) when the checkpoint has no checksums (an older one).
    Files the list does not name (orbax markers written at commit) are not part of the check."""
    path = step_dir / CHECKSUMS
    if not path.exists():
        return None, "it has no checksums"
    try:
        expected = json.loads(path.read_text())
    except ValueError:
        expected = None
    if not isinstance(expected, dict):
        return False, f"its {CHECKSUMS} is unreadable"
    present = dict(_content(step_dir))
    missing = sorted(set(expected) - set(present))
    if missing:
        return False, f"{len(missing)} of its files are missing ({', '.join(missing[:3])})"
    changed = [rel for rel in sorted(expected) if _digest(present[rel]) != expected[rel]]
    if changed:
        return False, f"{len(changed)} of its files changed since it was saved " \
                      f"({', '.join(changed[:3])})"
    try:
        json.loads((step_dir / _REWRITTEN_AT_COMMIT).read_text())
    except (OSError, ValueError):
        return False, f"its {_REWRITTEN_AT_COMMIT} is missing or unreadable"
    return True, ""


def _on_process_0(work, what: str):
    """work() on process 0, its outcome on every process: a value of 1, 0 or -1, or a
    CheckpointError everywhere when it raised OSError there (a peer waiting in a collective for
    process 0 would otherwise hang)."""
    code, problem = 0, ""
    if jax.process_index() == 0:
        try:
            code = work()
        except OSError as e:
            code, problem = 2, f"{what}: {e}"
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        code = int(multihost_utils.broadcast_one_to_all(np.int32(code)))
    if code == 2:
        raise CheckpointError(problem or f"{what} failed on process 0 (see its log)")
    return code


def _to_host(x):
    """A whole array as numpy, also one sharded over other processes' devices."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


@dataclasses.dataclass
class Resumed:
    step: int
    state: Any
    data: dict  # the data iterator's state
    loop: dict  # the training loop's state ({} in checkpoints from before it was saved)


class Checkpointer:
    """The newest `keep` checkpoints, plus those of `keep_steps` forever; read_only: another
    run's checkpoints (e.g. the dense run an IMP level rewinds to), never written or cleaned."""

    def __init__(self, directory, *, keep: int, async_save: bool = True,
                 keep_steps: tuple[int, ...] = (), read_only: bool = False):
        policies = [ocp.checkpoint_managers.LatestN(keep)]
        if any(keep_steps):
            policies.append(ocp.checkpoint_managers.CustomSteps([s for s in keep_steps if s]))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            create=not read_only,
            read_only=read_only,
            # Always orbax's async checkpointer, for its hook between writing a checkpoint's
            # files and committing it, where the checksums are written; a synchronous save
            # waits for the commit.
            enable_async_checkpointing=True,
            async_options=ocp.AsyncOptions(post_finalization_callback=self._write_checksums),
            cleanup_tmp_directories=not read_only,  # leftovers of a save a crash interrupted
        )
        self.directory = files.as_path(directory)  # local or gs://
        self._async = async_save
        self._saving: int | None = None
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, data_state: dict, loop_state: dict | None = None
             ) -> None:
        self._manager.wait_until_finished()  # one save at a time: _saving names it
        self._saving = step
        self._manager.save(step, force=True, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
            loop=ocp.args.JsonSave(loop_state or {})))
        if not self._async:
            self._manager.wait_until_finished()

    def _write_checksums(self) -> None:
        """Orbax calls this on process 0 once every process has written its files of the
        checkpoint being saved, before it commits it (renames its temporary directory)."""
        step = self._saving
        pending = sorted(self.directory.glob(f"{step}{_TMP_MARK}*"))
        write_checksums(pending[-1] if pending else self.directory / str(step))

    def _check(self, step: int) -> bool:
        """True if the checkpoint passes its checksums, False if it has none (an older one);
        DamagedCheckpointError if it fails them."""
        step_dir, verdict = self.directory / str(step), {}

        def check():
            verdict["status"], verdict["problem"] = verify(step_dir)
            return {True: 1, None: 0, False: -1}[verdict["status"]]

        code = _on_process_0(check, f"reading checkpoint {step_dir}")
        if code == -1:
            raise DamagedCheckpointError(
                f"checkpoint {step_dir}: {verdict.get('problem', '(see process 0 log)')}")
        return code == 1

    def restore(self, step: int, target: Any) -> tuple[Any, dict]:
        """Restores onto the shapes, dtypes and shardings of `target` (arrays or abstract);
        raises DamagedCheckpointError when the checkpoint fails its checksums."""
        self._check(step)
        restored = self._restore(step, target)
        return restored.state, restored.data

    def _restore(self, step: int, target: Any) -> Resumed:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        items = {"state": ocp.args.StandardRestore(abstract), "data": ocp.args.JsonRestore()}
        has_loop = (self.directory / str(step) / "loop").exists()
        if has_loop:
            items["loop"] = ocp.args.JsonRestore()
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        return Resumed(step, restored["state"], restored["data"],
                       restored["loop"] if has_loop else {})

    def restore_latest(self, target: Any) -> Resumed | None:
        """The newest checkpoint that passes its checksums (None: there is none yet). Newer
        ones that fail them are moved to checkpoints_set_aside/ with a warning. When every
        checkpoint fails, nothing is moved and NoGoodCheckpointError says what failed.

        A checkpoint that passes, or has no checksums (written before they existed), is
        restored as it is: an error then is not damage the checksums saw (a code change, a bug)
        and is raised unchanged."""
        failed = []
        for step in reversed(self.all_steps()):
            try:
                self._check(step)
            except DamagedCheckpointError as e:
                failed.append((step, str(e)))
                continue
            resumed = self._restore(step, target)
            self._set_aside(failed)
            return resumed
        if failed:
            raise NoGoodCheckpointError(
                "no checkpoint of this run can be restored:\n  " + "\n  ".join(
                    p for _, p in failed) + f"\nNothing was moved. To start the run over, move "
                f"{self.directory} away (or use a new --workdir).")
        return None

    def _set_aside(self, failed: list[tuple[int, str]]) -> None:
        if not failed:
            return

        def move():
            aside = self.directory.parent / SET_ASIDE
            for step, problem in failed:
                target, n = aside / str(step), 1
                while target.exists():
                    target, n = aside / f"{step}-{n}", n + 1
                files.move_tree(self.directory / str(step), target)
                log.warning("%s; moved to %s, resuming from an older checkpoint", problem, target)
            return 1

        _on_process_0(move, f"moving damaged checkpoints to {self.directory.parent / SET_ASIDE}")
        self._manager.reload()

    def restore_as_saved(self, step: int) -> tuple[dict, dict]:
        """The saved tree as host arrays on every process, whatever its structure and whatever
        devices saved it (another run's checkpoint); raises DamagedCheckpointError when it fails
        its checksums. Arrays come back with the sharding they were saved with where these
        devices allow it, else on one local device."""
        self._check(step)
        anywhere = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(fallback_sharding=anywhere),
            data=ocp.args.JsonRestore()))
        return jax.tree.map(_to_host, restored["state"]), restored["data"]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
