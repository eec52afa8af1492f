"""The trainer's numbers against numpy: the update of SGD with momentum and coupled L2 and of
Adam, the logged window means and learning rate, evaluation over padded batches, and a short
run that learns. The model is one linear layer (toy_tasks:linear_classifier) on digits."""

import jax
import numpy as np
import pytest
from helpers import digits_config, read_metrics

from lib import data, train

LINEAR = {"model.name": "toy_tasks:linear_classifier", "log_every": 3, "progress": False,
          "optim.milestones": (2, 5), "optim.decay_factor": 0.5}


def softmax_ce(w, b, x, y):
    """(mean cross-entropy, dL/dw, dL/db) of logits x·w + b, in float64."""
    logits = x @ w + b
    logits = logits - logits.max(1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    d = (p - np.eye(w.shape[1])[y]) / len(y)
    return loss, x.T @ d, d.sum(0)


def lr_at(config, k):
    """The step schedule at optimizer step k (0-based): lr · decay^(#milestones ≤ k)."""
    return config.optim.lr * config.optim.decay_factor ** sum(k >= m for m in (2, 5))


def hand_run(config, steps):
    """Parameters after each step and each step's loss, by numpy, on the trainer's batches."""
    trainer = train.Trainer(config)
    init = jax.device_get(trainer.setup.init_state["params"])
    w, b = (np.asarray(init[k], np.float64) for k in ("head/kernel", "head/bias"))
    batches = trainer.train_batches()
    o = config.optim
    m = {"w": np.zeros_like(w), "b": np.zeros_like(b)}
    v = {"w": np.zeros_like(w), "b": np.zeros_like(b)}
    losses, params = [], []
    for k in range(steps):
        batch = next(batches)
        x = batch["image"].reshape(len(batch["label"]), -1).astype(np.float64)
        loss, gw, gb = softmax_ce(w, b, x, batch["label"])
        losses.append(loss)
        for name, g, p in (("w", gw, w), ("b", gb, b)):
            g = g + o.weight_decay * p  # coupled L2, before the optimizer (PyTorch form)
            if o.name == "sgd":
                m[name] = o.momentum * m[name] + g
                update = lr_at(config, k) * m[name]
            else:  # adam, bias-corrected, ε outside the root
                m[name] = o.b1 * m[name] + (1 - o.b1) * g
                v[name] = o.b2 * v[name] + (1 - o.b2) * g**2
                mhat, vhat = m[name] / (1 - o.b1 ** (k + 1)), v[name] / (1 - o.b2 ** (k + 1))
                update = lr_at(config, k) * mhat / (np.sqrt(vhat) + o.eps)
            p -= update
        params.append((w.copy(), b.copy()))
    return losses, params


@pytest.mark.parametrize("optimizer", [
    {"optim.name": "sgd", "optim.lr": 0.1, "optim.momentum": 0.9, "optim.weight_decay": 1e-3},
    {"optim.name": "adam", "optim.lr": 0.01, "optim.weight_decay": 1e-3},
], ids=["sgd_momentum_l2", "adam_l2"])
def test_steps_windows_and_lr_equal_numpy(tmp_path, optimizer):
    config = digits_config(steps=6, **{**LINEAR, **optimizer})
    losses, params = hand_run(config, 6)
    train.run(config, tmp_path)
    _, _, state = train.load_final(tmp_path)
    w, b = params[-1]
    np.testing.assert_allclose(state["params"]["head/kernel"], w, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(state["params"]["head/bias"], b, rtol=2e-4, atol=2e-6)
    logged = [m for m in read_metrics(tmp_path) if "train/loss" in m]
    assert [m["step"] for m in logged] == [3, 6]
    for line, window in zip(logged, (losses[0:3], losses[3:6])):
        np.testing.assert_allclose(line["train/loss"], np.mean(window), rtol=1e-5)
    # the lr shown is the one the window's last step used: steps 3 and 6 are k = 2 and 5
    assert [m["train/lr"] for m in logged] == pytest.approx([lr_at(config, 2), lr_at(config, 5)])


def test_evaluate_over_padded_batches_equals_a_hand_average():
    """539 test images in batches of 128: five batches, the last padded by 101."""
    config = digits_config(**{**LINEAR, "data.eval_batch_size": 128})
    trainer = train.Trainer(config)
    state = trainer.initial_state()
    assert len(trainer.eval_batches()) == 5
    params = jax.device_get(state["params"])
    w, b = (np.asarray(params[k], np.float64) for k in ("head/kernel", "head/bias"))
    batches = list(data.eval_batches(config.data))
    images = np.concatenate([bt["image"][bt["mask"] > 0] for bt in batches])
    labels = np.concatenate([bt["label"][bt["mask"] > 0] for bt in batches])
    assert len(labels) == 539
    logits = images.reshape(539, -1).astype(np.float64) @ w + b
    loss, _, _ = softmax_ce(w, b, images.reshape(539, -1).astype(np.float64), labels)
    got = trainer.evaluate(state)
    np.testing.assert_allclose(got["eval/loss"], loss, rtol=1e-5)
    assert got["eval/accuracy"] == pytest.approx(np.mean(logits.argmax(1) == labels), abs=1e-9)


def test_a_short_run_learns(tmp_path):
    """60 SGD steps of the linear model: the train loss falls by half and test accuracy
    passes 0.85 (chance 0.10; 0.9 or so when measured)."""
    config = digits_config(steps=60, **{**LINEAR, "optim.lr": 0.1, "log_every": 10,
                                        "optim.milestones": (0,)})
    results = train.run(config, tmp_path)
    losses = [m["train/loss"] for m in read_metrics(tmp_path) if "train/loss" in m]
    assert losses[-1] < 0.5 * losses[0]
    assert results["eval/accuracy"] > 0.85


def test_named_eval_sets_and_per_metric_denominators():
    """eval.sets adds eval_<label>/… for other splits, each a hand average over its own
    examples; a metric with a 'count/<name>' sum is divided by it (pixels, not images)."""
    config = digits_config(**{**LINEAR, "task": "toy_tasks:PixelShare",
                              "data.validation_examples": 100, "data.eval_batch_size": 128,
                              "eval.sets": ("validation", "seen=train")})
    trainer = train.Trainer(config)
    state = trainer.initial_state()
    got = trainer.evaluate(state)
    params = jax.device_get(state["params"])
    w, b = (np.asarray(params[k], np.float64) for k in ("head/kernel", "head/bias"))
    for prefix, split, size in (("eval", "", 539), ("eval_validation", "validation", 100),
                                ("eval_seen", "train", 1158)):
        batches = list(data.eval_batches(config.data, split=split))
        images = np.concatenate([bt["image"][bt["mask"] > 0] for bt in batches])
        labels = np.concatenate([bt["label"][bt["mask"] > 0] for bt in batches])
        assert len(labels) == size
        x = images.reshape(size, -1).astype(np.float64)
        loss, _, _ = softmax_ce(w, b, x, labels)
        np.testing.assert_allclose(got[f"{prefix}/loss"], loss, rtol=1e-5)
        assert got[f"{prefix}/accuracy"] == pytest.approx(np.mean((x @ w + b).argmax(1) == labels))
        assert got[f"{prefix}/positive_pixels"] == pytest.approx(np.mean(images > 0))
    assert not any(k.startswith("eval/count") for k in got)


@pytest.mark.parametrize("sets, message", [
    (("nope",), "digits has splits"),
    (("x=nope_dataset_zz@test",), "Unknown dataset"),
    (("1abc=test",), "identifier label"),
    (("a=test", "a=train"), "twice"),
])
def test_bad_eval_sets_fail_when_the_trainer_opens_them(sets, message):
    trainer = train.Trainer(digits_config(**{**LINEAR, "eval.sets": sets}))
    with pytest.raises(train.config_lib.ConfigError, match=message):
        trainer.eval_sets()
