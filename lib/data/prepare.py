"""Makes a dataset available locally: python -m lib.data.prepare NAME [--data_dir=DIR].

TFDS datasets are built in ArrayRecord format (random access for Grain); building usually needs
TensorFlow, hence the [prepare] extra, while reading them later does not. Fashion-MNIST goes into
the project cache; digits ships with scikit-learn.
"""

import shutil

from absl import app, flags

from lib.data import fashion_mnist
from lib.data.errors import DatasetNotFoundError

_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data_dir ('' = the TFDS default)")

TF_MISSING = (
    "Building {name} needs TensorFlow, which the runtime does not install. Install the "
    'prepare extra (pip install -e ".[prepare]") and run this command again.'
)


def prepare_fashion_mnist() -> None:
    target = fashion_mnist.cache_dir()
    if fashion_mnist.has_files(target):
        print(f"Fashion-MNIST is already in the cache {target}; nothing to do.")
        return
    try:
        source = fashion_mnist.find_dir(allow_download=False)
    except DatasetNotFoundError:
        print(f"Downloading Fashion-MNIST from {fashion_mnist.URL} into {target} ...")
        try:
            fashion_mnist.download(target)
        except OSError as e:
            raise SystemExit(f"{fashion_mnist.not_found_error()}\n({e})") from e
        print(f"Done: Fashion-MNIST is in {target}.")
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in (n for pair in fashion_mnist.FILES.values() for n in pair):
        found = source / name if (source / name).is_file() else source / name[:-3]
        shutil.copy(found, target / found.name)
    print(f"Copied the Fashion-MNIST files from {source} into the cache {target}.")


def prepare_tfds(name: str, data_dir: str) -> None:
    from lib.data import sources

    builder = sources.tfds_builder(name, data_dir)
    print(f"Building TFDS {name} {builder.version} as ArrayRecord in {builder.data_dir} ...")
    try:
        builder.download_and_prepare(file_format="array_record")
    except ModuleNotFoundError as e:
        if "tensorflow" in str(e):
            raise SystemExit(TF_MISSING.format(name=name)) from e
        raise
    splits = ", ".join(f"{k}: {v.num_examples}" for k, v in builder.info.splits.items())
    print(
        f"Done ({splits}). Use data.name={name!r}"
        + (f", data.data_dir={data_dir!r}." if data_dir else ".")
    )


def main(argv) -> None:
    if len(argv) != 2:
        raise app.UsageError("usage: python -m lib.data.prepare NAME [--data_dir=DIR]")
    name = argv[1]
    if name == "digits":
        print("digits ships with scikit-learn; nothing to prepare.")
    elif name == "fashion_mnist":
        prepare_fashion_mnist()
    elif name.startswith("tiny_imagenet"):
        from lib.data import tiny_imagenet

        print(tiny_imagenet.__doc__)
        print("Nothing to prepare: unpack the release and point data.data_dir at it.")
    else:
        prepare_tfds(name, _DATA_DIR.value)


if __name__ == "__main__":
    app.run(main)
