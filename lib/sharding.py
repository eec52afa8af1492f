"""Device mesh from config; shardings of batches and train state, data parallel or FSDP (rule 5)."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lib.config import ConfigError

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)  # a batch is split over every device of the mesh
# What FSDP shards: parameters, optimizer state and the model's other variables (a 65,536-key
# queue, EMA targets); BN statistics, step and RNG replicate. Small tensors replicate anyway.
SHARDED_STATE = ("params", "opt_state", "model_state")


def make_mesh(mesh_cfg) -> Mesh:
    """A (data, fsdp) mesh over mesh.data × mesh.fsdp devices (data=-1: all the rest), Auto axes.

    mesh.fsdp=1 is plain data parallelism. jax.make_mesh orders the devices by the chips'
    interconnect where it knows it (TPU), else as jax.devices() lists them.
    """
    available = jax.device_count()
    fsdp = mesh_cfg.fsdp
    if fsdp < 1 or available % fsdp:
        raise ConfigError(f"mesh.fsdp={fsdp} must be a divisor of the {available} devices")
    data = available // fsdp if mesh_cfg.data == -1 else mesh_cfg.data
    n = data * fsdp
    if data < 1 or n > available or available % n:
        raise ConfigError(
            f"mesh.data={mesh_cfg.data} × mesh.fsdp={fsdp} does not fit the {available} "
            f"available devices; use mesh.data=-1 (all) or make the product divide {available}"
        )
    if n != available and jax.process_count() > 1:
        raise ConfigError(
            f"the mesh uses {n} of the {available} devices of a multi-process run; every "
            "process must hold devices of the mesh: use mesh.data=-1"
        )
    return jax.make_mesh((data, fsdp), BATCH_AXES, axis_types=(AxisType.Auto, AxisType.Auto),
                         devices=jax.devices()[:n])


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
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def fsdp_spec(shape: tuple[int, ...], fsdp_size: int, min_size: int) -> P:
    """Shards the largest dimension divisible by the fsdp size; small tensors replicate.

    Ties go to the later dimension (the output features of a kernel).
    """
    if fsdp_size == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: (shape[d], d), reverse=True):
        if shape[dim] % fsdp_size == 0:
            return P(*[FSDP_AXIS if d == dim else None for d in range(len(shape))])
    return P()


def state_shardings(mesh: Mesh, state: dict, min_size: int) -> dict:
    """Shardings of a train state: SHARDED_STATE FSDP-sharded, the rest replicated.

    Optimizer leaves are sharded by their own shapes, so a momentum buffer or mask follows its
    parameter.
    """
    fsdp_size = mesh.shape[FSDP_AXIS]

    def leaf(x):
        return NamedSharding(mesh, fsdp_spec(tuple(np.shape(x)), fsdp_size, min_size))

    return {k: jax.tree.map(leaf, v) if k in SHARDED_STATE
            else jax.tree.map(lambda _: replicated(mesh), v) for k, v in state.items()}


def global_batch(local_batch: dict, sharding: NamedSharding) -> dict:
    """Assembles this process's share of the batch into global arrays sharded on the data axis
    (every leaf: a batch may nest, e.g. 'views', a list of per-group dicts)."""
    return jax.tree.map(
        lambda v: jax.make_array_from_process_local_data(sharding, np.asarray(v)), local_batch)
