"""Device mesh from config, and the shardings of batches and replicated state (rule 5)."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lib.config import ConfigError

DATA_AXIS = "data"


def make_mesh(mesh_cfg) -> Mesh:
    """A 1-D data-parallel mesh over `mesh.data` devices (-1: all), with Auto axis types."""
    available = jax.device_count()
    n = available if mesh_cfg.data == -1 else mesh_cfg.data
    if n < 1 or n > available or available % n:
        raise ConfigError(
            f"mesh.data={mesh_cfg.data} does not fit the {available} available devices; "
            f"use -1 (all) or a divisor of {available}"
        )
    if n != available and jax.process_count() > 1:
        raise ConfigError(
            f"mesh.data={n} uses part of the {available} devices of a multi-process run; every "
            "process must hold devices of the mesh: use mesh.data=-1"
        )
    devices = np.asarray(jax.devices()[:n])
    return Mesh(devices, (DATA_AXIS,), axis_types=(AxisType.Auto,))


def check_batch_divides(mesh: Mesh, batch_size: int, what: str = "data.batch_size") -> None:
    if batch_size % mesh.size:
        raise ConfigError(
            f"{what}={batch_size} is not divisible by the {mesh.size} devices of the mesh; "
            f"use a multiple of {mesh.size} (e.g. {batch_size + (-batch_size) % mesh.size}) "
            "or set mesh.data to a divisor of the batch"
        )
    if batch_size % jax.process_count():
        raise ConfigError(
            f"{what}={batch_size} is not divisible by the {jax.process_count()} processes"
        )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local_batch: dict, sharding: NamedSharding) -> dict:
    """Assembles this process's share of the batch into global arrays sharded on the data axis."""
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }
