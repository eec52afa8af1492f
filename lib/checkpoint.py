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

from lib import files


class Checkpointer:
    def __init__(self, directory, *, keep: int, async_save: bool = True):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,  # leftovers of a save that a crash interrupted
        )
        self.directory = files.as_path(directory)  # local or gs://
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_state: dict) -> None:
        self._manager.save(step, force=True, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)))

    def restore(self, step: int, target: Any) -> tuple[Any, dict]:
        """Restores onto the shapes, dtypes and shardings of `target` (arrays or abstract)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
        return restored["state"], restored["data"]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
