"""Model state that is not trained by gradients: EMA targets and FIFO queues (DESIGN.md rule 1).

Both are typed nnx.Variables, so the trainer carries them through the jitted step as model
state (checkpointed, FSDP-sharded like parameters), never differentiates them, and a task
updates them inside the step: `train_loss` may push to a queue, `update_state` (after the
optimizer step) moves an EMA target, `start` copies the parameters into it when a run starts.

    target = ema_copy(encoder)              # same architecture; its Params become EMA variables
    ema_update(target, encoder, decay=0.99) # target ← 0.99·target + 0.01·encoder
    queue = FIFOQueue(65_536, 128)          # MoCo's keys: queue.items, queue.valid()
    queue.push(keys)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class EMA(nnx.Variable):
    """A value that follows a parameter as an exponential moving average (a target network)."""


class QueueState(nnx.Variable):
    """A FIFO queue's rows, write position and number of filled rows."""


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


def ema_copy(module: nnx.Module) -> nnx.Module:
    """A new module with `module`'s structure and values, its Params turned into EMA variables
    (other variables, e.g. BatchNorm statistics, keep their type and are copied)."""
    graphdef, state = nnx.split(module)
    state = jax.tree.map(
        lambda v: EMA(jnp.array(v.get_value())) if isinstance(v, nnx.Param)
        else type(v)(jnp.array(v.get_value())), state, is_leaf=_is_variable)
    return nnx.merge(graphdef, state)


def _pairs(target: nnx.Module, source: nnx.Module):
    """(target EMA variable, source Param) at every path where the target has an EMA."""
    sources = dict(nnx.to_flat_state(nnx.state(source, nnx.Param)))
    targets = dict(nnx.to_flat_state(nnx.state(target, EMA)))
    differ = sorted(set(sources) ^ set(targets)) or [
        p for p in sorted(targets) if targets[p].get_value().shape != sources[p].get_value().shape]
    if differ:
        raise ValueError(f"an EMA target must mirror its source's parameters; they differ at "
                         f"{differ[:3]}")
    return [(targets[p], sources[p]) for p in sorted(targets)]


def ema_update(target: nnx.Module, source: nnx.Module, decay) -> None:
    """target ← decay·target + (1 − decay)·source, for every parameter (in place)."""
    for t, s in _pairs(target, source):
        t.set_value(decay * t.get_value() + (1 - decay) * s.get_value())


def copy_into(target: nnx.Module, source: nnx.Module) -> None:
    """target ← source: an EMA target starts as a copy of the parameters it follows."""
    for t, s in _pairs(target, source):
        t.set_value(jnp.array(s.get_value()))


class FIFOQueue(nnx.Module):
    """The last `size` rows pushed (MoCo's negative keys, SwAV's queue), oldest overwritten
    first. Rows not yet filled are zeros; `valid()` masks them."""

    def __init__(self, size: int, dim: int, dtype=jnp.float32):
        if size < 1 or dim < 1:
            raise ValueError(f"a queue needs size ≥ 1 and dim ≥ 1, got {size} × {dim}")
        self.items = QueueState(jnp.zeros((size, dim), dtype))
        self.position = QueueState(jnp.zeros((), jnp.int32))
        self.filled = QueueState(jnp.zeros((), jnp.int32))

    @property
    def size(self) -> int:
        return self.items.get_value().shape[0]

    def push(self, rows: jax.Array, when=True) -> None:
        """Appends [n, dim] rows (n ≤ size) at the write position, wrapping around; `when`
        (a traced bool) leaves the queue as it was where false (SwAV's late start)."""
        n = rows.shape[0]
        if n > self.size:
            raise ValueError(f"pushing {n} rows into a queue of {self.size}")
        items, position, filled = (self.items.get_value(), self.position.get_value(),
                                   self.filled.get_value())
        index = (position + jnp.arange(n)) % self.size
        pushed = items.at[index].set(rows.astype(items.dtype))
        self.items.set_value(jnp.where(when, pushed, items))
        self.position.set_value(jnp.where(when, (position + n) % self.size, position))
        self.filled.set_value(jnp.where(when, jnp.minimum(filled + n, self.size), filled))

    def full(self) -> jax.Array:
        """Whether every row holds a pushed entry (a traced bool)."""
        return self.filled.get_value() == self.size

    def valid(self) -> jax.Array:
        """[size] booleans: rows that hold a pushed entry."""
        return jnp.arange(self.size) < self.filled.get_value()
