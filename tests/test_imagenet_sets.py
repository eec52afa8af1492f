"""The ImageNet robustness sets (lib/evaluators/imagenet_sets.py, lib/data/imagenet9.py):
scoring by hand on worked examples, ReaL's multi-hot labels, and the ImageNet-9 folder layout
and its class map with the errors that say what to fix."""

import json

import numpy as np
import pytest
from PIL import Image

from lib.data import imagenet9
from lib.data.errors import DatasetNotFoundError
from lib.evaluators import imagenet_sets


def test_restricted_predictions_pick_the_best_allowed_class():
    logits = np.array([[9.0, 1.0, 2.0, 3.0],    # best overall is 0, not allowed
                       [0.0, 5.0, 4.0, -1.0],
                       [0.0, -2.0, -3.0, -1.0]])
    np.testing.assert_array_equal(imagenet_sets.restricted_predictions(logits, [1, 3]),
                                  [3, 1, 3])


def test_superclass_accuracy_by_hand():
    class_map = np.array([-1, 0, 0, 1, 2])
    predictions = np.array([1, 0, 3, 2, 4])  # superclasses 0, none, 1, 0, 2
    labels = np.array([0, 0, 1, 1, 2])       # right, wrong (outside), right, wrong, right
    assert imagenet_sets.superclass_accuracy(predictions, labels, class_map) == pytest.approx(0.6)


def test_multilabel_accuracy_leaves_out_images_without_labels():
    sets = np.zeros((4, 5), bool)
    sets[0, [1, 2]] = True
    sets[1, 4] = True
    sets[3, 0] = True  # row 2 has no label: left out
    predictions = np.array([2, 3, 0, 0])  # right, wrong, (ignored), right
    assert imagenet_sets.multilabel_accuracy(predictions, sets) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no image has a label"):
        imagenet_sets.multilabel_accuracy(predictions, np.zeros((4, 5), bool))


def test_real_records_turn_label_lists_into_multi_hot_vectors():
    class Listed(list):
        def subset(self, indices):
            return Listed(self[i] for i in indices)

    base = Listed([{"image": 0, "label": 3, "real_label": np.array([3, 7])},
                   {"image": 1, "label": 5, "real_label": np.array([], np.int64)}])
    recs = imagenet_sets.RealRecords(base, 10)
    np.testing.assert_array_equal(np.flatnonzero(recs[0]["real_label"]), [3, 7])
    assert recs[0]["label"] == 3 and not recs[1]["real_label"].any()
    assert np.flatnonzero(recs.subset([0])[0]["real_label"]).tolist() == [3, 7]


def fake_imagenet9(root, counts: dict, mapping: dict, side: int = 224):
    """A backgrounds_challenge-like folder: counts[variant][c] images in class folder c."""
    for variant, per_class in counts.items():
        for c, n in enumerate(per_class):
            folder = root / variant / "val" / f"{c:02d}_class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.full((side, side, 3), 20 * c + i, np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.JPEG")
    (root / imagenet9.MAP_FILE).write_text(json.dumps(mapping))


def test_imagenet9_folders_give_labels_by_folder_number(tmp_path):
    fake_imagenet9(tmp_path, {"mixed_rand": [1, 2, 0, 1, 1, 1, 1, 1, 3]},
                   {str(i): i % 9 - (i == 0) for i in range(12)}, side=8)
    recs = imagenet9.load("imagenet9/mixed_rand", "val", str(tmp_path))
    assert recs.labels.tolist() == [0, 1, 1, 3, 4, 5, 6, 7, 8, 8, 8]
    assert recs[1]["image"].shape == (8, 8, 3)
    np.testing.assert_array_equal(imagenet9.class_map(str(tmp_path), 12),
                                  [-1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2])


def test_imagenet9_errors_say_what_to_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGENET9_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match="set data.data_dir \\(or \\$IMAGENET9_DIR\\)"):
        imagenet9.load("imagenet9/original", "val", "")
    with pytest.raises(DatasetNotFoundError, match="should hold the nine class folders"):
        imagenet9.load("imagenet9/original", "val", str(tmp_path))
    (tmp_path / imagenet9.MAP_FILE).write_text(json.dumps({"0": 1, "1": 12}))
    with pytest.raises(DatasetNotFoundError, match="missing \\['2'"):
        imagenet9.class_map(str(tmp_path), 3)
    with pytest.raises(DatasetNotFoundError, match="bad values \\{'1': 12\\}"):
        imagenet9.class_map(str(tmp_path), 2)
