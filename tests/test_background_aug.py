"""Background augmentations (spec §6's exact unit tests), the spurious-background set, the
two-view augment and the experiment's bad input."""

import types

import ml_collections
import numpy as np
import pytest

from experiments.background_aug import augment, background, claims, procedure, spurious
from lib import config as config_lib
from lib import data
from lib.data import records
from tests.helpers import REPO, saved

CONFIG = REPO / "experiments/background_aug/configs/spurious.py"


def _image_and_mask(seed=0, h=12, w=10):
    rng = np.random.default_rng(seed)
    image = rng.uniform(size=(h, w, 3)).astype(np.float32)
    mask = np.zeros((h, w, 1), np.float32)
    mask[3:8, 2:6] = 1
    return image, mask


def test_all_ones_mask_is_the_identity_and_all_zeros_the_fill_or_donor():
    image, _ = _image_and_mask()
    donor = np.random.default_rng(5).uniform(size=image.shape).astype(np.float32)
    ones, zeros = np.ones_like(image[..., :1]), np.zeros_like(image[..., :1])
    np.testing.assert_array_equal(background.bg_rm(image, ones, 0.5), image)
    np.testing.assert_array_equal(background.bg_random(image, ones, donor), image)
    np.testing.assert_array_equal(background.bg_rm(image, zeros, 0.5),
                                  np.full_like(image, 0.5))
    np.testing.assert_array_equal(background.bg_random(image, zeros, donor), donor)


@pytest.mark.parametrize("fill", ["black", "grey", "random_grey"])
def test_output_equals_the_image_where_the_mask_is_one(fill):
    image, mask = _image_and_mask()
    value = background.rm_fill_value(fill, np.random.default_rng(0))
    out = background.bg_rm(image, mask, value)
    fg = mask[..., 0] > 0
    np.testing.assert_array_equal(out[fg], image[fg])
    np.testing.assert_array_equal(out[~fg], np.full_like(out[~fg], value))
    donor = np.random.default_rng(1).uniform(size=image.shape).astype(np.float32)
    out = background.bg_random(image, mask, donor)
    np.testing.assert_array_equal(out[fg], image[fg])
    np.testing.assert_array_equal(out[~fg], donor[~fg])


@pytest.mark.parametrize("how", ["tile", "mean"])
def test_swap_negative_is_the_anchor_background_where_both_masks_are_zero(how):
    anchor, anchor_mask = _image_and_mask(0)
    donor, _ = _image_and_mask(1)
    donor_mask = np.zeros_like(anchor_mask)
    donor_mask[6:11, 5:9] = 1  # overlaps the anchor's foreground in part
    filled = background.filled_background(anchor, anchor_mask, how)
    negative = background.swap_negative(filled, donor, donor_mask)
    both_bg = (anchor_mask[..., 0] == 0) & (donor_mask[..., 0] == 0)
    np.testing.assert_array_equal(negative[both_bg], anchor[both_bg])
    d = donor_mask[..., 0] > 0
    np.testing.assert_array_equal(negative[d], donor[d])
    hole = (anchor_mask[..., 0] > 0) & ~d  # the anchor's own foreground is gone
    assert not np.any(np.all(negative[hole] == anchor[hole], axis=-1))


def test_filled_background_by_hand():
    image = np.zeros((4, 6, 1), np.float32)
    image[:, :, 0] = np.arange(6)  # columns 0..5
    mask = np.zeros((4, 6, 1), np.float32)
    mask[1:3, 3:5] = 1
    mean = background.filled_background(image, mask, "mean")
    expected_mean = image[mask[..., 0] == 0].mean()
    np.testing.assert_allclose(mean[1:3, 3:5, 0], expected_mean)
    tile = background.filled_background(image, mask, "tile")
    # widest band outside the box: columns 0..2 (3 wide); tiled, column 3 is column 0 again
    np.testing.assert_array_equal(tile[1:3, 3:5, 0], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(tile[mask[..., 0] == 0], image[mask[..., 0] == 0])


def _data_cfg(**bgaug):
    cfg = config_lib.load_file(CONFIG).data
    cfg.bgaug.update(bgaug)
    return cfg


class _Donors:
    """Two records whose backgrounds are constants 0.25 and 0.75."""

    def __len__(self):
        return 2

    def __getitem__(self, j):
        return {"background": np.full((28, 28, 3), 0.25 + 0.5 * j, np.float32),
                "image": np.zeros((28, 28, 3), np.float32),
                "fg_mask": np.zeros((28, 28, 1), np.float32)}


def _views(cfg):
    views = augment.BackgroundViews(cfg, 28, ("fg_mask", "background"))
    views.__dict__["_donors"] = _Donors()  # cached_property's slot: no dataset read
    return views


@pytest.mark.parametrize("key", ["rm_prob", "random_prob"])
def test_application_rate_is_p_within_three_sigma(key):
    """Over 10,000 views the share with a changed background is p ± 3σ."""
    p, n = 0.3, 10_000
    cfg = _data_cfg(**{key: p})
    views = _views(cfg)
    image, mask = _image_and_mask(0, 28, 28)
    rng = np.random.default_rng(0)
    changed = sum(not np.array_equal(views._background_op(image, mask, rng, 0), image)
                  for _ in range(n))
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(changed / n - p) <= 3 * sigma


def test_masks_outside_the_foreground_range_get_no_background_op():
    cfg = _data_cfg(rm_prob=1.0, min_fg=0.05, max_fg=0.5)
    cfg.jitter.update(pad=0, brightness=0.0, contrast=0.0, gain=0.0, gray_prob=0.0)
    views = _views(cfg)
    image = np.random.default_rng(0).uniform(size=(28, 28, 3)).astype(np.float32)
    for covered in (0.0, 0.02, 0.9):
        mask = np.zeros((28, 28, 1), np.float32)
        mask.reshape(-1)[: int(covered * 28 * 28)] = 1
        record = {"image": image, "fg_mask": mask, "background": image, "label": 3, "index": 0}
        out = views(record, np.random.default_rng(1))["views"][0]["image"]
        for v in out:  # the only change left: the flip (jitter at strength 0 rounds only)
            assert np.allclose(v, image, atol=1e-6) or np.allclose(v, image[:, ::-1], atol=1e-6)
    mask = np.zeros((28, 28, 1), np.float32)
    mask[:10, :10] = 1  # 13 %: inside the range, so BG_RM (p = 1) applies
    out = views({"image": image, "fg_mask": mask, "background": image, "label": 3,
                 "index": 0}, np.random.default_rng(1))["views"][0]["image"]
    assert np.sum(np.abs(out[0]) < 1e-6) >= 28 * 28 * 3 - 100 * 3


def test_donors_are_other_records():
    views = _views(_data_cfg(random_prob=1.0))
    rng = np.random.default_rng(0)
    picks = {float(views._donor(rng, 1)["background"][0, 0, 0]) for _ in range(50)}
    assert picks == {0.25}  # record 1 (0.75) is never its own donor


def test_swaps_give_a_negative_on_the_anchor_background():
    cfg = _data_cfg(swap_prob=1.0)
    cfg.jitter.update(pad=0, brightness=0.0, contrast=0.0, gain=0.0, gray_prob=0.0)
    views = _views(cfg)
    image, mask = _image_and_mask(0, 28, 28)
    anchor_bg = np.full_like(image, 0.5)
    out = views({"image": image, "fg_mask": mask, "background": anchor_bg, "label": 1,
                 "index": 0}, np.random.default_rng(0))
    assert out["has_negative"] == 1.0 and out["negative"].shape == image.shape
    neg = out["negative"]
    # donor foreground (zeros) on the anchor's 0.5 (jitter at strength 0 rounds only)
    assert np.all((np.abs(neg) < 1e-6) | (np.abs(neg - 0.5) < 1e-6))
    positive = out["views"][0]["image"][1]
    fg = mask[..., 0] > 0
    # the positive's background is the donor's (0.75 from record 1), possibly flipped
    assert any(np.allclose(p[~fg], 0.75, atol=1e-6) for p in (positive, positive[:, ::-1]))


def test_spurious_set_layout_and_correlation():
    train = spurious.build("train")
    assert len(train) == 4096 and train.images.shape == (4096, 28, 28, 3)
    types, labels = train.extra["bg_type"], train.labels
    assert 0.88 < np.mean(types == labels) < 0.94  # 0.9 + 0.1 / 10 by chance, ± sampling
    rand = spurious.build("mixed_rand")
    assert abs(np.mean(rand.extra["bg_type"] == rand.labels) - 0.1) < 0.03
    same = spurious.build("mixed_same")
    assert np.array_equal(same.extra["bg_type"], same.labels)
    m = train.extra["fg_mask"][..., 0] > 0
    for i in range(5):  # foreground pixels are the item's grey value on every channel
        px = train.images[i][m[i]]
        assert np.all(px[:, 0] == px[:, 1]) and np.all(px[:, 0] > spurious.MASK_THRESHOLD)
        np.testing.assert_array_equal(train.images[i][~m[i]], train.extra["background"][i][~m[i]])
    assert np.all(spurious.build("only_fg").images[~(spurious.build("only_fg").extra[
        "fg_mask"][..., 0] > 0)] == 0)
    assert np.all(spurious.build("only_bg").extra["fg_mask"] == 0)
    random_bg = spurious.build("train_random_bg")
    np.testing.assert_array_equal(random_bg.extra["fg_mask"], train.extra["fg_mask"])


def test_stripes_follow_the_formula():
    rng = np.random.default_rng(0)
    bg = spurious.backgrounds(np.array([3]), rng)[0]
    rng = np.random.default_rng(0)
    phase = rng.uniform(0, 2 * np.pi, size=1)[0]
    noise = rng.normal(0, 0.03, size=(1, 28, 28, 3))[0]
    theta, freq = 3 * np.pi / 10, 0.18 + 0.08 * 0
    y, x = 5, 7
    colour = 0.5 + 0.5 * np.cos(2 * np.pi * (0.3 + np.array([0, 1, 2]) / 3))
    wave = 0.3 + 0.25 * np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)) + phase)
    np.testing.assert_allclose(bg[y, x], np.clip(wave * (0.4 + 0.6 * colour) + noise[y, x], 0, 1),
                               rtol=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"data.bgaug.rm_prob": 1.5}, "rm_prob"),
    ({"data.bgaug.rm_fill": "white"}, "rm_fill='white'; valid choices: black, grey"),
    ({"data.bgaug.donor_hole_fill": "blur"}, "donor_hole_fill='blur'"),
    ({"data.bgaug.min_fg": 0.6, "data.bgaug.max_fg": 0.5}, "exceeds max_fg"),
    ({"data.bgaug.swap_prob": 0.5, "task": "lib.task:Classification"}, "BG_Swaps adds a hard"),
    ({"data.bgaug.swap_prob": 0.5, "task": "lib.ssl.byol:BYOL"}, "BG_Swaps adds a hard"),
    ({"data.views": (3,), "data.view_sizes": (28,)}, r"data.views=\(3,\): BackgroundViews"),
])
def test_bad_settings_fail_before_anything_is_written(tmp_path, changes, message):
    config = config_lib.updated(config_lib.load_file(CONFIG, "quick"), changes)
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.validate(config)
        procedure.run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _record(**changes):
    image = np.zeros((28, 28, 3), np.float32)
    record = {"image": image, "label": 1, "fg_mask": np.ones((28, 28, 1), np.float32),
              "background": image}
    return {k: v for k, v in {**record, **changes}.items() if v is not None}


@pytest.mark.parametrize("record, changes, message", [
    (_record(fg_mask=None), {}, "carry no 'fg_mask'"),
    (_record(fg_mask=np.ones((28, 28), np.float32)), {}, r"fg_mask has shape \(28, 28\)"),
    (_record(fg_mask=np.ones((14, 14, 1), np.float32)), {}, r"must be \(28, 28, 1\)"),
    (_record(fg_mask=np.full((28, 28, 1), 255.0, np.float32)), {}, "span"),
    (_record(background=None), {"data.bgaug.random_prob": 0.9}, "carry no clean 'background'"),
])
def test_records_without_a_usable_mask_fail_before_anything_is_written(
        tmp_path, monkeypatch, record, changes, message):
    monkeypatch.setattr(procedure.sources, "open_split",
                        lambda *a, **k: types.SimpleNamespace(records=[record]))
    config = config_lib.updated(config_lib.load_file(CONFIG, "quick"), changes)
    with pytest.raises(data.DatasetError, match=message):
        procedure.run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_moco_with_bg_swaps_runs_the_procedure_and_fills_its_queue(tmp_path):
    """The paper's MoCo on the real view pipeline: hard negatives through the key encoder,
    keys queued, probes and kNN on the trained query encoder."""
    config = config_lib.load_file(CONFIG, "quick,method=moco,variant=bg_swaps")
    results = procedure.run(config, tmp_path / "run")
    assert 0 <= results["bg_gap"] <= 1 and 0 <= results["knn/original"] <= 1
    ckpt = saved(tmp_path / "run/pretrain", config.total_steps)
    queue = ckpt["model_state"]["queue"]
    filled = config.total_steps * config.data.batch_size
    assert int(queue["filled"]) == filled
    np.testing.assert_allclose(np.linalg.norm(queue["items"][:filled], axis=1), 1, rtol=1e-5)
    assert not np.any(queue["items"][filled:])


def test_records_carry_their_index():
    split = spurious.source(ml_collections.ConfigDict(), "original")
    assert isinstance(split.records, records.ArrayRecords)
    assert split.records[7]["index"] == 7 and split.spatial == ("fg_mask", "background")


def _measurements(gaps):
    """Two seeds per variant with the given BG-Gaps; Mixed-Rand accuracy 0.5 − gap."""
    return {v: [{"bg_gap": g, "probe/mixed_rand": 0.5 - g, "fg_probe/mixed_rand": 0.6 - g,
                 "probe/only_bg": 0.1 + g} for g in (gap - 0.01, gap + 0.01)]
            for v, gap in gaps.items()}


def test_claims_decide_on_seed_means_and_the_plot_is_written(tmp_path):
    rows = {c.id: c.evaluate(_measurements({"baseline": 0.3, "bg_rm": 0.28, "bg_random": 0.1,
                                            "bg_swaps": 0.05}))
            for c in claims.SMALL_CLAIMS}
    assert rows["spurious: BG-Gap bg_random ≤ baseline − 0.05"] == (
        "bg_random 0.100, baseline 0.300", True)
    assert rows["spurious: BG-Gap bg_rm ≤ baseline − 0.05"][1] is False  # 0.28 > 0.25
    assert rows["spurious: Mixed-Rand acc bg_swaps ≥ bg_random"][1] is True
    assert rows["spurious: Only-BG acc of bg_random nearer chance than baseline's"][1] is True
    missing = claims.SMALL_CLAIMS[0].evaluate(_measurements({"baseline": 0.3}))
    assert missing[1] is False and "runs per variant" in missing[0]
    claims.plot(_measurements({"baseline": 0.3, "bg_random": 0.1}), tmp_path)
    assert (tmp_path / "bg_gap_mixed_rand.png").stat().st_size > 1000
