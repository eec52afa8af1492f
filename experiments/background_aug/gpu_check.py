"""One-GPU check of the paper-scale MoCo v2 step: ResNet-50, bfloat16, batch 256, two 224²
views per image with the MoCo v2 colour recipe on device, the 65,536-key queue and BatchNorm
over groups of 32 (configs/imagenet.py:method=mocov2), on synthetic pixels.

    python -m experiments.background_aug.gpu_check [--steps 20] [--batch 256]

Prints JSON, for bfloat16 and float32 alike: records/s and ms per step, compile seconds, peak
device memory, and the loss of the first COMPARED steps from the same parameters and batch.
The loss is 0 while the queue is empty (step 0), so the two precisions are compared by the
largest relative difference over steps 1 to COMPARED − 1. Exits 1 if a loss is not finite.
Meant for a GPU. It runs on a CPU too, slowly (minutes): `--batch 32 --steps 1` as a smoke run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import numpy as np

from lib import bench, data, train
from lib import config as config_lib

CONFIG = pathlib.Path(__file__).parent / "configs" / "imagenet.py"
COMPARED = 5
IMAGENET = data.DatasetInfo("synthetic_imagenet", (224, 224, 3), 1000, 1_281_167, 50_000,
                            views=((2, 224),))


def measure(dtype: str, batch: int, steps: int) -> dict:
    """Compile, the first COMPARED losses, then `steps` timed steps."""
    config = config_lib.load_file(CONFIG, f"method=mocov2,batch={batch}")
    config.model.dtype = dtype
    config.ssl.queue_size = max(batch, config.ssl.queue_size // batch * batch)
    compiled, state, device_batch, compile_s = bench.compiled_step(
        train.build(config, info=IMAGENET), batch)
    m = bench.losses_then_timed(compiled, state, device_batch, COMPARED, steps)
    return {"dtype": dtype, "records_per_s": round(batch * steps / m["seconds"], 1),
            "step_ms": round(1000 * m["seconds"] / steps, 2), "compile_s": round(compile_s, 1),
            "peak_memory_gib": m["peak_memory_gib"], "losses": m["losses"]}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.background_aug.gpu_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per precision")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 32 or args.batch % 32:
        parser.error(f"--steps={args.steps} must be ≥ 1 and --batch={args.batch} a multiple "
                     "of 32 (BatchNorm groups of 32)")
    runs = [measure(dtype, args.batch, args.steps) for dtype in ("bfloat16", "float32")]
    bf16, f32 = (np.array(r["losses"]) for r in runs)
    report = {"device": jax.devices()[0].device_kind, "batch": args.batch, "runs": runs,
              "bf16_vs_f32_max_relative_loss_difference": float(np.max(
                  np.abs(bf16[1:] - f32[1:]) / np.maximum(np.abs(f32[1:]), 1e-12)))}
    print(json.dumps(report, indent=2))
    if not (np.all(np.isfinite(bf16)) and np.all(np.isfinite(f32))):
        print("error: a loss is not finite", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
