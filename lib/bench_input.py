"""Input-pipeline benchmark (issue 20): the Grain pipeline on ImageNet-style JPEG records.

    python -m lib.bench_input [--records 512] [--workers 0,1,2] [--batch 256] [--batches 4]
                              [--device-rate 4000] [--idle-model tiny|resnet50|none]
                              [--idle-workers W] [--idle-steps N] [--data-dir DIR] [--write-only]

1. writes (or reuses) an ArrayRecord file of real JPEGs at 400×350 that compress like photographs
   (`write_jpeg_records`), read by the project's own pipeline through `source`;
2. times `lib.data.pipeline.train_iterator` on them (decode, inception crop to 224, flip,
   normalise, batch) per worker count: images/s, images/s per worker and per CPU-second;
3. prints the workers needed to feed a device at --device-rate images/s (`workers_needed`);
4. measures the device's idle share in a real `lib.train.run` (`idle_share`): ResNet-50 bf16 at
   224, batch 256, 15 workers on a GPU host (the issue's target: idle < 5 % with 16 host cores),
   a tiny CIFAR ResNet at 64 px with 1 worker on a CPU.

Output: one JSON line per measurement on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import pathlib
import struct
import tempfile
import time

import jax
import numpy as np
from array_record.python import array_record_data_source, array_record_module
from PIL import Image, ImageDraw

from configs import base, common
from lib import bench, data, metrics, precision, train
from lib import config as config_lib
from lib import task as task_lib
from lib.data import records as records_lib
from lib.data.errors import DatasetNotFoundError

NUM_CLASSES = 1000  # the source's label space (ImageNet's); records hold labels below it
_LABEL = struct.Struct("<I")  # a record: the label as 4-byte little-endian uint32, then the JPEG
HEADROOM = 1.25  # workers_needed feeds 25 % more than the device takes (see there)
TIME_KEY = "bench/host_seconds"  # TimedClassification's mark in metrics.jsonl
_WRITE = "python -m lib.bench_input --data-dir={} --write-only"


def _field(rng: np.random.Generator, cells: int, width: int, height: int, channels: int
           ) -> np.ndarray:
    """Uniform noise on a grid `cells` wide, upsampled bicubically to width × height."""
    shape = (max(2, round(cells * height / width)), cells) + ((channels,) if channels > 1 else ())
    small = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    return np.asarray(small.resize((width, height), Image.BICUBIC))


# Grey texture at three scales (grid cells across the width, amplitude in pixel levels): with
# the per-image gain below, the JPEGs at quality 90 average about 100 kB (80-115 kB), as
# ImageNet's do (about 110 kB at this size)
_TEXTURE = ((40, 100), (120, 160), (300, 200))
_NOISE = 8  # ± pixel levels of per-pixel sensor noise


def photo(rng: np.random.Generator, width: int = 400, height: int = 350) -> np.ndarray:
    """[height, width, 3] uint8 pixels with a photograph's mix of content: smooth colour fields,
    filled shapes and lines (edges), texture whose strength varies over the image and between
    images, and mild noise. Pure noise would make 3× larger, slower JPEGs, flat colour tiny
    ones; either would misstate the decode cost."""
    img = Image.blend(Image.fromarray(_field(rng, 3, width, height, 3)),
                      Image.fromarray(_field(rng, 12, width, height, 3)), 0.35)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = (x0, y0, x0 + int(rng.integers(10, width // 2)),
               y0 + int(rng.integers(10, height // 2)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.line(box, fill=colour, width=int(rng.integers(1, 6)))
    texture = np.zeros((height, width), np.int32)
    for cells, amplitude in _TEXTURE:
        texture += (_field(rng, cells, width, height, 1).astype(np.int32) - 128) * amplitude // 128
    gain = int(rng.integers(96, 256))  # out of 256: how textured this image is
    strength = _field(rng, 4, width, height, 1).astype(np.int32) // 2 + 128  # 128..255 in places
    texture = texture * strength // 256 * gain // 256
    pixels = np.asarray(img, np.int16) + texture.astype(np.int16)[..., None]
    pixels += rng.integers(-_NOISE, _NOISE + 1, pixels.shape, dtype=np.int16)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _size_stats(path, sizes: list[int], width: int, height: int) -> dict:
    kb = np.asarray(sizes) / 1000
    return {"path": str(path), "records": len(sizes), "width": width, "height": height,
            "mean_kb": round(float(kb.mean()), 1), "min_kb": round(float(kb.min()), 1),
            "max_kb": round(float(kb.max()), 1)}


def write_jpeg_records(path, count: int, *, size=(400, 350), quality: int = 90, seed: int = 0,
                       classes: int = NUM_CLASSES, progress: bool = False) -> dict:
    """Writes `count` records to the ArrayRecord file `path` (group size 1, for random access):
    each a uniform label in [0, classes) as 4-byte little-endian uint32, then a JPEG of a
    `photo` of size (width, height). Image i depends only on (seed, i). Returns the file's
    statistics (sizes in kB of 1000 bytes) and the writing time."""
    width, height = size
    if not 0 < classes <= NUM_CLASSES:
        raise ValueError(f"classes={classes}: the source declares {NUM_CLASSES} classes")
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = array_record_module.ArrayRecordWriter(str(path), "group_size:1")
    sizes, t0, shown = [], time.perf_counter(), time.perf_counter()
    try:
        for i in range(count):
            rng = np.random.default_rng([seed, i])
            label = int(rng.integers(classes))
            out = io.BytesIO()
            Image.fromarray(photo(rng, width, height)).save(out, "JPEG", quality=quality)
            sizes.append(out.tell())
            writer.write(_LABEL.pack(label) + out.getvalue())
            if progress and time.perf_counter() - shown > 2:
                bench.say(f"wrote {i + 1}/{count} JPEG records to {path}")
                shown = time.perf_counter()
    finally:
        writer.close()
    seconds = time.perf_counter() - t0
    return {**_size_stats(path, sizes, width, height), "quality": quality,
            "ms_per_image": round(1000 * seconds / max(count, 1), 2)}


def _label(raw: bytes) -> int:
    return _LABEL.unpack_from(raw)[0]


class JpegRecords:
    """Records of a `write_jpeg_records` file, the JPEG decoded with PIL on access (as
    lib.data.tiny_imagenet's files). Picklable: Grain's worker processes reopen the file."""

    def __init__(self, path, indices: np.ndarray | None = None):
        self.path = str(path)
        self._source = array_record_data_source.ArrayRecordDataSource(self.path)
        self._indices = np.arange(len(self._source)) if indices is None else indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> dict:
        raw = self._source[int(self._indices[index])]
        with Image.open(io.BytesIO(raw[_LABEL.size:])) as image:
            pixels = np.asarray(image.convert("RGB"), np.uint8)
        return {"image": pixels, "label": np.int32(_label(raw))}

    def all_labels(self) -> np.ndarray:
        """Reads every record (no decoding)."""
        return np.array([_label(self._source[int(i)]) for i in self._indices], np.int32)

    def stats_images(self):
        return records_lib.spaced_images(self)

    def subset(self, indices: np.ndarray) -> JpegRecords:
        return JpegRecords(self.path, self._indices[indices])


def split_path(data_dir, split: str) -> pathlib.Path:
    return pathlib.Path(data_dir).expanduser() / f"{split}.array_record"


def record_stats(path) -> dict:
    """`write_jpeg_records`' statistics of an existing file (reads every record)."""
    raws = array_record_data_source.ArrayRecordDataSource(str(path))
    height, width, _ = JpegRecords(path)[0]["image"].shape
    return _size_stats(path, [len(raw) - _LABEL.size for raw in raws], width, height)


def source(data_cfg, split: str) -> records_lib.Split:
    """data.name = "lib.bench_input:source": split S is <data.data_dir>/S.array_record (the CLI
    writes 'train'). One size for all images, read off the first record."""
    if not data_cfg.data_dir:
        raise DatasetNotFoundError(
            "lib.bench_input:source reads <data.data_dir>/<split>.array_record: set "
            f"data.data_dir to a folder written by `{_WRITE.format('DIR')}`")
    path = split_path(data_cfg.data_dir, split)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path} does not exist: `{_WRITE.format(data_cfg.data_dir)}` writes the split "
            "'train' of generated JPEG records there (--records N sets their number)")
    records = JpegRecords(path)
    return records_lib.Split("", records, records[0]["image"].shape, NUM_CLASSES, 255.0,
                             f"{path} (generated JPEG records)")


def bench_config(data_dir, *, workers: int, batch: int, image_size: int = 224):
    """The ImageNet recipe (configs.common.lth_imagenet: inception crop + flip to
    `image_size`, ImageNet normalisation, its SGD) on the JPEG records; evaluation reads one
    batch of the train split (uniformly drawn: no label pass)."""
    c = base.get_config()
    common.lth_imagenet(c)
    return config_lib.updated(c, {
        "data.name": "lib.bench_input:source", "data.data_dir": str(data_dir),
        "data.image_size": image_size, "data.batch_size": batch, "data.eval_batch_size": batch,
        "data.num_workers": workers, "data.eval_split": "train", "data.eval_examples": batch,
        "data.subset_mode": "uniform"})


def _cpu_seconds() -> float | None:
    """User + system CPU seconds of this process and its live descendants (Grain's workers),
    from /proc; None where there is no /proc."""
    if not os.path.isdir("/proc"):
        return None
    parents, ticks = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()  # after the command name
        except OSError:  # exited meanwhile
            continue
        pid = int(entry.name)
        parents[pid], ticks[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    tree, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def pipeline_throughput(data_dir, *, workers: int, batch: int = 256, image_size: int = 224,
                        batches: int = 4, warmup: int | None = None, seed: int = 0) -> dict:
    """Images/s of the project's train iterator on the records in `data_dir` with `workers`
    Grain worker processes (0: in this process, counted as one worker).

    The first `warmup` batches are not timed (default 2·workers + 2): they include the
    workers' start-up, and the batches every worker made in parallel meanwhile would flatter
    the rate. `images_per_cpu_s` counts the CPU time of this process and its workers over the
    timed batches: what one fully used core delivers, the number that sizes a host (a worker
    runs `data.prefetch` threads, so on an idle machine it may use more than one core)."""
    config = bench_config(data_dir, workers=workers, batch=batch, image_size=image_size)
    warmup = 2 * workers + 2 if warmup is None else warmup
    t0 = time.perf_counter()
    it = data.train_iterator(config.data, seed=seed)
    try:
        for _ in range(warmup):
            next(it)
        startup = time.perf_counter() - t0
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        for _ in range(batches):
            next(it)
        elapsed = time.perf_counter() - t0
        cpu1 = _cpu_seconds()
    finally:
        it.close()
    images = batches * batch
    out = {"workers": workers, "batch": batch, "image_size": image_size,
           "warmup_batches": warmup, "timed_batches": batches,
           "warmup_s": round(startup, 2), "images_per_s": round(images / elapsed, 1),
           "images_per_s_per_worker": round(images / elapsed / max(workers, 1), 1)}
    if cpu0 is not None:
        cpu = cpu1 - cpu0
        out["cores_used"] = round(cpu / elapsed, 2)
        out["images_per_cpu_s"] = round(images / cpu, 1) if cpu > 0 else None
    return out


def workers_needed(rate_per_worker: float, device_rate: float, headroom: float = HEADROOM
                   ) -> int:
    """Workers that feed a device taking `device_rate` images/s: ceil(device_rate × headroom /
    rate_per_worker). The 25 % headroom covers what a steady-state rate leaves out: real
    ImageNet images vary in size (the decode cost with them), the training process needs
    host time of its own (batch assembly, transfer), and shared hosts are noisy."""
    if rate_per_worker <= 0 or device_rate <= 0 or headroom < 1:
        raise ValueError(f"workers_needed({rate_per_worker}, {device_rate}, {headroom}): rates "
                         "must be positive and headroom at least 1")
    return math.ceil(device_rate * headroom / rate_per_worker)


class TimedClassification(task_lib.Classification):
    """Classification that logs the host clock (TIME_KEY) at every log step and the last one.
    Its hook runs after the loop has fetched that step's metrics and waited for the state, a
    sync the loop makes there anyway, so the marks time the real loop without changing it."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self._every, self._last = config.log_every, config.total_steps

    def hook_due(self, step: int) -> bool:
        return step > 0 and (step % self._every == 0 or step == self._last)

    def hook(self, trainer, state, step):
        del trainer, step
        return state, {TIME_KEY: time.perf_counter()}


MODELS = {  # --idle-model presets: config.model keys, batch, image size, workers, timed steps
    "resnet50": ({"name": "imagenet_resnet", "depth": 50, "width": 64, "dtype": "bfloat16"},
                 256, 224, 15, 100),
    "tiny": ({"name": "cifar_resnet", "depth": 8, "width": 16}, 16, 64, 1, 10),
}


def idle_share(data_dir, *, model: dict, batch: int, image_size: int, workers: int,
               steps: int, warmup: int | None = None, rounds: int = 3) -> dict:
    """The device's idle share in `lib.train.run` on the JPEG records: 1 − (bare loop time) /
    (trainer loop time) over `steps` steps, as lib.bench.trainer_overhead measures it.

    The bare loop is lib.bench's: the same train step compiled alone, over one synthetic batch
    already on the device (median of `rounds`). The trainer's time runs from step `warmup` to
    the last step (TimedClassification's marks; log_every = warmup); compile time and the
    first `warmup` steps are left out: the worker buffers filled during compilation would
    flatter them (default warmup 2·(workers + 1)·data.prefetch, which drains them). One
    device (mesh.data = 1, the bare loop's default device): the idle share of one accelerator.
    On a CPU the "device" shares its cores with the workers, so there it measures contention."""
    config = bench_config(data_dir, workers=workers, batch=batch, image_size=image_size)
    warmup = 2 * (workers + 1) * config.data.prefetch if warmup is None else warmup
    if warmup < 1 or steps < 1:
        raise ValueError(f"idle_share: warmup={warmup} and steps={steps} must be >= 1")
    config = config_lib.updated(config, {
        **{f"model.{k}": v for k, v in model.items()},
        "task": "lib.bench_input:TimedClassification", "total_steps": warmup + steps,
        "log_every": warmup, "eval_every": 0, "checkpoint_every": 0, "progress": False,
        "mesh.data": 1, "compile_cache": "off"})  # no .jax_cache beside the temporary workdir
    runner = bench._jax_runner(train.build(config), batch)
    bare_s = bench._alternate({"bare": runner}, steps, rounds)[0]
    del runner  # its train state leaves the device before the run's
    with tempfile.TemporaryDirectory() as workdir:
        train.run(config, workdir)
        marks = {row["step"]: row[TIME_KEY] for row in metrics.read(workdir) if TIME_KEY in row}
    trainer_s = marks[warmup + steps] - marks[warmup]
    return {"model": model, "batch": batch, "image_size": image_size, "workers": workers,
            "warmup_steps": warmup, "timed_steps": steps, "rounds": rounds,
            "bare_step_ms": round(1000 * bare_s / steps, 2),
            "trainer_step_ms": round(1000 * trainer_s / steps, 2),
            "bare_images_per_s": round(batch * steps / bare_s, 1),
            "trainer_images_per_s": round(batch * steps / trainer_s, 1),
            "idle_share": round(1 - bare_s / trainer_s, 4), "target": 0.05,
            "device": jax.devices()[0].device_kind}


def _records(data_dir: pathlib.Path, count: int) -> dict:
    """The train split's statistics, writing it unless a file of `count` records is there."""
    path = split_path(data_dir, "train")
    if path.is_file():
        stats = record_stats(path)
        if stats["records"] == count:
            bench.say(f"reusing {path}")
            return {**stats, "reused": True}
        bench.say(f"{path} holds {stats['records']} records, not {count}: rewriting it")
    bench.say(f"writing {count} JPEG records to {path}")
    return {**write_jpeg_records(path, count, progress=True), "reused": False}


def _report(name: str, values: dict) -> None:
    print(json.dumps({"bench": name, **values}), flush=True)


def _run(args, data_dir: pathlib.Path) -> None:
    _report("records", _records(data_dir, args.records))
    if args.write_only:
        return
    rates = []
    for workers in args.workers:
        bench.say(f"timing the pipeline with {workers} worker(s)")
        result = pipeline_throughput(data_dir, workers=workers, batch=args.batch,
                                     batches=args.batches)
        _report("pipeline", result)
        rates.append(result.get("images_per_cpu_s") or result["images_per_s_per_worker"])
    if rates:
        _report("workers_needed", {
            "device_rate": args.device_rate, "headroom": HEADROOM,
            "rate_per_worker": rates[-1],
            "workers": workers_needed(rates[-1], args.device_rate),
            "rate_per_worker_from": f"images_per_cpu_s (else per worker) at {args.workers[-1]} "
                                    "worker(s): one worker keeps one core busy",
            "device_rate_from": "--device-rate: issue 20's ResNet-50 target for one GPU; the "
                                "measured rate is idle_share's bare_images_per_s on that GPU "
                                "(--idle-model resnet50)"})
    if args.idle_model != "none":
        model, batch, size, preset_workers, steps = MODELS[args.idle_model]
        workers = preset_workers if args.idle_workers is None else args.idle_workers
        bench.say(f"idle share: {args.idle_model}, batch {batch}, {workers} worker(s), compiling")
        idle = idle_share(data_dir, model=model, batch=batch, image_size=size, workers=workers,
                          steps=args.idle_steps or steps)
        _report("idle_share", idle)
        if rates:
            _report("workers_needed", {
                "device_rate": idle["bare_images_per_s"], "headroom": HEADROOM,
                "rate_per_worker": rates[-1],
                "workers": workers_needed(rates[-1], idle["bare_images_per_s"]),
                "device_rate_from": f"idle_share's bare loop ({args.idle_model}, "
                                    f"{idle['device']})"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=512, help="JPEG records to write")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--batch", type=int, default=256, help="pipeline batch")
    parser.add_argument("--batches", type=int, default=4, help="timed batches per worker count")
    parser.add_argument("--device-rate", type=float, default=4000.0,
                        help="images/s the device takes (ResNet-50 bf16 on one GPU: 4000)")
    parser.add_argument("--idle-model", choices=[*MODELS, "none"], default=None,
                        help="model of the idle-share run (default: resnet50 on an "
                             "accelerator, tiny on a CPU)")
    parser.add_argument("--idle-workers", type=int, default=None,
                        help="workers of the idle-share run (default: the model's preset)")
    parser.add_argument("--idle-steps", type=int, default=0,
                        help="timed steps of the idle-share run (default: the model's preset)")
    parser.add_argument("--data-dir", default="",
                        help="folder of train.array_record (default: a temporary one)")
    parser.add_argument("--write-only", action="store_true", help="write the records and stop")
    args = parser.parse_args()
    precision.guard_cpu_bfloat16("bfloat16")  # the resnet50 preset; before the backend starts
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w]
    except ValueError:
        parser.error(f"--workers={args.workers!r}: comma-separated integers, e.g. 0,1,2")
    positive = {"--records": args.records, "--batch": args.batch, "--batches": args.batches,
                "--device-rate": args.device_rate}
    bad = [f"{k}={v}" for k, v in positive.items() if v <= 0]
    bad += [f"--workers {w}" for w in args.workers if w < 0]
    bad += [f"--idle-steps={args.idle_steps}"] * (args.idle_steps < 0)
    bad += [f"--idle-workers={args.idle_workers}"] * ((args.idle_workers or 0) < 0)
    if bad or not args.workers:
        parser.error(f"{', '.join(bad) or '--workers is empty'}: counts and rates must be "
                     "positive (worker counts ≥ 0)")
    if args.idle_model is None:
        args.idle_model = "tiny" if jax.default_backend() == "cpu" else "resnet50"
    metrics.quiet_library_logs()
    if args.data_dir:
        return _run(args, pathlib.Path(args.data_dir))
    if args.write_only:
        parser.error("--write-only needs --data-dir")
    with tempfile.TemporaryDirectory() as tmp:
        _run(args, pathlib.Path(tmp))


if __name__ == "__main__":
    main()
