"""Small file helpers that work for local paths and object stores (gs://) alike."""

from etils import epath


def as_path(path) -> epath.Path:
    """An epath.Path; relative local paths become absolute (gs://… stays as it is)."""
    path = epath.Path(path)
    return path if path.is_absolute() else path.absolute()


def write_text_atomic(path, text: str) -> None:
    """Writes a temporary file and renames it: a kill mid-write never leaves half a file."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path, data: bytes) -> None:
    path = epath.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
