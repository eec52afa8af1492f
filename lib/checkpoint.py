"""Checkpoints: the only module that imports orbax (rule 7).

A checkpoint holds the train state (step, RNG, parameters, BN statistics, optimizer state) and
the data iterator's state, so a resumed run continues the exact data order. Orbax writes each
checkpoint to a temporary directory and renames it when complete (on gs://, where renames are not
atomic, it marks completion with a commit file), so a checkpoint interrupted by a crash is never
listed, let alone restored; its leftovers are deleted at the next start.

Every process calls save and restore (orbax coordinates them; each writes its own shards of
sharded arrays). The data state stored is process 0's: Grain's state is the number of local
batches consumed (per worker where data.num_workers > 0), the same on every process.
"""

from __future__ import annotations

from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from lib import files


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
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=not read_only,  # leftovers of a save a crash interrupted
        )
        self.directory = files.as_path(directory)  # local or gs://
        verbosity = absl_logging.get_verbosity()
        if read_only:  # orbax warns that a read-only manager will not save, which is the point
            absl_logging.set_verbosity(absl_logging.ERROR)
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        finally:
            absl_logging.set_verbosity(verbosity)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, data_state: dict) -> None:
        self._manager.save(step, force=True, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)))

    def restore(self, step: int, target: Any) -> tuple[Any, dict]:
        """Restores onto the shapes, dtypes and shardings of `target` (arrays or abstract)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
        return restored["state"], restored["data"]

    def restore_as_saved(self, step: int) -> tuple[dict, dict]:
        """The saved tree as host arrays, whatever its structure (another run's checkpoint)."""
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), data=ocp.args.JsonRestore()))
        return restored["state"], restored["data"]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
