"""The selectivity-regularised task and the robustness evaluation on a quick run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.class_selectivity import procedure, task
from lib import config as config_lib
from lib import data, train
from tests.helpers import REPO

CONFIG = REPO / "experiments/class_selectivity/configs/fashion_mnist.py"


def _si_numpy(acts, labels, classes, eps=1e-7):
    means = np.stack([acts[labels == c].mean(0) for c in range(classes)])
    top = means.max(0)
    rest = (means.sum(0) - top) / (classes - 1)
    return (top - rest) / (top + rest + eps)


@pytest.mark.parametrize("alpha", [-2.0, 0.0, 2.0])
def test_loss_is_cross_entropy_minus_alpha_times_selectivity(alpha):
    config = config_lib.load_file(CONFIG, f"quick,alpha={alpha}")
    setup = train.build(config)
    model = setup.model(setup.init_state)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(size=(40, 28, 28, 1)), jnp.float32),
             "label": jnp.asarray(np.arange(40) % 10)}
    loss, metrics = task.SelectivityRegularized(config).train_loss(model, batch, None, 0)
    logits, feats = model(batch["image"], train=False, features=True)
    labels = np.asarray(batch["label"])
    si = np.mean([_si_numpy(np.asarray(feats[k]), labels, 10).mean() for k in ("dense0",
                                                                                "dense1")])
    logp = np.asarray(jax.nn.log_softmax(logits))
    ce = -logp[np.arange(40), labels].mean()
    assert float(metrics["selectivity"]) == pytest.approx(si, rel=1e-5)
    assert float(loss) == pytest.approx(ce - alpha * si, rel=1e-5)


def test_alpha_warmup_is_linear_then_constant():
    config = config_lib.updated(config_lib.load_file(CONFIG, "quick,alpha=-2"),
                                {"selectivity.alpha_warmup_steps": 4})
    regularized = task.SelectivityRegularized(config)
    assert [float(regularized.alpha_at(jnp.asarray(k))) for k in (0, 1, 3, 10)] == \
        [-0.5, -1.0, -2.0, -2.0]
    config = config_lib.updated(config, {"selectivity.alpha_warmup_steps": -1})
    with pytest.raises(config_lib.ConfigError, match="alpha_warmup_steps=-1 must be >= 0"):
        task.SelectivityRegularized(config)


def test_unknown_corruption_is_refused_before_evaluating(tmp_path):
    config = config_lib.updated(config_lib.load_file(CONFIG, "quick"),
                                {"robustness.corruptions": ("fig",), "total_steps": 2})
    with pytest.raises(config_lib.ConfigError, match="unknown corruption 'fig'"):
        procedure.run(config, tmp_path)


def test_unknown_layer_is_refused(tmp_path):
    config = config_lib.updated(config_lib.load_file(CONFIG, "quick"),
                                {"selectivity.layers": ("dense7",)})
    with pytest.raises(config_lib.ConfigError, match="'dense7'.*match no layer.*dense0, dense1"):
        procedure.run(config, tmp_path)


def test_normalised_model_is_attacked_in_pixel_space(tmp_path):
    """With data.normalization=dataset the evaluation feeds [0, 1] pixels and normalises inside
    the model call: clean accuracy equals the trainer's, and the FGSM images it attacks with
    are pixel images (checked: the attack at ε is as strong as on the same model fed
    normalised images attacked at ε/std)."""
    config = config_lib.updated(config_lib.load_file(CONFIG, "quick"),
                                {"data.normalization": "dataset", "total_steps": 30,
                                 "robustness.corruptions": ("",)})
    results = procedure.run(config, tmp_path)
    assert results["clean_accuracy"] == pytest.approx(results["eval/accuracy"], abs=1e-6)
    mean, std = data.normalization_stats(config.data)
    _, setup, state = train.load_final(tmp_path / "train")
    model = setup.model(state)

    def loss(v, y):
        return -jnp.mean(jax.nn.log_softmax(model(v, train=False))[jnp.arange(len(y)), y])

    correct = count = 0
    for b in data.eval_batches(config.data):  # normalised batches, attacked by hand
        x, y, keep = jnp.asarray(b["image"]), jnp.asarray(b["label"]), b["mask"] > 0
        grad = jax.grad(loss)(x, y)
        low, high = (0 - mean[0]) / std[0], (1 - mean[0]) / std[0]
        adv = jnp.clip(x + 0.05 / std[0] * jnp.sign(grad), low, high)
        hits = np.asarray(jnp.argmax(model(adv, train=False), -1) == y)
        correct, count = correct + hits[keep].sum(), count + keep.sum()
    assert results["accuracy/fgsm_0.05"] == pytest.approx(correct / count, abs=2e-3)


def test_quick_run_evaluates_selectivity_and_robustness(tmp_path):
    config = config_lib.load_file(CONFIG, "quick,alpha=1")
    results = procedure.run(config, tmp_path)
    for key in ("clean_accuracy", "selectivity/dense0", "selectivity/mean",
                "accuracy/fgsm_0.05", "relative_accuracy/noise_0.4", "pca_dim/dense1",
                "pca_dim_change/fgsm_0.01/dense0", "gradient_cv/dense0", "gradient_cv/mean"):
        assert key in results, key
    assert results["clean_accuracy"] == pytest.approx(results["eval/accuracy"], abs=1e-6)
    assert results["relative_accuracy/noise_0.2"] == pytest.approx(
        results["accuracy/noise_0.2"] / results["clean_accuracy"])
    per = [results[f"accuracy/corruption/{n}_{s}"] for n in ("gaussian_noise", "contrast")
           for s in (1, 5)]
    assert results["corruption_accuracy/mean"] == pytest.approx(np.mean(per))
    assert results["corruption_accuracy/severity_5"] == pytest.approx(np.mean(per[1::2]))
    assert results["relative_corruption_accuracy"] == pytest.approx(
        np.mean(per) / results["clean_accuracy"])
    # selectivity over the whole test split, independently: activations of every test image
    _, setup, state = train.load_final(tmp_path / "train")
    model = setup.model(state)
    images, labels = [], []
    for b in data.eval_batches(config.data):
        keep = np.asarray(b["mask"]) > 0
        images.append(np.asarray(b["image"])[keep])
        labels.append(np.asarray(b["label"])[keep])
    _, feats = model(jnp.asarray(np.concatenate(images)), train=False, features=True)
    labels = np.concatenate(labels)
    expected = _si_numpy(np.asarray(feats["dense0"], np.float64), labels, 10).mean()
    assert results["selectivity/dense0"] == pytest.approx(expected, rel=1e-4)
    # dimensionality from summed moments against an SVD of the whole activation matrix
    centred = np.asarray(feats["dense1"], np.float64) - np.asarray(feats["dense1"]).mean(0)
    share = np.cumsum(np.linalg.svd(centred, compute_uv=False) ** 2)
    assert results["pca_dim/dense1"] == int(np.searchsorted(share / share[-1], 0.95) + 1)
    assert 0 < results["pca_dim_change/corruption_contrast_5/dense0"] <= 256
    assert results["pca_dim_change/corruption_mean/dense0"] == pytest.approx(np.mean(
        [results[f"pca_dim_change/corruption_{n}_{s}/dense0"]
         for n in ("gaussian_noise", "contrast") for s in (1, 5)]))
    # FGSM hurts more at larger ε
    assert results["accuracy/fgsm_0.05"] <= results["accuracy/fgsm_0.01"]
    # other robustness settings re-evaluate the finished run without retraining it
    again = procedure.run(config_lib.updated(config, {"robustness.fgsm_eps": (0.02,)}), tmp_path)
    assert again["clean_accuracy"] == results["clean_accuracy"]
    assert "accuracy/fgsm_0.02" in again and "accuracy/fgsm_0.05" not in again


def test_resnet20_config_runs_on_tfds_mock(tmp_path):
    """configs/cifar10.py (block-output selectivity, option-A ResNet-20) end to end on TFDS's
    mock CIFAR-10, shortened: 2 steps, one corruption of each colour kind, FGSM and PGD-2."""
    import tensorflow_datasets as tfds

    c = config_lib.load_file(REPO / "experiments/class_selectivity/configs/cifar10.py",
                             "alpha=-1")
    c = config_lib.updated(c, {
        "total_steps": 2, "log_every": 1, "eval_every": 0, "checkpoint_every": 2,
        "progress": False, "data.batch_size": 16, "data.eval_batch_size": 16,
        "data.num_workers": 0, "robustness.corruptions": ("saturate", "brightness"),
        "robustness.severities": (3,), "robustness.fgsm_eps": (0.01,),
        "robustness.pgd_eps": (0.01,), "robustness.pgd_steps": 2})
    with tfds.testing.mock_data(num_examples=32):
        results = procedure.run(c, tmp_path)
    assert 0.0 <= results["selectivity/stage3/block2"] <= 1.0
    assert {"accuracy/corruption/saturate_3", "accuracy/pgd_0.01",
            "pca_dim_change/pgd_0.01/stage1/block0"} <= set(results)


def test_tiny_imagenet_config_reads_released_corruptions(tmp_path):
    """configs/tiny_imagenet.py (ResNet-18, ImageNet normalisation) end to end on a fake
    Tiny ImageNet: the released Tiny ImageNet-C is read by file; a copy of the clean images
    scores the clean accuracy with no change in the representation, a darkened copy does not."""
    from tests.helpers import fake_tiny_imagenet

    fake_tiny_imagenet(tmp_path / "tin", {"contrast_5": lambda x: x, "fog_5": lambda x: x // 4})
    c = config_lib.load_file(REPO / "experiments/class_selectivity/configs/tiny_imagenet.py",
                             "alpha=-0.5")
    c = config_lib.updated(c, {
        "total_steps": 2, "log_every": 1, "eval_every": 0, "checkpoint_every": 2,
        "progress": False, "model.width": 8, "data.data_dir": str(tmp_path / "tin"),
        "data.batch_size": 8, "data.eval_batch_size": 104, "data.num_workers": 0,
        "selectivity.layers": ("stage1/block0", "stage4/block1"),
        "robustness.corruption_dir": str(tmp_path / "tin" / "c"),
        "robustness.corruptions": ("contrast", "fog"), "robustness.severities": (5,),
        "robustness.fgsm_eps": (0.01,), "robustness.pgd_eps": (0.0,)})
    results = procedure.run(c, tmp_path / "run")
    assert results["accuracy/corruption/contrast_5"] == results["clean_accuracy"]
    assert results["pca_dim_change/corruption_contrast_5/stage1/block0"] == 0
    assert results["pca_dim_change/corruption_fog_5/stage1/block0"] > 0
    assert results["clean_accuracy"] == pytest.approx(results["eval/accuracy"], abs=1e-6)


def test_analysis_tables_correlations_and_plot(tmp_path, capsys):
    from experiments.class_selectivity import analysis

    dirs = []
    for i, (alpha, si, acc, rel, fgsm) in enumerate([
            (-2.0, 0.07, 0.82, 0.93, 0.18), (-2.0, 0.06, 0.83, 0.92, 0.19),
            (0.0, 0.55, 0.88, 0.91, 0.33), (2.0, 0.81, 0.87, 0.90, 0.42)]):
        w = tmp_path / f"r{i}"
        w.mkdir()
        c = config_lib.load_file(CONFIG, f"alpha={alpha}")
        (w / "config.json").write_text(c.to_json_best_effort())
        (w / "results.json").write_text(__import__("json").dumps({
            "selectivity/mean": si, "clean_accuracy": acc, "relative_corruption_accuracy": rel,
            "accuracy/fgsm_0.05": fgsm, "pca_dim/dense0": 10 + i, "pca_dim/dense1": 5,
            "pca_dim_change/fgsm_0.05/dense0": 30, "pca_dim_change/fgsm_0.05/dense1": 20,
            "pca_dim_change/corruption_mean/dense0": 9.5,
            "pca_dim_change/corruption_mean/dense1": 4.0,
            "pca_dim_change/corruption_contrast_1/dense0": 8}))
        dirs.append(str(w))
    summary = analysis.summarize(analysis.load_runs(dirs))
    assert summary["table"][-2.0]["selectivity/mean"][0] == pytest.approx(0.065)
    assert summary["table"][-2.0]["runs"] == 2
    # SI ranks 2,1,3,4 against robustness ranks 4,3,2,1 and FGSM ranks 1,2,3,4
    assert summary["correlations"]["spearman(SI, relative_corruption_accuracy)"] == \
        pytest.approx(-0.8)
    assert summary["correlations"]["spearman(SI, accuracy/fgsm_0.05)"] == pytest.approx(0.8)
    assert analysis.main([*dirs, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "selectivity.png").exists()
    assert analysis.change_perturbations(analysis.load_runs(dirs)[0][1]) == [
        "corruption_mean", "fgsm_0.05"]
    assert "α = -2 (n=2)" in capsys.readouterr().out
