"""lib.bench_input: the JPEG records, their source in the real pipeline, and the benchmark's
arithmetic and plumbing (its measurements are never asserted against targets here)."""

import io
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from array_record.python import array_record_data_source
from PIL import Image

from lib import bench_input, data
from lib.data.errors import DatasetNotFoundError

RECORDS = 12


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpeg_records")
    bench_input.write_jpeg_records(bench_input.split_path(folder, "train"), RECORDS)
    return folder


def _raw(path) -> list[bytes]:
    source = array_record_data_source.ArrayRecordDataSource(str(path))
    return [source[i] for i in range(len(source))]


def test_records_are_labelled_photo_sized_jpegs(tmp_path):
    path = tmp_path / "train.array_record"
    stats = bench_input.write_jpeg_records(path, 8, classes=3, seed=5)
    raws = _raw(path)
    assert len(raws) == stats["records"] == 8
    jpegs = [raw[4:] for raw in raws]
    for jpeg in jpegs:
        assert jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9"  # JPEG start / end
        with Image.open(io.BytesIO(jpeg)) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (400, 350))
    mean_kb = np.mean([len(j) for j in jpegs]) / 1000
    assert stats["mean_kb"] == pytest.approx(mean_kb, abs=0.05)
    assert 60 <= mean_kb <= 150  # like ImageNet's photographs: neither noise nor flat colour
    labels = [int.from_bytes(raw[:4], "little") for raw in raws]
    assert set(labels) <= {0, 1, 2}

    records = bench_input.JpegRecords(path)
    record = records[3]
    assert record["image"].shape == (350, 400, 3) and record["image"].dtype == np.uint8
    assert record["label"] == labels[3]
    np.testing.assert_array_equal(records.all_labels(), labels)
    assert records.subset(np.array([3]))[0]["label"] == labels[3]
    assert bench_input.record_stats(path) == {k: stats[k] for k in bench_input.record_stats(path)}
    again = tmp_path / "again.array_record"
    bench_input.write_jpeg_records(again, 8, classes=3, seed=5)
    assert _raw(again) == raws  # a record depends only on (seed, index)


def test_source_feeds_the_train_iterator(data_dir):
    config = bench_input.bench_config(data_dir, workers=0, batch=4, image_size=32)
    info = data.get_info(config.data)
    assert (info.image_shape, info.num_classes, info.num_train) == ((32, 32, 3), 1000, RECORDS)
    it = data.train_iterator(config.data, seed=0)
    try:
        batch = next(it)
    finally:
        it.close()
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (4,) and batch["label"].dtype == np.int32
    assert np.all((batch["label"] >= 0) & (batch["label"] < 1000))
    assert np.all(np.isfinite(batch["image"])) and batch["image"].std() > 0.1  # normalised


def test_missing_records_name_the_command_that_writes_them(tmp_path):
    config = bench_input.bench_config(tmp_path, workers=0, batch=4)
    with pytest.raises(DatasetNotFoundError) as e:
        data.get_info(config.data)
    assert f"python -m lib.bench_input --data-dir={tmp_path} --write-only" in str(e.value)
    assert "train.array_record does not exist" in str(e.value)
    config.data.data_dir = ""
    with pytest.raises(DatasetNotFoundError, match="set data.data_dir"):
        data.get_info(config.data)


def test_workers_needed():
    assert bench_input.workers_needed(300, 4000) == 17  # 4000 × 1.25 / 300 = 16.7
    assert bench_input.workers_needed(400, 4000, headroom=1.0) == 10  # exactly 10: no rounding up
    assert bench_input.workers_needed(250, 1000, headroom=1.5) == 6
    with pytest.raises(ValueError):
        bench_input.workers_needed(0, 4000)


def test_pipeline_throughput_with_a_worker_process(data_dir):
    result = bench_input.pipeline_throughput(data_dir, workers=1, batch=4, image_size=32,
                                             batches=2, warmup=1)
    assert {"workers", "images_per_s", "images_per_s_per_worker", "cores_used",
            "images_per_cpu_s", "warmup_s"} <= set(result)
    assert result["images_per_s"] > 0 and result["images_per_s_per_worker"] > 0
    assert result["images_per_cpu_s"] is None or result["images_per_cpu_s"] > 0


def test_idle_share_of_a_tiny_model(data_dir):
    """A measurement, so only a loose sanity bound: the trainer loop (which waits for JPEG
    decoding at 16 px, where the model's step is cheap) takes longer than the bare loop."""
    result = bench_input.idle_share(
        data_dir, model={"name": "cifar_resnet", "depth": 8, "width": 4}, batch=8,
        image_size=16, workers=1, steps=3, warmup=2, rounds=1)
    assert 0 <= result["idle_share"] < 1
    assert result["trainer_step_ms"] >= result["bare_step_ms"] > 0


def test_cli_writes_then_reuses_the_records(tmp_path, monkeypatch, capsys):
    argv = ["lib.bench_input", "--data-dir", str(tmp_path), "--records", "3", "--write-only"]
    monkeypatch.setattr(sys, "argv", argv)
    lines = []
    for _ in range(2):
        bench_input.main()
        lines.append(json.loads(capsys.readouterr().out.strip()))
    assert [line["reused"] for line in lines] == [False, True]
    assert lines[0]["records"] == 3 and lines[0]["bench"] == "records"


@pytest.mark.parametrize("args, message", [
    (["--records", "0"], "--records=0"),
    (["--workers", "a"], "--workers='a'"),
    (["--device-rate", "0"], "--device-rate=0.0"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    out = subprocess.run([sys.executable, "-m", "lib.bench_input", *args],
                         cwd=pathlib.Path(__file__).parents[1], capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
