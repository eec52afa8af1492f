"""Fashion-MNIST from the original idx files, found without TensorFlow or TFDS.

Resolution order (DESIGN.md §3): $FASHION_MNIST_DIR, the Debian package folder, the project
cache ($XDG_CACHE_HOME/ier/fashion_mnist, default ~/.cache/ier/fashion_mnist), then a download
of the official files into that cache. A $FASHION_MNIST_DIR that is set but lacks the files is
an error, not a reason to look elsewhere: the run would silently read other data.
"""

import functools
import gzip
import os
import pathlib
import shutil
import tempfile
import urllib.request
import zlib

import numpy as np

from lib.config import ConfigError
from lib.data.errors import DatasetNotFoundError, DatasetUnreadableError

URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DOWNLOAD_TIMEOUT_S = 10


def cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "ier" / "fashion_mnist"


def missing_files(folder: pathlib.Path) -> list[str]:
    names = [n for pair in FILES.values() for n in pair]
    return [n for n in names if not ((folder / n).is_file() or (folder / n[:-3]).is_file())]


def has_files(folder: pathlib.Path) -> bool:
    return not missing_files(folder)


def download(target: pathlib.Path) -> None:
    """Fetches the four official files into `target`; each file appears only when complete."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (n for pair in FILES.values() for n in pair):
        if (target / name).is_file():
            continue
        with (
            urllib.request.urlopen(URL + name, timeout=DOWNLOAD_TIMEOUT_S) as response,
            tempfile.NamedTemporaryFile(dir=target, delete=False) as tmp,
        ):
            shutil.copyfileobj(response, tmp)
        os.replace(tmp.name, target / name)


def not_found_error() -> DatasetNotFoundError:
    return DatasetNotFoundError(
        "Fashion-MNIST not found. Either install the Debian package "
        "(`sudo apt-get install dataset-fashion-mnist`, "
        "files in /usr/share/datasets/fashion-mnist/) "
        "or set FASHION_MNIST_DIR to a folder holding the four idx files "
        f"({', '.join(n for pair in FILES.values() for n in pair)}; .gz optional). "
        f"The download into {cache_dir()} from {URL} failed (no network?)."
    )


def find_dir(allow_download: bool = True) -> pathlib.Path:
    """The first folder in the resolution order that holds all four files."""
    chosen = os.environ.get("FASHION_MNIST_DIR")
    if chosen:
        missing = missing_files(pathlib.Path(chosen))
        if missing:
            raise DatasetNotFoundError(
                f"FASHION_MNIST_DIR={chosen!r} lacks {', '.join(missing)} (.gz optional). "
                "Point it at the folder of the four idx files, or unset it to use "
                f"{DEBIAN_DIR} or {cache_dir()}.")
        return pathlib.Path(chosen)
    for folder in (DEBIAN_DIR, cache_dir()):
        if has_files(folder):
            return folder
    if allow_download:
        try:
            download(cache_dir())
            return cache_dir()
        except OSError:
            pass
    raise not_found_error()


def _read_idx(path: pathlib.Path) -> np.ndarray:
    if not path.is_file():
        path = path.with_suffix("")  # an unpacked copy
    opener = gzip.open if path.suffix == ".gz" else open
    unreadable = (f"{path} is not a readable Fashion-MNIST idx file%s; replace it with the "
                  f"official file ({URL}) or reinstall dataset-fashion-mnist")
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetUnreadableError(unreadable % f" ({e})") from e
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DatasetUnreadableError(unreadable % " (no idx header of unsigned bytes)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != 4 + 4 * ndim + int(np.prod(shape)):
        raise DatasetUnreadableError(unreadable % f" (its header promises shape {shape}, but "
                                                  f"it holds {len(data)} bytes)")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@functools.lru_cache(maxsize=2)
def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28, 1], labels int32 [N]) of split 'train' or 'test'."""
    if split not in FILES:
        raise ConfigError(f"fashion_mnist has splits {sorted(FILES)}, not {split!r}: "
                          "set data.train_split / data.eval_split")
    folder = find_dir()
    image_file, label_file = FILES[split]
    images = _read_idx(folder / image_file)[..., None]
    labels = _read_idx(folder / label_file).astype(np.int32)
    if len(images) != len(labels):
        raise DatasetUnreadableError(f"{folder}: {len(images)} images but {len(labels)} labels "
                                     f"in {split}; replace the files with the official ones")
    return images, labels


def pooled_items(split: str, count: int, factor: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(items float32 [count, 28/factor, 28/factor] in [0, 1], labels): the split's first
    `count` images mean-pooled factor × factor, the small objects that papers' synthetic sets
    paste on larger canvases."""
    images, labels = load(split)
    side = images.shape[1] // factor
    items = images[:count, :, :, 0].astype(np.float64) / 255.0
    items = items.reshape(count, side, factor, side, factor).mean(axis=(2, 4))
    return items.astype(np.float32), labels[:count].astype(np.int32)
