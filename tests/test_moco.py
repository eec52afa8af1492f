"""MoCo v2 (lib/ssl/moco.py) and grouped BatchNorm against independent computations: InfoNCE
with a queue and extra negatives in numpy, per-group statistics by hand, the key encoder as a
numpy EMA, and the queue's FIFO order through a kill and resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import Crash, copy_value, crash_on_batch, digits_config, same_lines, saved

from lib import config as config_lib
from lib import train
from lib.models import layers
from lib.ssl import losses

BATCH, QUEUE, STEPS = 32, 96, 6
MOCO = {"task": "lib.ssl.moco:MoCo", "data.augment": "views", "data.views": (2,),
        "data.view_sizes": (8,), "data.view_min_scale": (0.5,), "data.batch_size": BATCH,
        "ssl.queue_size": QUEUE, "ssl.projector_widths": (32, 16), "ssl.temperature": 0.2,
        "ssl.ema_decay": 0.9, "model.bn_group_size": 8, "optim.weight_decay": 0.0,
        "log_every": 3, "checkpoint_every": 1, "keep_checkpoints": 100}


def moco_config(**overrides):
    return digits_config(steps=STEPS, **{**MOCO, **overrides})


def _info_nce_numpy(q, k, queue, valid, tau, extra=None, on=None):
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    out = []
    for i in range(len(q)):
        pos = unit(q[i]) @ unit(k[i]) / tau
        logits = [pos] + [unit(q[i]) @ unit(row) / tau for row, ok in zip(queue, valid) if ok]
        if extra is not None and on[i]:
            logits.append(unit(q[i]) @ unit(extra[i]) / tau)
        out.append(np.log(np.sum(np.exp(logits))) - pos)
    return np.array(out)


@pytest.mark.parametrize("with_extra", [False, True])
def test_info_nce_matches_numpy(with_extra):
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)) * 2
    queue, valid = rng.normal(size=(7, 4)), np.array([1, 1, 1, 0, 1, 0, 0], bool)
    extra = rng.normal(size=(5, 4)) if with_extra else None
    on = np.array([1, 0, 1, 1, 0]) if with_extra else None
    f32 = lambda v: None if v is None else v.astype(np.float32)  # noqa: E731
    got = losses.info_nce(f32(q), f32(k), f32(queue), valid, 0.2, f32(extra),
                          None if on is None else on.astype(np.float32))
    np.testing.assert_allclose(got, _info_nce_numpy(q, k, queue, valid, 0.2, extra, on),
                               rtol=1e-5)


def test_grouped_batchnorm_normalises_each_group_by_its_own_statistics():
    x = np.random.default_rng(1).normal(size=(6, 2, 2, 3)).astype(np.float32) * 3 + 1
    bn = layers.LayerSpec(bn_init="fixed", bn_group_size=2).bn(3, rngs=nnx.Rngs(0))
    assert isinstance(bn, layers.GroupedBatchNorm)
    y = np.asarray(bn(jnp.asarray(x), use_running_average=False))
    means, variances = [], []
    for g in range(3):
        part = x[2 * g:2 * g + 2].astype(np.float64)
        mean, var = part.mean(axis=(0, 1, 2)), part.var(axis=(0, 1, 2))
        np.testing.assert_allclose(y[2 * g:2 * g + 2], (part - mean) / np.sqrt(var + 1e-5),
                                   rtol=1e-4, atol=1e-5)
        means.append(mean), variances.append(var)
    np.testing.assert_allclose(bn.mean[...], 0.1 * np.mean(means, axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.var[...], 0.9 + 0.1 * np.mean(variances, axis=0), rtol=1e-5)
    # evaluation uses the running statistics, as plain BatchNorm does
    plain = layers.LayerSpec(bn_init="fixed").bn(3, rngs=nnx.Rngs(0))
    plain.mean[...], plain.var[...] = bn.mean[...], bn.var[...]
    np.testing.assert_allclose(bn(jnp.asarray(x), use_running_average=True),
                               plain(jnp.asarray(x), use_running_average=True), rtol=1e-6)
    # one group is the whole batch: plain BatchNorm
    whole = layers.LayerSpec(bn_init="fixed", bn_group_size=6).bn(3, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(whole(jnp.asarray(x), use_running_average=False),
                               plain(jnp.asarray(x), use_running_average=False), rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(ValueError, match="bn_group_size=4 does not divide the batch of 6"):
        layers.LayerSpec(bn_group_size=4).bn(3, rngs=nnx.Rngs(0))(jnp.asarray(x),
                                                                  use_running_average=False)


def test_shuffled_keys_are_put_back_in_order():
    """With one BatchNorm group per batch, shuffling cannot change any statistic, so the
    loss must equal the unshuffled one: a key left out of order would pair with another
    query."""
    rng = np.random.default_rng(3)
    batch = {"views": [{"image": rng.uniform(size=(BATCH, 2, 8, 8, 1)).astype(np.float32)}]}
    negatives = jnp.asarray(rng.normal(size=(QUEUE, 16)), jnp.float32)  # an empty queue: loss 0
    losses_by_setting = []
    for group in (0, BATCH):  # 0: no shuffle; BATCH: shuffled, one group (plain BatchNorm)
        trainer = train.Trainer(moco_config(**{"model.bn_group_size": group}))
        assert trainer.setup.task.shuffle == bool(group)
        model = trainer.setup.model(trainer.starting_state()[0])
        model.queue.push(negatives)
        loss, _ = trainer.setup.task.train_loss(model, batch, jax.random.key(5), 0)
        losses_by_setting.append(float(loss))
    assert losses_by_setting[0] > 0.1
    np.testing.assert_allclose(*losses_by_setting, rtol=1e-5)


@pytest.fixture(scope="module")
def moco_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("moco") / "run"
    train.run(moco_config(), workdir)
    return workdir


def test_key_encoder_is_a_numpy_ema_of_the_query(moco_run):
    init = jax.device_get(train.Trainer(moco_config()).starting_state()[0])
    names = [n for n in init["params"] if n.startswith("query/")]
    assert names and not any(n.startswith("key/") for n in init["params"])

    ema = {n: copy_value(init, "key", n) for n in names}
    for n in names:
        np.testing.assert_array_equal(ema[n], init["params"][n])
    for step in range(1, STEPS + 1):
        state = saved(moco_run, step)
        for n in names:
            ema[n] = 0.9 * ema[n] + 0.1 * np.asarray(state["params"][n], np.float64)
            np.testing.assert_allclose(copy_value(state, "key", n), ema[n], rtol=1e-5, atol=1e-7,
                                       err_msg=f"step {step} {n}")


def test_queue_is_fifo_by_whole_batches_and_survives_a_resume(tmp_path, monkeypatch, moco_run):
    previous = saved(moco_run, 1)["model_state"]["queue"]
    assert (int(previous["position"]), int(previous["filled"])) == (BATCH, BATCH)
    for step in range(2, STEPS + 1):
        queue = saved(moco_run, step)["model_state"]["queue"]
        start = (step - 1) * BATCH % QUEUE
        written = np.zeros(QUEUE, bool)
        written[start:start + BATCH] = True
        assert (int(queue["position"]), int(queue["filled"])) == (
            step * BATCH % QUEUE, min(step * BATCH, QUEUE))
        np.testing.assert_array_equal(queue["items"][~written], previous["items"][~written])
        assert not np.any(np.all(queue["items"][written] == previous["items"][written], axis=1))
        np.testing.assert_allclose(np.linalg.norm(queue["items"][written], axis=1), 1, rtol=1e-5)
        previous = queue
    workdir = tmp_path / "run"
    crash_on_batch(monkeypatch, 4)  # during step 4
    with pytest.raises(Crash):
        train.run(moco_config(), workdir)
    monkeypatch.undo()
    train.run(moco_config(), workdir)
    jax.tree.map(np.testing.assert_array_equal, saved(workdir, STEPS), saved(moco_run, STEPS))
    assert same_lines(workdir) == same_lines(moco_run)


def test_a_queue_the_batch_does_not_divide_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="ssl.queue_size=100 is not a multiple of "
                                                      "data.batch_size=32"):
        train.run(moco_config(**{"ssl.queue_size": 100}), tmp_path / "run")
    assert not (tmp_path / "run").exists()
