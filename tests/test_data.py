"""lib.data: sources, subsets, preprocessing, and the Grain pipelines' order/state contracts."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs.base import get_config
from lib import data
from lib.data import fashion_mnist, pipeline, prepare, preprocess, sources


def cfg(**overrides):
    c = get_config().data
    c.update({"name": "digits", "batch_size": 10, "eval_batch_size": 100, "normalization": "none"})
    c.update(overrides)
    return c


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def raw_keys(images, scale):
    """Identify records by their raw pixels (the pipeline with normalization 'none' divides)."""
    return [np.round(np.asarray(im) * scale).astype(np.uint8).tobytes() for im in images]


def debian_fashion_mnist():
    if not fashion_mnist.has_files(fashion_mnist.DEBIAN_DIR):
        pytest.skip("Fashion-MNIST idx files absent: sudo apt-get install dataset-fashion-mnist")


# --- sources --------------------------------------------------------------------------------


def test_fashion_mnist_loads():
    debian_fashion_mnist()
    c = cfg(name="fashion_mnist", batch_size=32)
    info = data.get_info(c)
    where = fashion_mnist.DEBIAN_DIR
    assert info == data.DatasetInfo("fashion_mnist", (28, 28, 1), 10, 60000, 10000,
                                    {"train": f"{where} (train)", "eval": f"{where} (test)"})
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = fashion_mnist.load(split)
        assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(labels), np.full(10, n // 10))
    batch = next(data.train_iterator(c, seed=0))
    assert batch["image"].shape == (32, 28, 28, 1) and batch["image"].dtype == np.float32
    assert (
        batch["label"].dtype == np.int32 and 0 <= batch["label"].min() <= batch["label"].max() < 10
    )


def test_fashion_mnist_download_into_cache(tmp_path, monkeypatch):
    debian_fashion_mnist()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(fashion_mnist, "URL", fashion_mnist.DEBIAN_DIR.as_uri() + "/")
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path)
    assert fashion_mnist.find_dir() == tmp_path / "cache" / "ier" / "fashion_mnist"
    assert fashion_mnist.has_files(fashion_mnist.cache_dir())


def test_fashion_mnist_missing(tmp_path, monkeypatch):
    def no_network(target):
        raise OSError("no network in tests")

    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path)
    monkeypatch.setattr(fashion_mnist, "download", no_network)
    fashion_mnist.load.cache_clear()
    with pytest.raises(
        data.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"
    ) as e:
        data.get_info(cfg(name="fashion_mnist"))
    assert "FASHION_MNIST_DIR" in str(e.value)
    fashion_mnist.load.cache_clear()


def test_fashion_mnist_dir_that_is_set_is_the_only_place_looked(tmp_path, monkeypatch):
    """A FASHION_MNIST_DIR without the files is an error, even where another copy exists."""
    debian_fashion_mnist()
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    fashion_mnist.load.cache_clear()
    with pytest.raises(data.DatasetNotFoundError, match=r"FASHION_MNIST_DIR=.* lacks "
                       r"train-images-idx3-ubyte.gz"):
        fashion_mnist.load("train")
    for name in (n for pair in fashion_mnist.FILES.values() for n in pair):
        (tmp_path / name).write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(data.DatasetUnreadableError, match="not a readable Fashion-MNIST"):
        fashion_mnist.load("train")
    fashion_mnist.load.cache_clear()


def test_digits_split():
    info = data.get_info(cfg(test_fraction=0.3))
    assert (info.image_shape, info.num_classes, info.num_train, info.num_eval) == (
        (8, 8, 1),
        10,
        1258,
        539,
    )
    a, b = sources._digits(0, 0.3), sources._digits(1, 0.3)
    assert len(a["train"]) + len(a["test"]) == 1797
    assert a["test"].images.max() == 16
    assert not np.array_equal(a["test"].labels, b["test"].labels)


def test_stratified_subset():
    c = cfg(train_examples=500, eval_examples=103)
    train = sources.open_split(c, "train").records.all_labels()
    np.testing.assert_array_equal(np.bincount(train), np.full(10, 50))
    counts = np.bincount(sources.open_split(c, "eval").records.all_labels())
    assert counts.sum() == 103 and counts.max() - counts.min() == 1
    # A small class gives up its share; the choice is deterministic in the seed.
    labels = np.array([0] * 2 + [1] * 10 + [2] * 10)
    keep = sources.stratified_subset(labels, 12, seed=3)
    np.testing.assert_array_equal(np.bincount(labels[keep]), [2, 5, 5])
    np.testing.assert_array_equal(keep, sources.stratified_subset(labels, 12, seed=3))
    assert not np.array_equal(keep, sources.stratified_subset(labels, 12, seed=4))


# --- preprocessing --------------------------------------------------------------------------


def test_pool_matches_numpy():
    c = cfg(pool=2)
    assert data.get_info(c).image_shape == (4, 4, 1)
    raw = sources.open_split(c, "eval").records.images.astype(np.float64)
    expected = np.empty((len(raw), 4, 4, 1))
    for i in range(4):
        for j in range(4):
            expected[:, i, j, 0] = raw[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 0].mean((1, 2)) / 16
    got = np.concatenate([b["image"] for b in data.eval_batches(c)])[: len(raw)]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert preprocess.pool(np.zeros((7, 7, 3), np.uint8), 3).shape == (2, 2, 3)  # floor


def test_dataset_normalization_standardises_train():
    c = cfg(normalization="dataset", eval_split="train", pool=2)
    images = np.concatenate([b["image"] for b in data.eval_batches(c)])[:1258]
    assert abs(images.mean()) < 1e-4 and abs(images.std() - 1) < 1e-4


def test_imagenet_crops():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (10, 25, 3), dtype=np.uint8)
    assert preprocess.random_resized_crop({"image": image}, rng, 7)["image"].shape == (7, 7, 3)
    assert preprocess.resize_center_crop(image, 8).shape == (8, 8, 3)
    assert preprocess.crop_box(1, 100, rng) == (0, 49, 1, 1)  # no sample fits: center crop
    c = cfg(augment="imagenet", image_size=6, normalization="dataset")
    assert next(data.train_iterator(c, seed=0))["image"].shape == (10, 6, 6, 1)
    assert next(iter(data.eval_batches(c)))["image"].shape == (100, 6, 6, 1)


def test_cifar_augment_is_flip_and_zero_pad_crop():
    c = cfg(augment="cifar", normalization="dataset", train_examples=50)
    train = sources.open_split(c, "train")
    mean, std = pipeline._channel_stats(train, pool=1)
    records = train.records
    # Every flip and 9x9 crop offset of every record, padded with raw 0, then normalised.
    padded = np.pad(records.images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    padded = np.concatenate([padded, padded[:, :, ::-1]])
    windows = np.lib.stride_tricks.sliding_window_view(padded, (8, 8), axis=(1, 2))
    candidates = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 8, 8, 1)
    candidates = (candidates / 16 - mean) / std
    stream = take(data.train_iterator(c, seed=1), 5)
    assert_batches_equal(stream, take(data.train_iterator(c, seed=1), 5))
    other = next(data.train_iterator(c, seed=2))
    assert not np.array_equal(stream[0]["image"], other["image"])
    offsets = set()
    for image in np.concatenate([b["image"] for b in stream]):
        assert image.shape == (8, 8, 1)
        error = np.abs(candidates - image).max(axis=(1, 2, 3))
        assert error.min() < 1e-5
        offsets.add(np.unravel_index(error.argmin(), (100, 9, 9))[1:])
    assert len(offsets) > 10  # many crops reach into the padding, which matched -mean/std


# --- pipeline contracts ---------------------------------------------------------------------


def test_epochs_are_permutations_and_differ():
    c = cfg(train_examples=100, batch_size=30)
    keys = raw_keys(sources.open_split(c, "train").records.images, 1)
    assert len(set(keys)) == 100
    stream = raw_keys(
        np.concatenate([b["image"] for b in take(data.train_iterator(c, seed=0), 10)]), 16
    )
    epochs = [stream[i : i + 100] for i in range(0, 300, 100)]  # batches straddle epochs
    for epoch in epochs:
        assert sorted(epoch) == sorted(keys)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    other = raw_keys(next(data.train_iterator(c, seed=1))["image"], 16)
    assert other != stream[:30]


def test_process_shares_concatenate_to_global_batch():
    c = cfg(augment="cifar", batch_size=16)
    whole = take(data.train_iterator(c, seed=0), 4)
    shares = [
        take(data.train_iterator(c, seed=0, process_index=p, process_count=2), 4) for p in range(2)
    ]
    for g in range(4):
        for k in ("image", "label"):
            joined = np.concatenate([shares[0][g][k], shares[1][g][k]])
            np.testing.assert_array_equal(joined, whole[g][k])
    with pytest.raises(ValueError, match="divide evenly"):
        data.train_iterator(c, seed=0, process_count=3)


@pytest.mark.parametrize("augment", ["none", "cifar"])
def test_resume_equals_uninterrupted(augment):
    c = cfg(augment=augment, train_examples=100, batch_size=30)  # epoch ends inside batch 3
    reference = take(data.train_iterator(c, seed=0), 8)
    it = data.train_iterator(c, seed=0)
    take(it, 3)
    state = json.loads(json.dumps(it.get_state()))
    take(it, 2)  # the interrupted run went on before it died
    resumed = data.train_iterator(c, seed=0)
    resumed.set_state(state)
    assert_batches_equal(take(resumed, 5), reference[3:])


def test_worker_processes_keep_order_and_state():
    c = cfg(augment="flip", num_workers=2, train_examples=100, batch_size=30)
    reference = take(
        data.train_iterator(cfg(augment="flip", train_examples=100, batch_size=30), seed=0), 7
    )
    it = data.train_iterator(c, seed=0)
    assert_batches_equal(take(it, 3), reference[:3])
    state = json.loads(json.dumps(it.get_state()))
    it.close()
    resumed = data.train_iterator(c, seed=0)
    resumed.set_state(state)
    assert_batches_equal(take(resumed, 4), reference[3:])
    resumed.close()


def test_eval_covers_every_example_once():
    c = cfg(normalization="none")
    records = sources.open_split(c, "eval").records
    batches = data.eval_batches(c)
    passes = [list(batches), list(batches)]
    assert_batches_equal(*passes)
    assert len(batches) == 6 and all(b["image"].shape == (100, 8, 8, 1) for b in passes[0])
    mask = np.concatenate([b["mask"] for b in passes[0]])
    np.testing.assert_array_equal(mask, np.arange(600) < 539)
    images = np.concatenate([b["image"] for b in passes[0]])[:539]
    np.testing.assert_allclose(images * 16, records.images, atol=1e-5)
    np.testing.assert_array_equal(
        np.concatenate([b["label"] for b in passes[0]])[:539], records.labels
    )
    shares = [list(data.eval_batches(c, process_index=p, process_count=2)) for p in range(2)]
    for g, whole in enumerate(passes[0]):
        for k in whole:
            np.testing.assert_array_equal(np.concatenate([s[g][k] for s in shares]), whole[k])


def test_config_errors():
    with pytest.raises(ValueError, match="image_size"):
        data.get_info(cfg(image_size=32))
    with pytest.raises(ValueError, match="augment"):
        data.get_info(cfg(augment="mixup"))
    with pytest.raises(ValueError, match="channels"):
        data.train_iterator(cfg(normalization="imagenet"), seed=0)


# --- TFDS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, overrides, num_classes",
    [
        ("cifar10", {"augment": "cifar", "normalization": "cifar10"}, 10),
        (
            "imagenet2012",
            {
                "augment": "imagenet",
                "image_size": 32,
                "normalization": "imagenet",
                "eval_split": "validation",
            },
            1000,
        ),
    ],
)
def test_tfds_pipelines(name, overrides, num_classes):
    c = cfg(name=name, batch_size=8, eval_batch_size=10, **overrides)
    with tfds.testing.mock_data(num_examples=24):
        info = data.get_info(c)
        assert (info.image_shape, info.num_classes, info.num_train, info.num_eval) == (
            (32, 32, 3),
            num_classes,
            24,
            24,
        )
        train = take(data.train_iterator(c, seed=0), 4)
        evaluation = list(data.eval_batches(c))
    for batch in train + evaluation:
        assert batch["image"].shape == (len(batch["label"]), 32, 32, 3)
        assert batch["image"].dtype == np.float32 and batch["label"].dtype == np.int32
        assert 0 <= batch["label"].min() and batch["label"].max() < num_classes
    assert [len(b["label"]) for b in train] == [8] * 4
    assert sum(b["mask"].sum() for b in evaluation) == 24 and len(evaluation) == 3


def test_tfds_stratified_subset_and_dataset_stats():
    c = cfg(name="cifar10", batch_size=8, train_examples=20, normalization="dataset")
    with tfds.testing.mock_data(num_examples=30):
        assert data.get_info(c).num_train == 20
        batches = take(data.train_iterator(c, seed=0), 5)  # 40 records: each of the 20 twice
    images = np.concatenate([b["image"] for b in batches]).reshape(-1, 3).astype(np.float64)
    assert batches[0]["image"].shape == (8, 32, 32, 3)
    # 'dataset' normalisation uses the subset's own per-channel statistics
    np.testing.assert_allclose(images.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(images.std(0), 1.0, atol=1e-4)


def test_tfds_missing_dataset(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="python -m lib.data.prepare cifar10"):
        data.get_info(cfg(name="cifar10", data_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.get_info(cfg(name="no_such_dataset_xyz"))


# --- prepare CLI ----------------------------------------------------------------------------


def test_prepare_cli(tmp_path, monkeypatch, capsys):
    prepare.main(["prepare", "digits"])
    assert "nothing to prepare" in capsys.readouterr().out
    debian_fashion_mnist()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    prepare.main(["prepare", "fashion_mnist"])
    assert fashion_mnist.has_files(tmp_path / "ier" / "fashion_mnist")
    prepare.main(["prepare", "fashion_mnist"])
    assert "already in the cache" in capsys.readouterr().out


# --- Tiny ImageNet from the user's files -----------------------------------------------------


def test_tiny_imagenet_files(tmp_path, monkeypatch):
    from tests.helpers import fake_tiny_imagenet

    wnids = fake_tiny_imagenet(tmp_path, {"contrast_5": lambda x: x // 2})
    c = cfg(name="tiny_imagenet", data_dir=str(tmp_path), eval_split="validation",
            batch_size=8, eval_batch_size=64)
    info = data.get_info(c)
    assert (info.num_classes, info.num_train, info.num_eval) == (200, 200, 200)
    assert info.image_shape == (64, 64, 3)
    train = sources.open_split(c, "train")
    # class c is the c-th wnid in sorted order; its pixels were drawn near 50 + c
    for index in (0, 7, 199):
        record = train.records[index]
        assert record["label"] == index and record["image"].shape == (64, 64, 3)
        assert abs(float(record["image"].mean()) - (50 + index)) < 2  # grayscale → RGB too
    # validation in (class, file) order although the annotations are shuffled
    val = sources.open_split(c, "eval")
    np.testing.assert_array_equal(val.records.all_labels(), np.arange(200))
    # the corrupted copy reads with the same labels, in the same order, the same preprocessing
    other = {"name": "tiny_imagenet_c/contrast_5", "eval_split": "validation",
             "data_dir": str(tmp_path / "c")}
    clean = list(data.eval_batches(c))
    halved = list(data.eval_batches(c, other=other))
    np.testing.assert_array_equal(clean[1]["label"], halved[1]["label"])
    np.testing.assert_allclose(halved[1]["image"].mean((1, 2, 3)),  # JPEG noise averages out
                               clean[1]["image"].mean((1, 2, 3)) / 2, atol=1 / 255)
    # what is missing, and what to set
    monkeypatch.delenv("TINY_IMAGENET_DIR", raising=False)
    with pytest.raises(data.DatasetNotFoundError, match=r"data.data_dir \(or \$TINY_IMAGENET_DIR"):
        data.get_info(cfg(name="tiny_imagenet", eval_split="validation"))
    with pytest.raises(data.DatasetNotFoundError, match="wnids.txt is missing"):
        data.get_info(cfg(name="tiny_imagenet", data_dir=str(tmp_path / "c")))
    with pytest.raises(ValueError, match="has splits train and validation, not 'test'"):
        data.get_info(cfg(name="tiny_imagenet", data_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="corruptions contrast"):
        list(data.eval_batches(c, other={**other, "name": "tiny_imagenet_c/fog_5"}))
    assert len(wnids) == 200


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_batch_normalisation_equals_the_per_channel_formula_exactly(dtype):
    """The row-wise pass of _Collate gives float32 (x · a_c + b_c) bit for bit, per channel."""
    from lib.data.pipeline import _Collate

    rng = np.random.default_rng(0)
    images = (rng.integers(0, 256, (4, 5, 7, 3)) if dtype == np.uint8
              else rng.normal(size=(4, 5, 7, 3))).astype(dtype)
    scale, shift = np.float32([0.5, 1 / 3, 2.0]), np.float32([-1.0, 0.25, 3.0])
    expected = np.empty(images.shape, np.float32)
    for c in range(3):
        expected[..., c] = images[..., c].astype(np.float32) * scale[c] + shift[c]
    out = _Collate(scale, shift)([{"image": x, "label": 0} for x in images])["image"]
    assert out.dtype == np.float32 and np.array_equal(out, expected)
