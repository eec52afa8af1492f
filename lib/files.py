"""Small file helpers that work for local paths and object stores (gs://) alike."""

import os
import pathlib
import tempfile

from etils import epath


class WorkdirError(ValueError):
    """A workdir that cannot hold a run: a file, under a file, or not writable."""


def as_path(path) -> epath.Path:
    """An epath.Path; relative local paths become absolute (gs://… stays as it is)."""
    path = epath.Path(path)
    return path if path.is_absolute() else path.absolute()


def is_local(path) -> bool:
    return "://" not in os.fspath(path)


def check_workdir(path) -> None:
    """Raises WorkdirError unless `path` is, or can become, a writable local directory; it
    writes nothing that stays (object-store paths are left to the store to refuse)."""
    if not path:
        raise WorkdirError("--workdir is empty; give the run's directory")
    if not is_local(path):
        return
    folder = pathlib.Path(path).absolute()
    if folder.exists() and not folder.is_dir():
        raise WorkdirError(f"workdir {str(folder)!r} is a file, not a directory; pass a "
                           "directory (it is created if missing)")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise WorkdirError(f"workdir {str(folder)!r} lies under {str(existing)!r}, which is a "
                           "file; pass a path under a directory")
    try:  # os.access says yes to root on read-only file systems, so try it
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise WorkdirError(f"workdir {str(folder)!r} cannot be written: creating a file in "
                           f"{str(existing)!r} fails ({e.strerror}); pass a writable "
                           "directory") from e


def write_text_atomic(path, text: str) -> None:
    """Writes a temporary file and renames it: a kill mid-write never leaves half a file."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path, data: bytes) -> None:
    path = epath.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
