"""One-GPU check of the paper-scale IWSLT step (configs/iwslt.py): d 512, FFN 1024, 4 heads,
a 2-layer decoder, batches of 64 × 64 tokens (about fairseq's 4,096), on synthetic tokens.

    python -m experiments.reservoir.gpu_check [--steps 30] [--batch 64] [--length 64]

For each encoder — the regular 6-layer one, and 11 layers with 5 FFN or T reservoirs (6
updatable, alternating), the FFN one also backskipped — in bfloat16 and float32: target
tokens/s and ms per step, compile seconds, peak device memory;
then each reservoir encoder's step time against the regular one's (the paper's wall-clock
saving comes from such steps) and the largest relative bf16-vs-f32 loss difference over the
first COMPARED steps from the same parameters and batch. Prints JSON; exits 1 if a loss is
not finite. Meant for a GPU; on a CPU `--batch 8 --length 16 --steps 1` is a smoke run.
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

CONFIG = pathlib.Path(__file__).parent / "configs" / "iwslt.py"
ENCODERS = {"regular 6": "encoder=LLLLLL", "FFN 11 (6 updatable)": "layers=11,reservoirs=5",
            "T 11 (6 updatable)": "layers=11,reservoirs=5,type=T",
            "FFN 11 backskipped": "layers=11,reservoirs=5,backskip=identity"}
COMPARED = 5
TOKENS = data.DatasetInfo("synthetic_tokens", (), 0, 0, 0, keys=("inputs", "targets"),
                          vocab_size=10_000)  # the IWSLT config's BPE vocabulary


def setup(arg: str, dtype: str, length: int) -> train.Setup:
    config = config_lib.load_file(CONFIG, arg)
    config.model.dtype = dtype
    config.data.max_length = length
    return train.build(config, info=TOKENS)


def measure(name: str, arg: str, dtype: str, batch: int, length: int, steps: int) -> dict:
    s = setup(arg, dtype, length)
    arrays = bench.token_batch(s.info, batch, length)
    compiled, state, device_batch, compile_s = bench.compiled_step(s, batch, arrays)
    m = bench.losses_then_timed(compiled, state, device_batch, COMPARED, steps)
    return {"encoder": name, "dtype": dtype, "trainable_params": s.trainable.count(
                s.param_shapes()),
            "target_tokens_per_s": round(batch * length * steps / m["seconds"], 1),
            "step_ms": round(1000 * m["seconds"] / steps, 2), "compile_s": round(compile_s, 1),
            "peak_memory_gib": m["peak_memory_gib"], "losses": m["losses"]}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.reservoir.gpu_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=64, help="tokens per row")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.length < 2:
        parser.error("--steps and --batch must be ≥ 1, --length ≥ 2")
    runs = [measure(n, a, d, args.batch, args.length, args.steps)
            for d in ("bfloat16", "float32") for n, a in ENCODERS.items()]
    by = {(r["encoder"], r["dtype"]): r for r in runs}
    regular = "regular 6"
    report = {
        "device": jax.devices()[0].device_kind, "batch": args.batch, "length": args.length,
        "runs": runs,
        "step_time_vs_regular": {f"{n} {d}": round(by[n, d]["step_ms"]
                                                   / by[regular, d]["step_ms"], 3)
                                 for n in ENCODERS for d in ("bfloat16", "float32")
                                 if n != regular},
        "bf16_vs_f32_max_relative_loss_difference": {n: float(np.max(
            np.abs(np.subtract(by[n, "bfloat16"]["losses"], by[n, "float32"]["losses"]))
            / np.abs(by[n, "float32"]["losses"]))) for n in ENCODERS},
    }
    print(json.dumps(report, indent=2))
    if not all(np.all(np.isfinite(r["losses"])) for r in runs):
        print("error: a loss is not finite", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
