"""background_aug at paper scale: packed user masks (format, binarisation, the errors that name
the file to fix), BackgroundCrops (a background op per crop source, then the crop), and the
ResNet-50 configs of MoCo v2, BYOL and SwAV (their sizes, and each one's quick run)."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from experiments.background_aug import augment, masks, procedure
from lib import config as config_lib
from lib import registry, train
from lib.data import pipeline
from lib.data.errors import DatasetError
from lib.data.pipeline import DatasetInfo
from tests.helpers import REPO, saved
from tests.test_imagenet_sets import fake_imagenet9

CONFIG = REPO / "experiments/background_aug/configs/spurious.py"
IMAGENET = REPO / "experiments/background_aug/configs/imagenet.py"


def _write_masks(folder, shapes):
    """Saliency-like PNGs: values 0..255 across columns, so ≥ 128 is the right part; the
    second one as RGB (converted)."""
    folder.mkdir(parents=True)
    expected = {}
    for i, (h, w) in enumerate(shapes):
        values = np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))
        image = Image.fromarray(values)
        (image.convert("RGB") if i == 1 else image).save(folder / f"n0_{i}.png")
        expected[f"n0_{i}"] = (values >= 128).astype(np.float32)[..., None]
    return expected


def test_packed_masks_come_back_binarised_on_their_records(tmp_path):
    shapes = [(5, 7), (6, 4), (3, 9)]
    expected = _write_masks(tmp_path / "png", shapes)
    lines = []
    assert masks.pack(tmp_path / "png", tmp_path / "packed", "train", lines.append) == 3
    assert "packed 3/3 masks" in lines[-1] and "ETA" in lines[-1]
    assert json.loads((tmp_path / "packed/train.keys.json").read_text()) == sorted(expected)
    images = [np.zeros((h, w, 3), np.uint8) for h, w in shapes]
    names = np.array([b"n0_2.JPEG", b"n0_0.JPEG", b"n0_1.JPEG"])  # TFDS gives bytes
    base = _Listed([{"image": images[2], "label": 0, "file_name": names[0]},
                    {"image": images[0], "label": 1, "file_name": names[1]},
                    {"image": images[1], "label": 2, "file_name": names[2]}])
    recs = masks.MaskedRecords(base, masks.open_pack(tmp_path / "packed", "train"))
    for record, stem in zip(recs, ["n0_2", "n0_0", "n0_1"]):
        assert "file_name" not in record
        np.testing.assert_array_equal(record["fg_mask"], expected[stem])
    sub = recs.subset(np.array([1]))
    np.testing.assert_array_equal(sub[0]["fg_mask"], expected["n0_0"])


class _Listed(list):
    def subset(self, indices):
        return _Listed(self[i] for i in indices)


def test_a_missing_or_misshapen_mask_names_the_image_to_fix(tmp_path):
    _write_masks(tmp_path / "png", [(5, 7)])
    masks.pack(tmp_path / "png", tmp_path / "packed", "train", lambda line: None)
    pack = masks.open_pack(tmp_path / "packed", "train")
    wrong = masks.MaskedRecords(_Listed([{"image": np.zeros((5, 8, 3), np.uint8),
                                          "file_name": b"n0_0.JPEG"}]), pack)
    with pytest.raises(DatasetError, match="the mask of 'n0_0' .* is 5x7, its image 5x8"):
        wrong[0]
    missing = masks.MaskedRecords(_Listed([{"image": np.zeros((5, 7, 3), np.uint8),
                                            "file_name": b"n9_9.JPEG"}]), pack)
    with pytest.raises(DatasetError, match="no mask for the image 'n9_9'"):
        missing[0]
    with pytest.raises(DatasetError, match="validation.array_record not found"):
        masks.open_pack(tmp_path / "packed", "validation")


def test_packing_never_overwrites_and_the_command_fails_cleanly(tmp_path):
    _write_masks(tmp_path / "png", [(5, 7)])
    masks.pack(tmp_path / "png", tmp_path / "packed", "train", lambda line: None)
    before = (tmp_path / "packed/train.array_record").read_bytes()
    command = [sys.executable, "-m", "experiments.background_aug.masks",
               f"--masks_dir={tmp_path / 'png'}", f"--out_dir={tmp_path / 'packed'}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "exists; packing would overwrite it" in done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "packed/train.array_record").read_bytes() == before
    command[3] = f"--masks_dir={tmp_path / 'nowhere'}"
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "is not a directory" in done.stderr
    assert "Traceback" not in done.stderr


def _crops_cfg(**bgaug):
    cfg = config_lib.load_file(CONFIG).data
    cfg.augment = "experiments.background_aug.augment:BackgroundCrops"
    cfg.views, cfg.view_sizes = (2, 3), (16, 8)
    cfg.view_min_scale, cfg.view_max_scale = (1.0, 0.5), (1.0, 1.0)
    cfg.bgaug.update(bgaug)
    return cfg


class _Donors:
    """One donor: 200 everywhere, foreground a square (its hole filled by the mean: 200)."""

    def __len__(self):
        return 1

    def __getitem__(self, j):
        mask = np.zeros((16, 16, 1), np.float32)
        mask[4:8, 4:8] = 1
        return {"image": np.full((16, 16, 3), 200, np.uint8), "fg_mask": mask}


def _crops(cfg):
    crops = augment.BackgroundCrops(cfg, 16, ("fg_mask",))
    crops.__dict__["_donors"] = _Donors()
    return crops


def _record():
    image = np.random.default_rng(0).integers(1, 255, size=(16, 16, 3)).astype(np.uint8)
    mask = np.zeros((16, 16, 1), np.float32)
    mask[:, :8] = 1  # the left half
    return {"image": image, "fg_mask": mask, "label": 3}


def _is(view, expected):
    return np.array_equal(view, expected) or np.array_equal(view, expected[:, ::-1])


def test_each_crop_source_draws_its_own_background_op_before_the_crop():
    record = _record()
    removed = record["image"].copy()
    removed[:, 8:] = 0
    outcomes = []
    for seed in range(12):
        out = _crops(_crops_cfg(rm_prob=0.5))(record, np.random.default_rng(seed))
        (big, small) = (g["image"] for g in out["views"])
        assert big.shape == (2, 16, 16, 3) and small.shape == (3, 8, 8, 3)
        assert big.dtype == small.dtype == np.uint8 and out["label"] == 3
        assert "fg_mask" not in out and "image" not in out
        for view in big:  # full-size crops: the image itself, or its flip
            assert _is(view, record["image"]) or _is(view, removed)
            outcomes.append(_is(view, removed))
    assert 0 < sum(outcomes) < len(outcomes)  # drawn per view, not once per record
    assert any(a != b for a, b in zip(outcomes[::2], outcomes[1::2]))


def test_bg_swaps_puts_the_positive_on_a_donor_background_and_adds_the_negative():
    record = _record()
    out = _crops(_crops_cfg(swap_prob=1.0, donor_hole_fill="mean"))(
        record, np.random.default_rng(0))
    positive = record["image"].copy()
    positive[:, 8:] = 200
    assert _is(out["views"][0]["image"][1], positive)
    assert _is(out["views"][0]["image"][0], record["image"])  # no other op drawn
    assert out["has_negative"] == 1
    negative = out["negative"]
    assert negative.shape == (16, 16, 3) and negative.dtype == np.uint8
    square = np.zeros((16, 16), bool)
    square[4:8, 4:8] = True
    assert np.all(negative[square] == 200) or np.all(negative[:, ::-1][square] == 200)



def _param_count(module, prefix):
    state = nnx.state(module, nnx.Param)
    return sum(int(np.prod(v.get_value().shape)) for path, v in nnx.to_flat_state(state)
               if path[0] == prefix)


# torchvision's ResNet-50 has 25,557,032 parameters, 2,049,000 of them in the 1000-way fc
RESNET50_ENCODER = 25_557_032 - 2_049_000


@pytest.mark.parametrize("method, head, extra", [
    # MoCo v2: 2048→2048→128 (weights and biases), BatchNorm-free; its key copy is no Param
    ("mocov2", 2048 * 2048 + 2048 + 2048 * 128 + 128, 0),
    # BYOL: 2048→4096→BN→256, and the predictor 256→4096→BN→256
    ("byol", 2048 * 4096 + 4096 + 2 * 4096 + 4096 * 256 + 256,
     256 * 4096 + 4096 + 2 * 4096 + 4096 * 256 + 256),
    # SwAV: 2048→2048→BN→128, and 3,000 prototypes of 128 (no bias)
    ("swav", 2048 * 2048 + 2048 + 2 * 2048 + 2048 * 128 + 128, 3000 * 128),
])
def test_paper_models_have_the_published_sizes(method, head, extra):
    config = config_lib.load_file(IMAGENET, f"method={method}")
    task = registry.resolve(config.task, "task")(config)
    info = DatasetInfo("imagenet2012", (224, 224, 3), 1000, 1, 1, views=((2, 224),))
    model = nnx.eval_shape(lambda: task.build_model(config, info, nnx.Rngs(0)))
    net = {"mocov2": lambda m: m.query, "byol": lambda m: m.online,
           "swav": lambda m: m.net}[method](model)
    assert _param_count(net, "encoder") == RESNET50_ENCODER
    assert _param_count(net, "projector") == head
    others = {"byol": "predictor", "swav": "prototypes"}
    if method in others:
        assert _param_count(model, others[method]) == extra


def test_bg_swaps_needs_a_method_with_negatives():
    with pytest.raises(ValueError, match="variant=bg_swaps needs negatives"):
        config_lib.load_file(IMAGENET, "method=byol,variant=bg_swaps")


@pytest.mark.parametrize("arg", ["method=mocov2,variant=bg_swaps", "method=byol,variant=bg_random",
                                 "method=swav,variant=bg_rm"])
def test_quick_paper_runs_pretrain_then_evaluate_the_frozen_encoder(tmp_path, arg):
    """ResNet-50 at width 8, the method's views (SwAV's local crops), colour recipe and a
    background op through BackgroundCrops, 4 steps on the spurious-background set; then the
    linear stage, whose encoder must be the pretrained one exactly (parameters and BatchNorm
    statistics) and stay so, while the head trains; then fine-tuning, which trains both."""
    config = config_lib.load_file(IMAGENET, f"{arg},quick=True,p=0.5")
    if "mocov2" in arg:  # and ImageNet-9, whose map sends all 10 classes to superclass 3
        fake_imagenet9(tmp_path / "in9", {"mixed_same": [1, 1, 1, 2, 1, 1, 1, 1, 1],
                                          "mixed_rand": [1] * 9}, {str(i): 3 for i in range(10)})
        config.imagenet_sets.update({"sets": ("imagenet9", "adversarial"),
                                     "in9_dir": str(tmp_path / "in9"),
                                     "in9_variants": ("mixed_same", "mixed_rand"),
                                     "attack_eps": (0.0, 64.0), "pgd_steps": 2,
                                     "attack_examples": config.data.eval_examples})
    run = tmp_path / "run"
    results = procedure.imagenet(config, run)
    if "mocov2" in arg:  # whatever the model predicts, superclass 3 is right for class 3 only
        assert results["in9/mixed_same"] == pytest.approx(2 / 10)
        assert results["in9/mixed_rand"] == pytest.approx(1 / 9)
        assert results["in9/bg_gap"] == pytest.approx(2 / 10 - 1 / 9, abs=1e-6)
        # ε = 0 changes nothing; the clean pass is the linear stage's own evaluation
        clean = results["adversarial/clean"]
        assert clean == pytest.approx(results["linear/accuracy"], abs=1e-6)
        assert results["adversarial/fgsm_0"] == results["adversarial/pgd_0"] == clean
        assert results["adversarial/fgsm_64"] <= clean and results["adversarial/pgd_64"] <= clean
    rows = [json.loads(line) for line in (run / "pretrain/metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert 0 <= results["linear/accuracy"] <= 1
    prefix = procedure.ENCODER_PREFIX[config.task]
    pretrained, final = saved(run / "pretrain", 4), saved(run / "linear", 4)
    start = jax.device_get(train.Trainer(procedure.linear_config(config, run / "pretrain"))
                           .starting_state()[0])
    encoder = [k for k in final["params"] if k.startswith("encoder/")]
    assert encoder
    for k in encoder:
        source = pretrained["params"][prefix + k.removeprefix("encoder/")]
        np.testing.assert_array_equal(start["params"][k], source)
        np.testing.assert_array_equal(final["params"][k], source)
    node = pretrained["batch_stats"]
    for part in prefix.strip("/").split("/"):
        node = node[part]
    jax.tree.map(np.testing.assert_array_equal, final["batch_stats"]["encoder"], node)
    head = [k for k in final["params"] if k.startswith("head/")]
    assert head and all(not np.array_equal(start["params"][k], final["params"][k]) for k in head)
    # fine-tuning starts from the same encoder and trains it, BatchNorm statistics included
    tuned = saved(run / "finetune_quick", 4)
    tune_start = jax.device_get(train.Trainer(procedure.finetune_configs(
        config, run / "pretrain")["quick"]).starting_state()[0])
    for k in encoder:
        np.testing.assert_array_equal(tune_start["params"][k], start["params"][k])
    assert sum(not np.array_equal(tuned["params"][k], start["params"][k]) for k in encoder) > \
        len(encoder) // 2
    assert any(not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(tuned["batch_stats"]["encoder"]), jax.tree.leaves(node)))
    assert 0 <= results["finetune_quick/accuracy"] <= 1


def test_the_hard_negative_is_normalised_like_the_images():
    """uint8 records: the collate scales `negative` to [0, 1] as it does `image`."""
    u8 = np.random.default_rng(0).integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    collate = pipeline._Collate(np.full(3, 1 / 255, np.float32), np.zeros(3, np.float32))
    batch = collate([{"image": u8, "negative": u8, "label": 1}] * 2)
    np.testing.assert_allclose(batch["negative"], u8[None].repeat(2, 0) / 255, rtol=1e-6)
    np.testing.assert_array_equal(batch["negative"], batch["image"])


def test_background_crops_resample_and_background_views_do_not():
    """data.image_size (the eval crop) applies to BackgroundCrops, as to 'views'."""
    cfg = _crops_cfg()
    cfg.image_size = 24
    pipeline._check(cfg)  # no error: a resampling augmentation
    assert pipeline._resizes(cfg)
    small = config_lib.load_file(CONFIG).data
    assert not pipeline._resizes(small)
    small.image_size = 24
    with pytest.raises(config_lib.ConfigError, match="data.image_size is used only with an "
                                                     "augmentation that resamples"):
        pipeline._check(small)
