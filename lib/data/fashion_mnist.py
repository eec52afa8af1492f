"""Fashion-MNIST from the original idx files, found without TensorFlow or TFDS.

Resolution order (DESIGN.md §3): $FASHION_MNIST_DIR, the Debian package folder, the project
cache ($XDG_CACHE_HOME/ier/fashion_mnist, default ~/.cache/ier/fashion_mnist), then a download
of the official files into that cache.
"""

import functools
import gzip
import os
import pathlib
import shutil
import tempfile
import urllib.request

import numpy as np

from lib.config import ConfigError
from lib.data.errors import DatasetNotFoundError

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


def has_files(folder: pathlib.Path) -> bool:
    names = [n for pair in FILES.values() for n in pair]
    return all((folder / n).is_file() or (folder / n[:-3]).is_file() for n in names)


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
    candidates = [os.environ.get("FASHION_MNIST_DIR"), DEBIAN_DIR, cache_dir()]
    for folder in candidates:
        if folder and has_files(pathlib.Path(folder)):
            return pathlib.Path(folder)
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
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
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
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels in {split}")
    return images, labels
