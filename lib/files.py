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
    if (folder / "results.json").is_file():  # a finished run is only read
        return
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


def move_tree(source, target) -> None:
    """Moves a directory: a rename where the store has one; on object stores (gs://), where a
    rename needs an existing parent and folders do not exist, a copy of every file, then the
    source is removed."""
    source, target = epath.Path(source), epath.Path(target)
    if is_local(source):
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        return
    folders = [source]
    while folders:
        for p in folders.pop().iterdir():
            if p.is_dir():
                folders.append(p)
            else:
                p.copy(target / p.relative_to(source))
    source.rmtree()


def write_text_atomic(path, text: str) -> None:
    """Writes a temporary file and renames it: a kill mid-write never leaves half a file."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path, data: bytes) -> None:
    path = epath.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
