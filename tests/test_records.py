"""Records beyond (image, label): spatial keys aligned with the image, multi-view batches,
unlabelled sources, the held-out validation split, and the on-device augmentation ops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.base import get_config
from lib import data
from lib.config import ConfigError
from lib.data import device_augment, pipeline, records, sources


def cfg(**overrides):
    c = get_config().data
    c.update({"name": "tests.toy_data:masked_squares", "batch_size": 8, "eval_batch_size": 10,
              "normalization": "none"})
    c.update(overrides)
    return c


def batches(c, n=4):
    it = data.train_iterator(c, seed=3)
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("overrides", [
    {"augment": "flip"},
    {"augment": "cifar"},
    {"augment": "cifar", "pool": 2},
    {"augment": "imagenet", "image_size": 11},
])
def test_fg_mask_follows_the_image_through_crops_and_flips(overrides):
    """The toy images are 255 · fg_mask, so normalised images (÷255) equal the transformed mask
    exactly under pad-crops, flips and pooling, and to one raw grey level under bilinear
    resizing (the image is resized in uint8, the mask in float)."""
    tolerance = 1 / 255 + 1e-6 if overrides["augment"] == "imagenet" else 1e-6
    moved = 0
    for batch in batches(cfg(**overrides)):
        assert batch["fg_mask"].shape == batch["image"].shape
        np.testing.assert_allclose(batch["image"], batch["fg_mask"], atol=tolerance)
        first = sources.open_split(cfg(), "train").records
        originals = np.stack([first[int(i)]["fg_mask"] for i in batch["id"]]).astype(np.float32)
        if batch["fg_mask"].shape == originals.shape:
            moved += int(np.any(batch["fg_mask"] != originals))
    assert overrides["augment"] == "imagenet" or overrides.get("pool") or moved > 0


def test_eval_batches_carry_extra_keys_and_pad_them():
    c = cfg()
    seen = list(data.eval_batches(c))
    assert [b["fg_mask"].shape for b in seen] == [(10, 16, 16, 1)] * 3
    ids = np.concatenate([b["id"] for b in seen])
    mask = np.concatenate([b["mask"] for b in seen])
    np.testing.assert_array_equal(ids[mask == 1], np.arange(24))
    assert not np.any(np.concatenate([b["fg_mask"] for b in seen])[mask == 0])


def test_multi_view_batches_have_one_array_per_group():
    c = cfg(augment="views", views=(2, 6), view_sizes=(12, 6), view_min_scale=(0.4, 0.05),
            view_max_scale=(1.0, 0.4))
    info = data.get_info(c)
    assert info.views == ((2, 12), (6, 6))
    batch = batches(c, 1)[0]
    assert "image" not in batch and "fg_mask" not in batch
    assert [{k: v.shape for k, v in g.items()} for g in batch["views"]] == [
        {"image": (8, 2, 12, 12, 1), "fg_mask": (8, 2, 12, 12, 1)},
        {"image": (8, 6, 6, 6, 1), "fg_mask": (8, 6, 6, 6, 1)}]
    for group in batch["views"]:  # every view's mask is cropped with its own image
        np.testing.assert_allclose(group["image"], group["fg_mask"], atol=1 / 255 + 1e-6)
    first, second = batch["views"][0]["image"][:, 0], batch["views"][0]["image"][:, 1]
    assert not np.array_equal(first, second)  # two draws, not one view twice
    assert next(iter(data.eval_batches(c)))["image"].shape == (10, 16, 16, 1)


@pytest.mark.parametrize("views, message", [
    ({"views": (0,)}, "needs data.views"),
    ({"views": (2, 6), "view_sizes": (12,)}, "need one entry"),
    ({"views": (2,), "view_sizes": (12,), "view_min_scale": (0.9,), "view_max_scale": (0.5,)},
     "min scale <= max scale"),
    ({"views": (2,), "view_sizes": (12,), "pool": 2}, "use pool=1"),
])
def test_bad_view_settings_are_config_errors(views, message):
    with pytest.raises(ConfigError, match=message):
        data.get_info(cfg(augment="views", **views))


def test_unlabelled_source():
    c = cfg(name="tests.toy_data:unlabelled", train_examples=12)
    info = data.get_info(c)
    assert info.num_classes == 0 and info.num_train == 12
    batch = batches(c, 1)[0]
    assert "label" not in batch and batch["image"].shape == (8, 16, 16, 1)
    a = sources.open_split(c, "train").records
    b = sources.open_split(cfg(name="tests.toy_data:unlabelled", train_examples=12,
                               subset_seed=1), "train").records
    assert len({int(a[i]["id"]) for i in range(12)}) == 12  # a subset without repeats
    assert [int(a[i]["id"]) for i in range(12)] != [int(b[i]["id"]) for i in range(12)]
    with pytest.raises(ConfigError, match="no class labels"):
        sources.open_split(cfg(name="tests.toy_data:unlabelled", labels="random"), "train")


def test_validation_split_is_disjoint_from_the_training_subset():
    c = cfg(validation_examples=16, train_examples=20, eval_split="validation")
    train = sources.open_split(c, "train").records
    validation = sources.open_split(c, "eval").records
    train_ids = {int(train[i]["id"]) for i in range(len(train))}
    val_ids = {int(validation[i]["id"]) for i in range(len(validation))}
    assert len(train_ids) == 20 and len(val_ids) == 16 and not train_ids & val_ids
    # stratified: 64 examples of 4 classes -> 4 per class held out
    assert np.bincount(validation.all_labels()).tolist() == [4, 4, 4, 4]
    whole = sources.open_split(cfg(validation_examples=16), "train").records
    assert len(whole) == 48 and {int(whole[i]["id"]) for i in range(48)} | val_ids == set(
        range(64))
    again = sources.open_split(c, "eval").records
    assert [int(again[i]["id"]) for i in range(16)] == sorted(val_ids)  # seeded


def test_validation_split_of_the_offline_sets():
    c = get_config().data
    c.update({"name": "digits", "validation_examples": 100, "eval_split": "validation"})
    info = data.get_info(c)
    assert (info.num_train, info.num_eval) == (1158, 100)
    c.validation_examples = 0
    with pytest.raises(ConfigError, match="validation_examples"):
        data.get_info(c)


def test_hold_out_needs_room():
    recs = records.ArrayRecords(np.zeros((5, 2, 2, 1), np.uint8), np.zeros(5, np.int32))
    with pytest.raises(ConfigError, match=r"\[1, 4\]"):
        records.hold_out(recs, 5, 0)


def test_unknown_source_function_is_a_config_error():
    with pytest.raises(ConfigError, match="has no 'nope'"):
        data.get_info(cfg(name="tests.toy_data:nope"))


# On-device augmentation (lib.data.device_augment), against numpy.

def _images(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, shape), jnp.float32)


def test_grayscale_and_solarize_by_hand():
    x = _images((5, 4, 3))
    luma = np.asarray(x) @ np.array([0.2989, 0.5870, 0.1140])
    np.testing.assert_allclose(device_augment.grayscale(x), np.repeat(luma[..., None], 3, -1),
                               atol=1e-3)
    np.testing.assert_allclose(device_augment.solarize(x, 0.5),
                               np.where(np.asarray(x) >= 0.5, 1 - np.asarray(x), x), atol=1e-7)


def test_brightness_jitter_shifts_every_pixel_by_one_delta():
    x = _images((6, 6, 3)) * 0.5 + 0.25  # no clipping for |delta| <= 0.25
    y = device_augment.color_jitter(jax.random.key(0), x, 0.2, 0.0, 0.0, 0.0)
    delta = np.asarray(y - x)
    assert np.ptp(delta) < 1e-6 and 0 < abs(delta.flat[0]) <= 0.2


def test_blur_of_an_impulse_is_the_normalised_gaussian():
    sigma, image = 1.0, jnp.zeros((30, 30, 1)).at[15, 15, 0].set(1.0)
    out = device_augment.random_blur(jax.random.key(0), image, sigma, sigma)
    radius = (max(3, round(0.1 * 30) | 1)) // 2
    w = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    w /= w.sum()
    np.testing.assert_allclose(out[15 - radius:16 + radius, 15 - radius:16 + radius, 0],
                               np.outer(w, w), atol=1e-6)


def test_with_probability_and_per_image_keys():
    x = _images((16, 4, 4, 3))
    never = device_augment.per_image(device_augment.with_probability(
        0.0, lambda k, im: 1 - im), jax.random.key(1), x)
    always = device_augment.per_image(device_augment.with_probability(
        1.0, lambda k, im: 1 - im), jax.random.key(1), x)
    np.testing.assert_array_equal(never, x)
    np.testing.assert_allclose(always, 1 - x)
    half = device_augment.per_image(device_augment.with_probability(
        0.5, lambda k, im: 1 - im), jax.random.key(1), x)
    flipped = np.all(np.isclose(half, 1 - x), axis=(1, 2, 3))
    assert 0 < flipped.sum() < 16  # one coin per image


def test_simclr_colour_under_jit_keeps_range_and_shape():
    views = _images((4, 2, 8, 8, 3))
    recipe = device_augment.ViewColor(p_blur=1.0, p_solarize=0.5)
    out = jax.jit(recipe)(jax.random.key(0), views)
    assert out.shape == views.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    np.testing.assert_array_equal(out, jax.jit(recipe)(jax.random.key(0), views))
    assert not np.allclose(out[:, 0], out[:, 1])


@pytest.mark.parametrize("name, overrides", [
    ("digits", {"batch_size": 64, "eval_batch_size": 100}),
    ("digits", {"batch_size": 60, "eval_batch_size": 64, "normalization": "dataset",
                "pool": 2}),
    ("tests.toy_data:masked_squares", {"batch_size": 24, "eval_batch_size": 10, "pool": 2}),
    ("tests.toy_data:unlabelled", {"batch_size": 16, "eval_batch_size": 16}),
])
@pytest.mark.parametrize("processes", [1, 2])
def test_in_memory_batches_equal_the_record_pipeline(name, overrides, processes, monkeypatch):
    """In-memory splits are gathered a batch at a time; the batches (order across epochs,
    pooling, normalisation, extra keys, eval padding and mask, each process's share) must equal
    the record-by-record pipeline's exactly, dtypes included."""
    c = cfg(name=name, **overrides)
    train = sources.open_split(c, "train")
    assert pipeline._in_memory(train.records, pipeline._train_transform(c, train, 0))

    def passes():
        out = []
        for p in range(processes):
            it = data.train_iterator(c, seed=7, process_index=p, process_count=processes)
            out.append([next(it) for _ in range(70)])  # digits: 2+ epochs at batch 64
            out.append(list(data.eval_batches(c, process_index=p, process_count=processes)))
        return out

    fast = passes()
    monkeypatch.setattr(pipeline, "_in_memory", lambda records, transform: False)
    slow = passes()
    for fast_batches, slow_batches in zip(fast, slow, strict=True):
        assert len(fast_batches) == len(slow_batches)
        for a, b in zip(fast_batches, slow_batches):
            assert a.keys() == b.keys()
            for k in a:
                assert a[k].dtype == b[k].dtype, k
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_in_memory_train_stream_resumes_from_its_state():
    c = cfg(name="digits", batch_size=64)
    it = data.train_iterator(c, seed=1)
    for _ in range(30):  # past the first epoch boundary (1,437 train records)
        next(it)
    state = it.get_state()
    expected = [next(it)["label"] for _ in range(5)]
    resumed = data.train_iterator(c, seed=1)
    resumed.set_state(state)
    for labels in expected:
        np.testing.assert_array_equal(next(resumed)["label"], labels)


def test_in_memory_eval_passes_are_kept_read_only_and_equal():
    passes = data.eval_batches(cfg(name="digits", eval_batch_size=64))
    first, second = list(passes), list(passes)
    assert len(first) == len(second) == len(passes)
    for a, b in zip(first, second):
        assert a is b  # the second pass reuses the first's batches
    with pytest.raises(ValueError, match="read-only"):
        first[0]["image"] += 1
