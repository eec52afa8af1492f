"""SwAV (lib/ssl/swav.py) against independent computations: Sinkhorn-Knopp as a numpy loop of
the published algorithm and its marginals, the swapped-prediction loss over multi-crop views in
numpy, the queue's late start and its part in Sinkhorn once full, and prototypes that do not
move while frozen."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import digits_config, read_metrics, saved

from lib import config as config_lib
from lib import train
from lib.models import state as model_state
from lib.ssl import losses
from lib.ssl.swav import SwAV

BATCH, DIM, K, STEPS = 16, 6, 5, 5
SWAV = {"task": "lib.ssl.swav:SwAV", "data.augment": "views", "data.views": (2, 2),
        "data.view_sizes": (8, 4), "data.view_min_scale": (0.5, 0.2),
        "data.view_max_scale": (1.0, 0.5), "data.batch_size": BATCH,
        "ssl.projector_widths": (32, DIM), "ssl.prototypes": K, "ssl.temperature": 0.1,
        "ssl.queue_size": 2 * BATCH, "ssl.queue_start_step": 2,
        "ssl.freeze_prototypes_steps": 2, "optim.weight_decay": 0.0, "log_every": 1,
        "checkpoint_every": 1, "keep_checkpoints": 100}


def swav_config(**overrides):
    return digits_config(steps=STEPS, **{**SWAV, **overrides})


def _sinkhorn_numpy(scores, eps, iterations):
    """The published algorithm: Q = exp(S/ε)ᵀ scaled to total 1, then alternately each
    prototype's row to 1/K and each sample's column to 1/N; returned ×N, transposed."""
    q = np.exp(np.asarray(scores, np.float64) / eps).T
    q /= q.sum()
    k, n = q.shape
    for _ in range(iterations):
        q /= q.sum(axis=1, keepdims=True) * k
        q /= q.sum(axis=0, keepdims=True) * n
    return (q * n).T


def _log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def test_sinkhorn_matches_the_published_loop_and_its_marginals():
    scores = np.random.default_rng(0).uniform(-1, 1, size=(12, K)).astype(np.float32)
    got = np.asarray(losses.sinkhorn(scores, 0.05, 3))
    np.testing.assert_allclose(got, _sinkhorn_numpy(scores, 0.05, 3), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1, rtol=1e-5)  # each sample: one unit
    converged = np.asarray(losses.sinkhorn(scores, 0.5, 300))
    np.testing.assert_allclose(converged.sum(axis=0), 12 / K, rtol=1e-4)  # equal partition
    np.testing.assert_allclose(converged.sum(axis=1), 1, rtol=1e-5)


def test_sinkhorn_rows_of_weight_zero_take_no_part():
    scores = np.random.default_rng(1).uniform(-1, 1, size=(10, K)).astype(np.float32)
    weights = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1], np.float32)
    got = np.asarray(losses.sinkhorn(scores, 0.05, 3, weights))
    np.testing.assert_array_equal(got[:3], 0)
    np.testing.assert_allclose(got[3:], _sinkhorn_numpy(scores[3:], 0.05, 3), rtol=1e-4,
                               atol=1e-7)


class _Fixed:
    """Stands in for the network: z is the normalised flattened view; fixed unit prototypes."""

    def __init__(self, prototypes, queues=()):
        self.c, self.queues = jnp.asarray(prototypes), list(queues)

    def __call__(self, x, *, train):
        return losses.l2_normalize(x.reshape(x.shape[0], -1))

    def embed_groups(self, groups, *, train):
        return jnp.concatenate([self(g, train=train) for g in groups])

    def unit_prototypes(self, frozen=False):
        return self.c


def _views(seed):
    """A batch of 2 global and 2 local views whose flattened pixels are the embeddings."""
    rng = np.random.default_rng(seed)
    return [{"image": rng.normal(size=(BATCH, 2, 1, 1, DIM)).astype(np.float32)}
            for _ in range(2)]


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _loss_numpy(groups, c, tau, queue=None):
    """Mean over the 2 assignment views i of the mean over views v ≠ i of −Σ q_i log p_v."""
    z = [_unit(g["image"][:, v, 0, 0].astype(np.float64)) for g in groups for v in range(2)]
    total = 0.0
    for i in range(2):
        scores = z[i] @ c
        if queue is not None:
            scores = np.concatenate([queue[i] @ c, scores])
        codes = _sinkhorn_numpy(scores, 0.05, 3)[-BATCH:]
        terms = [-(codes * _log_softmax(z[v] @ c / tau)).sum(axis=1).mean()
                 for v in range(4) if v != i]
        total += np.mean(terms)
    return total / 2


def _prototypes(seed=2):
    return _unit(np.random.default_rng(seed).normal(size=(K, DIM))).T.astype(np.float32)


def test_swapped_prediction_over_multi_crop_matches_numpy():
    task = SwAV(swav_config(**{"ssl.queue_size": 0}))
    groups, c = _views(3), _prototypes()
    loss, metrics = task.train_loss(_Fixed(c), {"views": groups}, None, 0)
    np.testing.assert_allclose(float(loss), _loss_numpy(groups, c.astype(np.float64), 0.1),
                               rtol=1e-4)
    assert 0 < float(metrics["prototypes_used"]) <= 1


def test_queue_starts_late_and_joins_sinkhorn_once_full():
    task = SwAV(swav_config())
    c = _prototypes()
    queues = [model_state.FIFOQueue(2 * BATCH, DIM) for _ in range(2)]
    model = _Fixed(c, queues)
    alone = SwAV(swav_config(**{"ssl.queue_size": 0}))
    for step in range(4):
        groups = _views(10 + step)
        loss, _ = task.train_loss(model, {"views": groups}, None, step)
        # not full yet: Sinkhorn sees the batch alone
        np.testing.assert_allclose(float(loss), float(alone.train_loss(
            _Fixed(c), {"views": groups}, None, step)[0]), rtol=1e-5)
        pushed = max(0, step - 1) * BATCH
        assert [int(q.filled.get_value()) for q in queues] == [pushed] * 2, step
        if step >= 2:  # the pushed rows are the assignment views' z, oldest first
            np.testing.assert_allclose(
                queues[1].items.get_value()[(step - 2) * BATCH:(step - 1) * BATCH],
                _unit(groups[0]["image"][:, 1, 0, 0]), rtol=1e-5)
    assert all(bool(q.full()) for q in queues)
    before = [np.asarray(q.items.get_value(), np.float64) for q in queues]
    groups = _views(20)
    loss, _ = task.train_loss(model, {"views": groups}, None, 4)
    np.testing.assert_allclose(float(loss), _loss_numpy(groups, c.astype(np.float64), 0.1,
                                                        before), rtol=1e-4)
    assert abs(float(loss) - float(alone.train_loss(_Fixed(c), {"views": groups}, None, 4)[0])
               ) > 1e-4


RUN = {"data.normalization": "none", "ssl.color": "swav", "ssl.projector_batchnorm": True}


@pytest.fixture(scope="module")
def swav_run(tmp_path_factory):
    """Multi-crop with the on-device colour recipe and BatchNorm in the projector."""
    workdir = tmp_path_factory.mktemp("swav") / "run"
    train.run(swav_config(**RUN), workdir)
    return workdir


def test_prototypes_stay_frozen_then_train_and_the_queue_fills_in_a_run(swav_run):
    init = jax.device_get(train.Trainer(swav_config(**RUN)).starting_state()[0])
    name = next(n for n in init["params"] if n.startswith("prototypes/"))
    kernels = [np.asarray(init["params"][name])] + [
        np.asarray(saved(swav_run, s)["params"][name]) for s in range(1, STEPS + 1)]
    np.testing.assert_array_equal(kernels[1], kernels[0])  # steps 0 and 1: frozen
    np.testing.assert_array_equal(kernels[2], kernels[0])
    assert not np.array_equal(kernels[3], kernels[2])      # step 2 trains them
    filled = [int(saved(swav_run, s)["model_state"]["queues"]["0"]["filled"])
              for s in range(1, STEPS + 1)]
    assert filled == [0, 0, BATCH, 2 * BATCH, 2 * BATCH]
    rows = [r for r in read_metrics(swav_run) if "train/loss" in r]
    assert len(rows) == STEPS and all(np.isfinite(r["train/loss"]) for r in rows)


@pytest.mark.parametrize("overrides, message", [
    ({"data.views": (1, 2)}, "SwAV takes ssl.assign_views=2 views from the first view group"),
    ({"ssl.queue_size": 20}, "ssl.queue_size=20 is not a multiple of data.batch_size=16"),
])
def test_bad_swav_settings_are_refused_before_anything_is_written(tmp_path, overrides, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        train.run(swav_config(**overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()
