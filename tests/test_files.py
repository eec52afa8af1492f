"""Path handling for local and gs:// workdirs, and atomic writes."""

import os

from lib import files


def test_as_path_keeps_object_store_paths():
    assert str(files.as_path("gs://bucket/runs/a") / "checkpoints") == "gs://bucket/runs/a/checkpoints"


def test_as_path_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(files.as_path("run")) == os.path.join(str(tmp_path), "run")


def test_write_text_atomic_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.jsonl"
    target.write_text("old\n")
    files.write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]
