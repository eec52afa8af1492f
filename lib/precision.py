"""Which precision a step's matrix multiplications run in.

`model.dtype=bfloat16` is meant to put every convolution and matmul of a model in bfloat16
while parameters, optimizer state, BatchNorm statistics and losses stay float32. A float32
operand left in a layer silently makes XLA run that layer in float32 (at a fraction of the
bfloat16 rate on GPUs and TPUs), so this module counts, from a function's jaxpr, the FLOPs
of every `dot_general` and `conv_general_dilated` by the dtypes of their operands: the
bfloat16 share of a train step says whether the setting took effect everywhere.

No loss scaling is needed for bfloat16: it has float32's 8 exponent bits (range 1e-38 to
3e38), so gradients do not underflow as they do in float16 (5 exponent bits); only the
mantissa is shorter (8 bits against 24), which is why parameters and their updates stay
float32.
"""

from __future__ import annotations

import collections
import logging
import math
import os

import jax
from jax.extend import core as jax_core

MATMULS = ("dot_general", "conv_general_dilated")
# XLA:CPU's YNNPACK fusions (jaxlib 0.12) return NaN for most rows of a bfloat16 ResNet's
# jitted eval forward pass (a different count each run; eager and GPU results are finite).
# With them off, bfloat16 on CPU is correct; float32 step times did not change measurably.
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="


def _flops(eqn) -> int:
    """2 × multiply-adds of one dot or convolution, from its shapes. For a convolution, an
    upper bound: taps that fall on padding, or on the holes of an input-dilated (transposed)
    convolution, count too (as in the usual 2·outputs·kernel-volume convention)."""
    out = eqn.outvars[0].aval.shape
    if eqn.primitive.name == "dot_general":
        (contracting, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return 2 * math.prod(out) * math.prod(lhs[d] for d in contracting)
    rhs = eqn.invars[1].aval.shape
    spec = eqn.params["dimension_numbers"].rhs_spec  # (out features, in features, spatial…)
    return 2 * math.prod(out) * rhs[spec[1]] * math.prod(rhs[d] for d in spec[2:])


def _inner_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, jax_core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax_core.Jaxpr):
                yield item


def _count(jaxpr, times: int, out: collections.Counter) -> None:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in MATMULS:
            dtypes = "×".join(str(v.aval.dtype) for v in eqn.invars[:2])
            out[dtypes] += times * _flops(eqn)
        repeat = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        for inner in _inner_jaxprs(eqn):  # jit, grad's custom rules, scan/cond/while bodies
            _count(inner, times * repeat, out)


def matmul_flops(fn, *args) -> dict[str, int]:
    """{"lhs dtype×rhs dtype": FLOPs} over every dot and convolution `fn(*args)` traces to.
    A scan body counts its length times; a while loop's body and each cond branch once."""
    out = collections.Counter()
    _count(jax.make_jaxpr(fn)(*args).jaxpr, 1, out)
    return dict(out)


def share(flops: dict[str, int], dtype: str = "bfloat16") -> float:
    """The fraction of matmul FLOPs with both operands in `dtype` (0 where there are none)."""
    total = sum(flops.values())
    return flops.get(f"{dtype}×{dtype}", 0) / total if total else 0.0


def guard_cpu_bfloat16(dtype: str) -> None:
    """For a bfloat16 run: turns XLA:CPU's YNNPACK fusions off (YNN_OFF), which only works
    before JAX's backend starts; after, on a CPU, it warns. Other backends ignore the flag."""
    flags = os.environ.get("XLA_FLAGS", "")
    if dtype != "bfloat16" or "xla_cpu_experimental_ynn_fusion_type" in flags:
        return
    from jax._src import xla_bridge  # no public way to ask without starting a backend

    if not xla_bridge.backends_are_initialized():
        os.environ["XLA_FLAGS"] = f"{flags} {YNN_OFF}".strip()
    elif jax.default_backend() == "cpu":
        logging.getLogger("lib.precision").warning(
            "bfloat16 on CPU with XLA's YNNPACK fusions on may give NaN; start the process "
            "with XLA_FLAGS=%s", YNN_OFF)
