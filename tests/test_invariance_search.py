"""The similarity search at paper scale (experiments/invariance/search_procedure.py) and the
per-class augmentation built on it (experiments/invariance/augment.py:PerClass), against hand
computations: the pairing, the summary numbers, a search whose winner is known by
construction, the device embedding against the model called directly, the kept ops and their
frequencies over many draws, and bad input."""

import json
import math

import numpy as np
import pytest

from experiments.invariance import augment, search, search_procedure
from experiments.invariance import config as paper_config
from lib import config as config_lib
from lib.data import autoaugment, fashion_mnist, pipeline, preprocess, sources
from tests.helpers import REPO, cli

CONFIG = REPO / "experiments/invariance/configs/search.py"


# The pairs.

def test_pairs_are_halves_of_batches_in_split_order_capped_per_class():
    labels = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 2, 2, 2, 2])
    # class 0: records 0 2 3 5 | 6 7 9 10 | 11 12 (a partial batch, dropped)
    left, right = search_procedure.class_pairs(labels, (0,), 4, cap=10)[0]
    assert left.tolist() == [0, 2, 6, 7] and right.tolist() == [3, 5, 9, 10]
    left, right = search_procedure.class_pairs(labels, (0,), 4, cap=3)[0]
    assert left.tolist() == [0, 2, 6] and right.tolist() == [3, 5, 9]
    # the code's rule: whole batches until the cap is reached
    left, right = search_procedure.class_pairs(labels, (0,), 4, cap=3, whole_batches=True)[0]
    assert left.tolist() == [0, 2, 6, 7] and right.tolist() == [3, 5, 9, 10]
    pairs = search_procedure.class_pairs(labels, (1, 2), 4, cap=10)
    assert len(pairs[1][0]) == 0  # 3 images: no whole batch
    assert pairs[2][0].tolist() == [13, 14] and pairs[2][1].tolist() == [15, 16]
    many = np.zeros(2100, int)
    assert len(search_procedure.class_pairs(many, (0,), 32, 1000)[0][0]) == 1000
    assert len(search_procedure.class_pairs(many, (0,), 32, 1000, True)[0][0]) == 1008


def test_signs_are_seeded_per_class_and_candidate():
    s = search_procedure.signs(3, 7, 4, 50)
    assert s.shape == (4, 50) and set(np.unique(s)) == {-1, 1}
    np.testing.assert_array_equal(s[2], np.random.default_rng([3, 7, 2]).choice([-1, 1], 50))
    assert not np.array_equal(s, search_procedure.signs(3, 8, 4, 50))


def test_candidate_names_families_and_counts():
    assert len(search_procedure.candidates(True)) == 63
    assert len(search_procedure.candidates(False)) == 50
    assert "Invert" in search_procedure.candidates(False)
    assert augment.parse_candidate("ShearX_5") == ("ShearX", 5)
    assert augment.parse_candidate("Equalize") == ("Equalize", None)
    assert search_procedure.is_geometric("Rescale_3")
    assert not search_procedure.is_geometric("Solarize_3")
    for bad in ("Blur_3", "ShearX", "ShearX_10", "ShearX_x"):
        with pytest.raises(ValueError, match=f"candidate '{bad}'"):
            augment.parse_candidate(bad)


def test_appearance_share_and_distinct_sets_by_hand():
    def stats(order):  # proportion_boosted falls along `order`; mean Δ breaks one tie
        return {n: {"proportion_boosted": 1 - i / 10, "mean_delta": 0.0}
                for i, n in enumerate(order)}

    per_class = {
        "0": stats(["Invert_4", "ShearX_5", "Color_2", "Rotate_8", "Equalize_3"]),
        "1": stats(["Color_2", "Invert_4", "ShearX_5", "Rotate_8", "Equalize_3"]),
        "2": stats(["TranslateX_3", "Rotate_8", "Invert_4", "Color_2", "Equalize_3"]),
    }
    per_class["2"]["Equalize_3"].update(proportion_boosted=0.9, mean_delta=0.5)
    values = search_procedure.summarise(per_class, {"0": 16, "1": 16, "2": 16},
                                        ("proportion_boosted", "mean_delta"), 2)
    assert values["top"]["2"][:2] == ["TranslateX_3", "Equalize_3"]  # 0.9 tie: mean Δ wins
    # Invert + ShearX, Color + Invert, TranslateX + Equalize
    assert values["appearance_share_top2"] == {"0": 0.5, "1": 1.0, "2": 0.5}
    assert values["appearance_share_top2_mean"] == pytest.approx(2 / 3)
    # {Invert, ShearX}, {Color, Invert}, {TranslateX, Equalize}: three different sets
    assert values["distinct_top2_sets"] == 3
    top = {"a": ["Invert_4", "Color_2"], "b": ["Color_2", "Invert_4"], "c": ["Rotate_8", "X"]}
    assert search_procedure.distinct_sets(top, 2) == 2  # order does not count
    assert search_procedure.appearance_shares({"a": ["Invert_4", "Rotate_8", "Rescale_1"]},
                                              3) == {"a": pytest.approx(1 / 3)}


# The search end to end.

def _inverted_pairs(per_class=64):
    """Fashion-MNIST images of classes 0 and 1 interleaved; per class, in split order, each
    batch of 32 holds 16 images and then their inverses: every pair is (x, 255 − x)."""
    images, labels = fashion_mnist.load("train")
    out = []
    for c in (0, 1):
        first = images[labels == c][:per_class // 2].reshape(-1, 16, 28, 28, 1)
        out.append(np.concatenate([first, 255 - first], axis=1).reshape(-1, 28, 28, 1))
    mixed = np.stack(out, axis=1).reshape(-1, 28, 28, 1)
    return mixed, np.tile([0, 1], per_class).astype(np.int32)


@pytest.fixture
def inverted_source(monkeypatch):
    images, labels = _inverted_pairs()
    split = sources.Split("", sources.ArrayRecords(images, labels), (28, 28, 1), 2, 255.0,
                          "inverted pairs")
    monkeypatch.setitem(sources.SOURCES, "inverted_pairs", lambda data_cfg, name: split)
    return images, labels


def _pixel_embedder(calls):
    def embedder(trainer, state, feature, scale, shift):
        def embed(images):
            calls.append(len(images))
            return images.reshape(len(images), -1).astype(np.float64)
        return embed
    return embedder


def _config(arg="quick", **overrides):
    return config_lib.updated(config_lib.load_file(CONFIG, arg), overrides)


def test_a_search_whose_winner_is_known_ranks_invert_first_and_resumes(tmp_path, monkeypatch,
                                                                       inverted_source):
    """f = pixels, pairs (x, 255 − x): inverting the right image restores every pair
    exactly, so Invert_* boost every pair by 1 − s(x, 255 − x) and rank first."""
    images, labels = inverted_source
    calls = []
    monkeypatch.setattr(search_procedure, "embedder", _pixel_embedder(calls))
    config = _config(**{"data.name": "inverted_pairs", "data.augment": "none",
                        "data.image_size": 0, "data.train_examples": 0,
                        "data.eval_examples": 0, "data.normalization": "none",
                        "search.classes": (0, 1), "search.pairs_per_class": 32})
    results = search_procedure.run(config, tmp_path / "run")
    values = json.loads((tmp_path / "run" / "search.json").read_text())["values"]
    assert values["pairs"] == {"0": 32, "1": 32}
    for c in (0, 1):
        rows = np.flatnonzero(labels == c).reshape(-1, 32)
        x = images[rows[:, :16].ravel()].reshape(32, -1).astype(np.float64)
        base = search.cosine_similarity(x, 255 - x)
        assert values["top"][str(c)][0].startswith("Invert_")
        for name in ("Invert_3", "Invert_4", "Invert_5", "Invert_6", "Invert_8"):
            got = values["stats"][str(c)][name]
            assert got["proportion_boosted"] == 1.0
            assert got["mean_delta"] == pytest.approx(np.mean(1 - base), abs=1e-12)
        others = [v["mean_delta"] for n, v in values["stats"][str(c)].items()
                  if not n.startswith("Invert")]
        assert max(others) < np.mean(1 - base)
    assert len(values["candidates"]) == 63 and calls
    assert results["search/classes"] == 2 and results["search/pairs"] == 64
    share = np.mean([np.mean([not search_procedure.is_geometric(n) for n in t[:5]])
                     for t in values["top"].values()])
    assert results["search/appearance_share_top5"] == pytest.approx(share)
    assert (tmp_path / "run" / "search_factors.png").stat().st_size > 0
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == results
    # Unchanged settings: read back, nothing embedded.
    calls.clear()
    assert search_procedure.run(config, tmp_path / "run") == results and not calls
    # A lost search.json and class file: only that class is redone.
    (tmp_path / "run" / "search.json").unlink()
    (tmp_path / "run" / "search_classes" / "1.npz").unlink()
    assert search_procedure.run(config, tmp_path / "run") == results
    assert sum(calls) >= 32 * 65 and sum(calls) < 2 * 32 * 65


def test_the_quick_search_embeds_on_device_as_the_model_does_directly(tmp_path):
    """The real path (8 devices, batches spanning classes): a pair's s(i, j) and s(i, T(j))
    against the model called on the host for the same images, with the recorded sign."""
    import jax

    from lib import train

    config = _config(**{"search.classes": (0, 2), "search.pairs_per_class": 16,
                        "search.batch_size": 48})
    results = search_procedure.run(config, tmp_path / "run")
    assert results["search/classes"] == 2 and 0 <= results["search/appearance_share_top5"] <= 1
    assert 1 <= results["search/distinct_top5_sets"] <= 2
    with (tmp_path / "run" / "search_classes" / "2.npz").open("rb") as f:
        saved = dict(np.load(f))
    names = list(saved["names"])
    trainer = train.Trainer(config)
    state = jax.device_get(trainer.starting_state()[0])
    mean, std = pipeline.normalization_stats(config.data)
    split = sources.open_split(config.data, "eval", "train")
    left, right = search_procedure.class_pairs(split.records.labels, (2,), 32, 16)[2]
    n = 5

    def z(image):
        x = (preprocess.resize_center_crop(image, 32).astype(np.float32) / 255 - mean) / std
        return np.asarray(trainer.setup.model(state)(x[None].astype(np.float32), train=False,
                                                      features=True)[1]["pool"], np.float64)

    x_left, x_right = split.records[int(left[n])]["image"], split.records[int(right[n])]["image"]
    cos = lambda a, b: float(search.cosine_similarity(a, b)[0])  # noqa: E731
    assert saved["base"][n] == pytest.approx(cos(z(x_left), z(x_right)), abs=1e-5)
    sign_rows = search_procedure.signs(config.search.seed, 2, len(names), 16)
    for name in ("ShearX_4", "Equalize_1", "Rescale_7"):
        t = names.index(name)
        op, index = augment.parse_candidate(name)
        sign = int(sign_rows[t, n]) if op in autoaugment.RANDOM_SIGN else None
        moved = autoaugment.apply(preprocess.resize_center_crop(x_right, 32), op, index,
                                  sign=sign)
        x = (moved.astype(np.float32) / 255 - mean) / std
        z_moved = np.asarray(trainer.setup.model(state)(x[None].astype(np.float32),
                                                        train=False, features=True)[1]["pool"])
        assert saved["moved"][t, n] == pytest.approx(cos(z(x_left), z_moved), abs=1e-5), name


@pytest.mark.parametrize("overrides, message", [
    ({"search.pair_batch": 33}, "search.pair_batch=33 must be even"),
    ({"search.rank_by": ("proportion",)}, "search.rank_by=\\('proportion',\\); valid "
                                          "statistics: proportion_boosted"),
    ({"search.top_k": 64}, "search.top_k=64 exceeds the 63 candidates"),
    ({"search.feature": "gap"}, "search.feature='gap': the model has the features"),
    ({"search.classes": (3, 10)}, "search.classes \\[10\\] are not classes of fashion_mnist"),
    ({"search.pair_batch": 20000}, "fewer than search.pair_batch=20000 images"),
    ({"search.batch_size": 60}, "search.batch_size=60 is not divisible by the 8 devices"),
    ({"search.split": "validation"}, "fashion_mnist has splits"),
])
def test_bad_search_settings_are_refused_before_anything_is_written(tmp_path, overrides,
                                                                     message):
    with pytest.raises(config_lib.ConfigError, match=message):
        search_procedure.run(_config(**overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# Per-class augmentation.

def _stats(**by_name):
    """{candidate: statistics} from name=(proportion_boosted, avg_percent_similarity_change,
    weighted_boost)."""
    return {n: {"proportion_boosted": p, "avg_percent_similarity_change": a,
                "weighted_boost": w} for n, (p, a, w) in by_name.items()}


def _search_file(tmp_path, per_class, wrapped=True):
    path = tmp_path / "search.json"
    doc = {"settings": {}, "values": {"stats": per_class}} if wrapped else {"stats": per_class}
    path.write_text(json.dumps(doc))
    return path


def _data_cfg(path, **invaug):
    c = paper_config.get_config().data
    c.name, c.crop_scale, c.crop_ratio = "fashion_mnist", (0.08, 1.0), (3 / 4, 4 / 3)
    c.invaug.per_class_search = str(path)
    c.invaug.update(invaug)
    return c


NOTHING = _stats(Color_2=(0.1, 0.0, 0.0))  # below the threshold: no op for the class


def _ten_classes(**special):
    return {str(c): special.get(f"c{c}", NOTHING) for c in range(10)}


def test_the_kept_candidates_follow_the_threshold_filters_and_top_n(tmp_path):
    many = {f"Solarize_{i}": (0.5 + i / 100, 0.1, 0.0) for i in range(10)}
    many.update({f"Rescale_{i}": (0.45 + i / 1000, -0.1 if i == 0 else 0.1, 0.0)
                 for i in range(10)})
    many.update({"Equalize_1": (0.4, 0.2, 0.0), "Equalize_2": (0.39, 0.2, 0.0),
                 "Invert_3": (0.41, 0.0, 0.0)})
    path = _search_file(tmp_path, _ten_classes(c0=_stats(**many)))
    ops = augment.PerClass(_data_cfg(path), 32).ops
    kept = [f"{op}_{i}" for op, i, _ in ops[0]]
    assert kept == ([f"Solarize_{i}" for i in range(9, -1, -1)]
                    + [f"Rescale_{i}" for i in range(9, -1, -1)] + ["Invert_3", "Equalize_1"])
    assert [p for *_, p in ops[0]] == [1 / 22] * 22
    assert all(ops[c] == () for c in range(1, 10))
    top = augment.PerClass(_data_cfg(path, per_class_top=3), 32).ops[0]
    assert [f"{op}_{i}" for op, i, _ in top] == ["Solarize_9", "Solarize_8", "Solarize_7"]
    # the paper's code: strictly above 0.4, and avg_percent_similarity_change >= 0
    code = augment.PerClass(_data_cfg(path, per_class_strict=True, per_class_change_filter=True,
                                      per_class_prob="fixed"), 32).ops[0]
    kept = [f"{op}_{i}" for op, i, _ in code]
    assert "Equalize_1" not in kept and "Rescale_0" not in kept and "Invert_3" in kept
    assert len(kept) == 20 and {p for *_, p in code} == {0.1}
    w = _stats(Invert_3=(0.9, 0.1, 0.2), Color_2=(0.8, 0.1, 1.0), Rotate_8=(0.7, 0.1, 0.0))
    weighted = augment.per_class_ops({"0": w}, _data_cfg(path, per_class_prob="weighted_boost")
                                     .invaug, 1)[0]
    e = np.exp([0.2, 1.0, 0.0])
    np.testing.assert_allclose([p for *_, p in weighted], e / e.sum())
    one = augment.per_class_ops({"0": _stats(Invert_3=(0.9, 0.1, 3.0))},
                                _data_cfg(path, per_class_prob="weighted_boost").invaug, 1)
    assert one[0] == (("Invert", 3, 0.5),)
    bare = _search_file(tmp_path, _ten_classes(c0=_stats(Invert_4=(0.9, 0.1, 0.0))), False)
    assert augment.PerClass(_data_cfg(bare), 32).ops[0] == (("Invert", 4, 1.0),)


def _draws(aug, label, value, draws, seed=0):
    """The value of a constant image of `label` after `draws` calls of the augmentation."""
    rng = np.random.default_rng(seed)
    record = {"image": np.full((40, 36, 1), value, np.uint8), "label": np.int64(label)}
    out = [aug(record, rng)["image"] for _ in range(draws)]
    assert all(o.shape == (32, 32, 1) for o in out)
    assert all(len(np.unique(o)) == 1 for o in out)  # a constant image stays constant
    return np.array([int(o[0, 0, 0]) for o in out])


def _within_binomial(count, draws, p):
    assert abs(count - draws * p) <= 4.5 * math.sqrt(draws * p * (1 - p)) + 1, (count, p)


def test_ops_apply_with_their_probabilities_and_labels_select_the_ops(tmp_path):
    per_class = _ten_classes(
        c0=_stats(Invert_4=(0.9, 0.1, 0.0), Posterize_8=(0.8, 0.1, 0.0)),  # 1/2 each
        c1=_stats(Posterize_8=(0.9, 0.1, 0.0)),  # alone: probability 1
        c3=_stats(Solarize_8=(0.9, 0.1, 0.0)))
    path = _search_file(tmp_path, per_class)
    fixed = augment.PerClass(_data_cfg(path, per_class_sample_magnitude=False), 32)
    draws = 2000
    got = _draws(fixed, 0, 10, draws)
    # 10: neither; 245: Invert only; 0: Posterize (4 bits) only; 240: Invert then Posterize
    assert set(np.unique(got)) <= {10, 245, 0, 240}
    for value in (10, 245, 0, 240):
        _within_binomial(int(np.sum(got == value)), draws, 0.25)
    assert set(_draws(fixed, 1, 10, 50)) == {0}
    assert set(_draws(fixed, 2, 10, 50)) == {10}
    assert set(_draws(fixed, 3, 128, 50)) == {127}  # threshold 28.4: always solarized
    # The paper's code draws the index uniformly in [0, 8]: solarized iff 256·(1 − k/9) <= 128,
    # i.e. k >= 5, with probability 4/9.
    sampled = augment.PerClass(_data_cfg(path), 32)
    got = _draws(sampled, 3, 128, draws, seed=1)
    assert set(np.unique(got)) == {128, 127}
    _within_binomial(int(np.sum(got == 127)), draws, 4 / 9)
    fixed_p = augment.PerClass(_data_cfg(path, per_class_prob="fixed",
                                         per_class_sample_magnitude=False), 32)
    _within_binomial(int(np.sum(_draws(fixed_p, 1, 10, draws, seed=2) == 0)), draws, 0.1)


def test_ops_act_on_float_images_in_their_own_range():
    rng = np.random.default_rng(0)
    image = np.full((8, 8, 1), 0.04, np.float32)
    out = augment.apply_ops(image, (("Invert", None, 1.0),), rng, True, 1.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (255 - 10) / 255, rtol=1e-6)  # round(0.04·255) = 10
    assert augment.apply_ops(image, (("Invert", None, 0.0),), rng, True, 1.0) is image
    digits = np.full((8, 8, 1), 4, np.uint8)  # raw 0..16
    np.testing.assert_array_equal(
        augment.apply_ops(digits, (("Invert", None, 1.0),), rng, True, 16.0), 12)


def test_per_class_augmentation_feeds_the_grain_pipeline(tmp_path):
    """The label reaches the augmentation: with Invert (p = 1) for class 0 only, the class-0
    images of a batch are the inverses of the same batch without it, the others equal."""

    def batch(per_class, name):
        c = _data_cfg(_search_file(tmp_path / name, per_class))
        c.augment, c.image_size, c.pool = "experiments.invariance.augment:PerClass", 24, 1
        c.train_examples, c.batch_size, c.num_workers, c.normalization = 200, 16, 0, "none"
        return next(pipeline.train_iterator(c, seed=0))

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    inverted = batch(_ten_classes(c0=_stats(Invert_4=(0.9, 0.1, 0.0))), "a")
    plain = batch(_ten_classes(), "b")
    assert inverted["image"].shape == (16, 24, 24, 1)
    np.testing.assert_array_equal(inverted["label"], plain["label"])
    zero = plain["label"] == 0
    assert zero.any() and not zero.all()
    np.testing.assert_allclose(inverted["image"][zero], 1 - plain["image"][zero], atol=1e-6)
    np.testing.assert_array_equal(inverted["image"][~zero], plain["image"][~zero])


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "is not a JSON file"),
    ('{"values": {"stats": {}}}', "has no per-class 'stats'"),
    (json.dumps({"stats": {**_ten_classes(), "4": _stats(Blur_3=(0.9, 0.1, 0.0))}}),
     "class 4: candidate 'Blur_3': unknown AutoAugment op 'Blur'"),
    (json.dumps({"stats": {k: v for k, v in _ten_classes().items() if k != "7"}}),
     "has no candidates for classes \\[7\\] of the 10"),
    (json.dumps({"stats": {**_ten_classes(), "1": {"Invert_3": {"proportion_boosted": 1}}}}),
     "class 1, Invert_3: the statistics lack"),
])
def test_bad_search_files_are_refused_with_what_to_do(tmp_path, content, message):
    path = tmp_path / "search.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(config_lib.ConfigError, match=message):
        augment.PerClass(_data_cfg(path), 32)
    with pytest.raises(config_lib.ConfigError, match="per_class_prob='often'; valid choices"):
        augment.per_class_ops({"0": NOTHING}, _data_cfg(path, per_class_prob="often").invaug, 1)
    with pytest.raises(config_lib.ConfigError, match="needs data.invaug.per_class_search"):
        augment.PerClass(_data_cfg(""), 32)


def test_a_missing_search_file_exits_2_before_anything_is_written(tmp_path):
    workdir = tmp_path / "run"
    out = cli(f"--config={CONFIG}:quick", f"--workdir={workdir}", "--config.procedure=",
              "--config.data.augment=experiments.invariance.augment:PerClass",
              f"--config.data.invaug.per_class_search={tmp_path / 'none.json'}")
    assert out.returncode == 2, out.stderr
    assert "per_class_search" in out.stderr and "no such file" in out.stderr
    assert "run the similarity search first" in out.stderr
    assert not workdir.exists()


def test_sampled_rescale_magnitudes_stay_on_their_side_of_one():
    """With per_class_sample_magnitude a searched zoom-in stays a zoom-in (or the identity):
    Rescale_7 (×2.25) draws among levels 0, 6, 7 only; other ops draw in [0, index]."""
    rng = np.random.default_rng(0)
    draws = [augment._sampled_index("Rescale", 7, rng) for _ in range(900)]
    assert set(draws) == {0, 6, 7}
    assert all(abs(draws.count(i) / 900 - 1 / 3) < 0.06 for i in (0, 6, 7))
    assert set(augment._sampled_index("Rescale", 3, rng) for _ in range(200)) == {0, 1, 2, 3}
    assert set(augment._sampled_index("Solarize", 2, rng) for _ in range(200)) == {0, 1, 2}
