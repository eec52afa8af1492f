"""Where a train step's time goes: `python -m lib.bench --only step_profile,conv_ops`.

- `step_profile`: XLA's own profile of the compiled ResNet train step (jax.profiler), its
  thunks' durations summed over the executor's threads per HLO op and per kind of op
  (convolution library calls, transposes, elementwise fusions, ...). On 2 cores the summed
  time can exceed the step time (two thunks at once) or fall short (idle threads).
- `conv_ops`: each distinct 3×3 convolution of ResNet-20 at batch 128 alone, jitted: forward,
  input gradient, weight gradient (XLA's formulation, and ours of lib/models/conv.py, which
  the models use on CPU); with PyTorch installed (the [bench] extra) the same three on its
  side, channels-first, for the per-op ratio.
"""

from __future__ import annotations

import collections
import pathlib
import re
import tempfile
import time

import jax
import numpy as np
from jax import lax

from lib.models import conv as conv_lib

# (H=W, C_in, C_out, stride) of ResNet-20's 3×3 convolutions on 32×32 inputs.
RESNET20_CONVS = ((32, 3, 16, 1), (32, 16, 16, 1), (32, 16, 32, 2), (16, 32, 32, 1),
                  (16, 32, 64, 2), (8, 64, 64, 1))


def _median_ms(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return round(1000 * float(np.median(times)), 2)


def _hlo_kinds(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> 'opcode[:fusion kind] shape' from the compiled module's text."""
    kinds = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?(\S+) = (\S+) ([a-z\-]+)\((.*)", line)
        if m:
            name, shape, op, rest = m.groups()
            fusion = re.search(r"kind=(\w+)", rest)
            kinds[name] = f"{op}{':' + fusion.group(1) if fusion else ''} {shape}"
    return kinds


def _kind_of(event: str) -> str:
    """'transpose_copy_fusion.30' -> 'transpose_copy_fusion': XLA names ops by their content."""
    return re.sub(r"\.\d+$", "", event)


def profile_step(compiled, state, batch, steps: int = 3, top: int = 15) -> dict:
    """Per-op milliseconds per step of a compiled step, from a jax.profiler trace."""
    for _ in range(2):
        state, m = compiled(state, batch)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = compiled(state, batch)
    jax.block_until_ready(m)
    step_ms = 1000 * (time.perf_counter() - t0) / steps
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(steps):
                state, m = compiled(state, batch)
            jax.block_until_ready(m)
        trace = next(pathlib.Path(tmp).rglob("*.xplane.pb"))
        data = jax.profiler.ProfileData.from_file(str(trace))
    kinds = _hlo_kinds(compiled.as_text())
    per_op = collections.Counter()  # the thunks of the module's instructions, not the runtime's
    for plane in data.planes:
        for line in plane.lines:
            for event in line.events:
                if event.name in kinds:
                    per_op[event.name] += event.duration_ns
    per_kind = collections.Counter()
    for name, ns in per_op.items():
        per_kind[_kind_of(name)] += ns
    to_ms = 1e-6 / steps
    return {"step_ms": round(step_ms, 1),
            "summed_op_ms": round(sum(per_op.values()) * to_ms, 1),
            "by_kind_ms": {k: round(v * to_ms, 1) for k, v in per_kind.most_common(top)},
            "top_ops_ms": [{"op": k, "hlo": kinds.get(k, "?"), "ms": round(v * to_ms, 1)}
                           for k, v in per_op.most_common(top)]}


def _conv(x, w, stride, conv=lax.conv_general_dilated):
    return conv(x, w, (stride, stride), ((1, 1), (1, 1)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_op_times(batch: int = 128, repeats: int = 7) -> list[dict]:
    """Forward, input-gradient and weight-gradient ms of ResNet-20's convolutions, alone."""
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    rows = []
    for size, cin, cout, stride in RESNET20_CONVS:
        x = jax.device_put(rng.normal(size=(batch, size, size, cin)).astype(np.float32))
        w = jax.device_put(rng.normal(size=(3, 3, cin, cout)).astype(np.float32))
        shape = jax.eval_shape(lambda x, w, s=stride: _conv(x, w, s), x, w).shape
        g = jax.device_put(np.ones(shape, np.float32))
        row = {"conv": f"{size}x{size}x{cin}->{cout} stride {stride}",
               **_xla_conv_times(x, w, g, stride, repeats)}
        if torch is not None:
            row.update(_torch_conv_times(torch, batch, size, cin, cout, stride, repeats))
        rows.append(row)
    return rows


def _xla_conv_times(x, w, g, stride: int, repeats: int) -> dict:
    forward = jax.jit(lambda x, w: _conv(x, w, stride))
    input_grad = jax.jit(lambda x, w, g: jax.vjp(lambda x: _conv(x, w, stride), x)[1](g))
    weight_grad = jax.jit(lambda x, w, g: jax.vjp(lambda w: _conv(x, w, stride), w)[1](g))
    ours = jax.jit(lambda x, w, g: jax.vjp(
        lambda w: _conv(x, w, stride, conv_lib.conv_transposed_weight_grad), w)[1](g))
    return {"forward_ms": _median_ms(lambda: forward(x, w), repeats),
            "input_grad_ms": _median_ms(lambda: input_grad(x, w, g), repeats),
            "weight_grad_ms": _median_ms(lambda: weight_grad(x, w, g), repeats),
            "weight_grad_transposed_ms": _median_ms(lambda: ours(x, w, g), repeats)}


def _torch_conv_times(torch, batch, size, cin, cout, stride, repeats) -> dict:
    x = torch.randn(batch, cin, size, size)
    w = torch.randn(cout, cin, 3, 3)
    g = torch.ones_like(torch.nn.functional.conv2d(x, w, stride=stride, padding=1))

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            g, x, w, None, (stride, stride), (1, 1), (1, 1), False, (0, 0), 1, mask)

    def timed(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(1000 * float(np.median(times)), 2)

    with torch.no_grad():
        return {"torch_forward_ms": timed(lambda: torch.nn.functional.conv2d(
                    x, w, stride=stride, padding=1)),
                "torch_input_grad_ms": timed(backward((True, False, False))),
                "torch_weight_grad_ms": timed(backward((False, True, False)))}
