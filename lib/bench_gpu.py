"""The accelerator suite: one prepared script for one GPU (or TPU chip), JSON out.

    python -m lib.bench --suite gpu [--tiny] [--budget 480] [--steps 20]

Sections, in this order (each one prints a JSON line when done; the last line is the whole
report, with the targets and whether they are met):
1. `peak`: the device's bfloat16 matmul rate, measured (an 8192³ matmul, best of several);
   MFU figures below divide by it, so they do not depend on a datasheet;
2. `resnet50`: the ImageNet ResNet-50 train step at 224², bfloat16, batch 256 (SGD momentum,
   synthetic pixels): images/s. Target ≥ 4,000 on an H100-class GPU;
3. `vit_b16`: the ViT-B/16 train step at 224², bfloat16, batch 128 (Adam): step time and MFU,
   the FLOPs from XLA's cost analysis of the compiled step. Target MFU ≥ 40 %;
4. `compile_cache`: the ResNet-50 step compiled in a fresh process into an empty persistent
   compilation cache, then in a second fresh process from it (what a resumed or repeated run
   pays; in-process, XLA's own autotuning results would stay warm);
5. `papers`: the train steps of the papers' main paper-scale configs in bfloat16 —
   BN-only ResNet-110 (CIFAR, batch 128), MoCo v2 ResNet-50 (two 224² views, queue 65,536,
   batch 256), Joslim MobileNetV2 (224², full + 2 sampled + smallest width, batch 256), the
   reservoir paper's IWSLT Transformer (64 sentences × 64 tokens) — in examples/s.

Every model row has: examples/s, step ms, compile s, XLA's FLOPs per step and the MFU they give
(`mfu`), the FLOPs of the step's convolutions and matmuls counted from their shapes
(lib.precision) and theirs (`matmul_mfu`: XLA's cost analysis counts a depthwise convolution's
weight gradient, a batch-grouped convolution, at several times its multiply-adds, so `mfu`
overstates MobileNets), the bfloat16 share of those matmul FLOPs, the step's device memory
from XLA's memory analysis (arguments + outputs + temporaries − donated aliases), and the
process's peak bytes in use so far (`process_peak_gib`: JAX never resets it, so it is the
largest step up to that row; 0 on the CPU, which keeps no such statistic). The peak is
measured, typically below the datasheet's (cuBLAS reaches about 75 % of it), so MFU here is
higher than against a datasheet peak; the report gives both where the device kind is known.
A section that fails (out of memory, a non-finite loss) reports its error and the rest go on;
the exit status is then 1. A section is skipped (and listed) when the time spent plus the
longest section so far would pass `--budget` seconds (360 by default, so that with start-up
the script stays within 8 minutes).

`--tiny` runs the same code at tiny shapes (32² images, narrow nets, the papers' `quick`
configs): a CPU smoke test of the script (tests/test_bench_gpu.py), not a measurement.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

from configs import base
from lib import bench, compile_cache, data, precision, train
from lib import config as config_lib

TARGETS = {"resnet50_images_per_s": 4000, "vit_b16_mfu": 0.40}
BUDGET_S = 360.0  # with start-up, the suite stays within 8 minutes
DATASHEET_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}  # dense, SXM
IMAGENET = data.DatasetInfo("synthetic_imagenet", (224, 224, 3), 1000, 1_281_167, 50_000)
TINY = data.DatasetInfo("synthetic_tiny", (32, 32, 3), 10, 1_000, 100)
TOKENS = data.DatasetInfo("synthetic_tokens", (), 0, 0, 0, keys=("inputs", "targets"),
                          vocab_size=10_000)  # the IWSLT config's BPE vocabulary


@dataclasses.dataclass(frozen=True)
class Case:
    """One train step to measure: a config (file and arg, or base) with overrides, the
    synthetic input it sees, the batch, and what one example is."""

    name: str
    info: data.DatasetInfo
    batch: int
    config_file: str = ""
    arg: str | None = None
    overrides: tuple = ()
    unit: str = "images"
    length: int = 0  # token rows: tokens per row

    def config(self):
        c = (config_lib.load_file(self.config_file, self.arg) if self.config_file
             else base.get_config())
        return config_lib.updated(c, {**dict(self.overrides), "model.dtype": "bfloat16",
                                      "data.batch_size": self.batch})

    def arrays(self, setup: train.Setup) -> dict:
        if self.length:
            return bench.token_batch(setup.info, self.batch, self.length)
        return bench.synthetic_batch(setup.info, self.batch)


def _resnet50(tiny: bool) -> Case:
    model = (("model.name", "imagenet_resnet"), ("model.depth", 18 if tiny else 50),
             ("model.width", 8 if tiny else 64))
    optim = (("optim.name", "sgd"), ("optim.momentum", 0.9), ("optim.lr", 0.1))
    return Case("resnet50", TINY if tiny else IMAGENET, 4 if tiny else 256,
                overrides=model + optim)


def _vit_b16(tiny: bool) -> Case:
    size = (("model.variant", ""), ("model.width", 64), ("model.depth", 2),
            ("model.num_heads", 2), ("model.mlp_dim", 128), ("model.patch_size", 8)) if tiny \
        else (("model.variant", "B"), ("model.patch_size", 16))
    return Case("vit_b16", TINY if tiny else IMAGENET, 4 if tiny else 128,
                overrides=(("model.name", "vit"), ("optim.name", "adam"), ("optim.lr", 1e-3),
                           *size))


def _papers(tiny: bool) -> list[Case]:
    """The papers' paper-scale configs (`quick` ones with --tiny) on synthetic inputs."""
    views = dataclasses.replace(TINY if tiny else IMAGENET, views=((2, 32 if tiny else 224),))
    arg = (lambda a: ",".join(filter(None, [a, "quick"]))) if tiny else (lambda a: a or None)
    return [
        Case("batchnorm_only resnet110 bn_only", TINY if tiny else bench.SYNTHETIC_CIFAR,
             32 if tiny else 128,
             "experiments/batchnorm_only/configs/cifar_resnet.py", arg("")),
        Case("background_aug mocov2 resnet50", views, 32 if tiny else 256,
             "experiments/background_aug/configs/imagenet.py", arg("method=mocov2"),
             overrides=(("ssl.queue_size", 64),) if tiny else (), unit="records"),
        Case("joslim mobilenet_v2", TINY if tiny else IMAGENET, 4 if tiny else 256,
             "experiments/joslim/configs/imagenet.py", arg("model=mobilenet_v2")),
        Case("reservoir iwslt transformer", TOKENS, 4 if tiny else 64,
             "experiments/reservoir/configs/iwslt.py", arg(""), unit="sentences",
             length=16 if tiny else 64),
    ]


def _flops(compiled) -> float | None:
    """XLA's FLOP estimate of a compiled step (a dict, or a list of one dict before jax 0.5);
    None where the backend gives none (some report -1)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    flops = float((cost or {}).get("flops", 0.0))
    return flops if flops > 0 else None


def _step_memory_gib(compiled) -> float:
    m = compiled.memory_analysis()
    if m is None:
        return 0.0
    used = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            - m.alias_size_in_bytes)
    return round(used / 2**30, 3)


def measure(case: Case, steps: int, peak_flops: float | None = None) -> dict:
    """Compile, one warm-up step (its loss is reported), then `steps` timed steps of `case`'s
    train step."""
    setup = train.build(case.config(), info=case.info)
    arrays = case.arrays(setup)
    matmuls = precision.matmul_flops(
        lambda s, b: train.train_step(setup, s, b), setup.init_state, arrays)
    compiled, state, device_batch, compile_s = bench.compiled_step(setup, case.batch, arrays)
    timed = bench.losses_then_timed(compiled, state, device_batch, 1, steps)
    seconds = timed["seconds"] / steps
    flops = _flops(compiled)
    row = {"name": case.name, "batch": case.batch, "unit": case.unit,
           "input": list(case.info.image_shape) or [case.length],
           f"{case.unit}_per_s": round(case.batch / seconds, 1),
           "step_ms": round(1000 * seconds, 2), "compile_s": round(compile_s, 2),
           "xla_flops_per_step": flops, "matmul_flops_per_step": sum(matmuls.values()),
           "bf16_matmul_share": round(precision.share(matmuls), 4),
           "step_memory_gib": _step_memory_gib(compiled),
           "process_peak_gib": timed["peak_memory_gib"], "loss": timed["losses"][0]}
    if case.length:
        row["tokens_per_s"] = round(case.batch * case.length / seconds, 1)
    if peak_flops:
        row["mfu"] = round(flops / seconds / peak_flops, 4) if flops else None
        row["matmul_mfu"] = round(sum(matmuls.values()) / seconds / peak_flops, 4)
    if not math.isfinite(row["loss"]):
        raise FloatingPointError(f"{case.name}: the loss is not finite in bfloat16")
    return row


def peak_matmul(n: int, calls: int = 10, rounds: int = 3) -> dict:
    """The device's bfloat16 matmul FLOP/s: `calls` n×n×n products queued back to back and
    waited for once (so dispatch and the wait do not count per call), best of `rounds`."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
    matmul = jax.jit(lambda a, b: a @ b)
    jax.block_until_ready(matmul(a, b))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        jax.block_until_ready([matmul(a, b) for _ in range(calls)])
        best = min(best, (time.perf_counter() - t0) / calls)
    out = {"n": n, "bf16_tflops": round(2 * n**3 / best / 1e12, 2), "flops": 2 * n**3 / best}
    kind = jax.devices()[0].device_kind
    sheet = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in kind), None)
    if sheet:
        out["of_datasheet"] = round(out["bf16_tflops"] / sheet, 3)
    return out


def compile_worker(spec: str) -> None:
    """In a fresh process (`lib.bench --compile_worker TINY,CACHE_DIR`): the ResNet-50 step's
    lowering and compilation with the persistent cache at CACHE_DIR, as JSON."""
    tiny, cache = spec.split(",", 1)
    case = _resnet50(tiny == "1")
    compile_cache.enable(cache, cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    setup = train.build(case.config(), info=case.info)
    with compile_cache.Hits() as hits:
        seconds = bench.compiled_step(setup, case.batch, case.arrays(setup))[3]
    print(json.dumps({"compile_s": seconds, "hits": hits.count}))


def cold_and_cached_compile(tiny: bool) -> dict:
    """The ResNet-50 step compiled in a fresh process into an empty persistent cache, then in
    a second fresh process from it."""
    runs = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(2):
            out = subprocess.run([sys.executable, "-m", "lib.bench", "--compile_worker",
                                  f"{int(tiny)},{cache}"], check=True, text=True,
                                 stdout=subprocess.PIPE)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold, cached = (r["compile_s"] for r in runs)
    return {"name": "resnet50", "cold_s": round(cold, 2), "cached_s": round(cached, 2),
            "cache_hits": [r["hits"] for r in runs], "saving": round(1 - cached / cold, 3)}


def run(tiny: bool = False, budget_s: float = BUDGET_S, steps: int = 20) -> dict:
    """The whole suite; prints a JSON line per section and returns the report."""
    t0 = time.perf_counter()
    device = jax.devices()[0]
    report = {"device": device.device_kind, "platform": device.platform,
              "devices": jax.device_count(), "jax": jax.__version__, "tiny": tiny,
              "steps": steps, "budget_s": budget_s, "skipped": []}
    peak = {}
    sections = [
        ("peak", lambda: peak.update(peak_matmul(256 if tiny else 8192)) or peak),
        ("resnet50", lambda: measure(_resnet50(tiny), steps, peak.get("flops"))),
        ("vit_b16", lambda: measure(_vit_b16(tiny), steps, peak.get("flops"))),
        ("compile_cache", lambda: cold_and_cached_compile(tiny)),
        *((f"papers/{case.name}", lambda case=case: measure(case, steps, peak.get("flops")))
          for case in _papers(tiny)),
    ]
    longest = 0.0
    for name, section in sections:
        elapsed = time.perf_counter() - t0
        if elapsed + longest > budget_s:
            report["skipped"].append(name)
            continue
        bench.say(f"[{elapsed:5.0f} s] {name} …")
        try:
            result = section()
        except Exception as e:  # noqa: BLE001 (an OOM or a bad step ends that section only)
            first_line = (str(e).splitlines() or [""])[0]
            result = {"error": f"{type(e).__name__}: {first_line[:300]}"}
        longest = max(longest, time.perf_counter() - t0 - elapsed)
        group, _, key = name.partition("/")
        if key:
            report.setdefault(group, {})[key] = result
        else:
            report[name] = result
        print(json.dumps({name: result}), flush=True)
    report["targets"] = _targets(report)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def _targets(report: dict) -> dict:
    measured = {"resnet50_images_per_s": report.get("resnet50", {}).get("images_per_s"),
                "vit_b16_mfu": report.get("vit_b16", {}).get("mfu")}
    return {k: {"target": TARGETS[k], "measured": v, "met": None if v is None or report["tiny"]
                else bool(v >= TARGETS[k])} for k, v in measured.items()}


def errors(report: dict) -> list[str]:
    """The sections that failed."""
    rows = {k: v for k, v in report.items() if isinstance(v, dict) and k != "targets"}
    rows.update({f"papers/{k}": v for k, v in report.get("papers", {}).items()})
    return [k for k, v in rows.items() if "error" in v]


def main(tiny: bool, budget_s: float, steps: int) -> None:
    report = run(tiny, budget_s, steps)
    print(json.dumps(report, indent=2))
    if failed := errors(report):
        print(f"error: sections failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
