"""DMCP (experiments/width_transfer/dmcp.py) by hand: channel groups, the Markov chain's
marginals, the expected widths and FLOPs (against a Monte Carlo over sampled widths and a
hand count), the penalty, and the training loss."""

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.width_transfer import dmcp, nets
from lib.slim import cost, space

TARGET = nets.CifarResNet()


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_groups_split_each_dim_into_contiguous_equal_runs():
    table = dmcp.groups(TARGET, 4)
    # w0 8: two channels a group; w0 32: eight; past w0: −1
    np.testing.assert_array_equal(table[0, :8], [0, 0, 1, 1, 2, 2, 3, 3])
    assert (table[0, 8:] == -1).all()
    i = TARGET.dims.index("stage3/residual")
    np.testing.assert_array_equal(table[i], np.repeat(np.arange(4), 8))
    # fewer channels than groups: one channel a group
    np.testing.assert_array_equal(dmcp.groups(TARGET, 10)[0, :8], np.arange(8))


def test_marginals_are_the_chains_keep_probabilities():
    a = np.array([[0.5, -1.0, 2.0]])
    s = _sigmoid(a[0])
    expected = [1, s[0], s[0] * s[1], s[0] * s[1] * s[2]]
    np.testing.assert_allclose(dmcp.marginals(jnp.asarray(a))[0], expected, rtol=1e-6)


def test_expected_flops_equal_a_monte_carlo_over_sampled_widths():
    rng = np.random.default_rng(0)
    logits = rng.normal(1.0, 1.0, (len(TARGET.dims), 3)).astype(np.float32)
    got = float(dmcp.expected_flops(jnp.asarray(logits), TARGET, 4))
    table = dmcp.groups(TARGET, 4)
    s = _sigmoid(logits)
    draws = []
    for _ in range(4000):  # walk each dim's chain: keep groups until the first drop
        counts = {}
        for i, d in enumerate(TARGET.dims):
            kept = 1
            while kept < 4 and rng.random() < s[i, kept - 1]:
                kept += 1
            counts[d] = int((table[i, :TARGET.base[d]] < kept).sum())
        draws.append(TARGET.flops(counts))
    assert got == pytest.approx(np.mean(draws), rel=0.01)


def test_expected_macs_at_whole_widths_is_the_counter_and_refuses_self_maps():
    counts = {d: b - 1 for d, b in TARGET.base.items()}
    arch = TARGET.arch
    assert cost.expected_macs(arch, {**arch.space.fixed, **counts}) == TARGET.flops(counts)
    bad = space.Arch(arch.space, (space.Conv("loop", "stage1/residual", "stage1/residual",
                                             3, 1, 14),), "a loop")
    with pytest.raises(ValueError, match="map a dim to itself"):
        cost.expected_macs(bad, {"stage1/residual": 8})


def test_penalty_is_a_hinge_on_the_expected_flops_ratio():
    high = jnp.full((len(TARGET.dims), 9), 10.0)  # every group kept: E[FLOPs] = B
    assert float(dmcp.penalty(high, TARGET, 10, 0.5)) == pytest.approx(0.5, abs=1e-3)
    low = jnp.full((len(TARGET.dims), 9), -10.0)  # only the first group: 1 channel a dim
    assert float(dmcp.penalty(low, TARGET, 10, 0.5)) == 0.0


def test_optimise_rounds_the_expected_widths_and_expands_to_the_budget():
    logits = np.zeros((len(TARGET.dims), 9), np.float32)
    logits[0] = 10.0  # stage1/residual keeps all 8; the rest keep about 2 groups' worth
    counts = dmcp.optimise(logits, TARGET, 10)
    budget = TARGET.flops(TARGET.base)
    assert 0.99 * budget <= TARGET.flops(counts) <= budget
    assert counts["stage1/residual"] / 8 > counts["stage3/block1"] / 32


def test_the_training_loss_is_masked_cross_entropy_plus_the_weighted_penalty():
    from experiments.width_transfer import task as task_lib
    from lib import config as config_lib
    from lib import losses
    from tests.helpers import REPO
    from tests.test_width_transfer_morphnet import model_at

    config = config_lib.load_file(REPO / "experiments/width_transfer/configs/fashion.py",
                                  "quick,optimizer=dmcp")
    training = task_lib.DMCPTraining(config)
    training.family = TARGET
    model = model_at()
    model.dmcp_logits = task_lib.DMCPLogits(jnp.asarray(dmcp.initial_logits(TARGET, 10, 3.0)))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 14, 14, 1)), jnp.float32)
    y = jnp.asarray([0, 1, 2, 3])
    total, metrics = training.train_loss(model, {"image": x, "label": y}, None, 0)
    reference = model_at()  # the same init: train mode moved the BN statistics above
    masks = dmcp.channel_masks(model.dmcp_logits.value, TARGET, 10)
    ce = float(losses.softmax_cross_entropy(reference(x, train=True, masks=masks), y).mean())
    pen = float(dmcp.penalty(model.dmcp_logits.value, TARGET, 10, 0.5))
    assert pen > 0
    assert float(metrics["cross_entropy"]) == pytest.approx(ce, rel=1e-5)
    assert float(total) == pytest.approx(ce + config.width_transfer.dmcp_penalty * pen,
                                         rel=1e-5)
