"""Slimmable networks (lib/models/slimmable.py, lib/slim/masking.py): a masked sub-network
computes what the separately built narrow network with the sliced weights computes, in eval
and in train mode, and training moves only the active channels' BatchNorm statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lib.models import slimmable
from lib.slim import masking, pareto, recalibrate, space

# a ResNet-8 ([1, 1, 1], widths 8/16/32): the later residuals at least the earlier ones
SUB = {"stage1/residual": 5, "stage1/block0": 3, "stage2/residual": 9, "stage2/block0": 11,
       "stage3/residual": 13, "stage3/block0": 20}


def build(stem="1x1", channels=None, seed=0, shortcut="zero_pad", head="conv"):
    return slimmable.SlimCifarResNet(8, 8, num_classes=10, stem=stem, channels=channels,
                                     shortcut=shortcut, head=head, rngs=nnx.Rngs(seed))


# (stem, shortcut, head): the joslim code's two stems, and width_transfer's net
VARIANTS = [("1x1", "zero_pad", "conv"), ("3x3", "zero_pad", "conv"),
            ("3x3", "projection", "dense")]


def randomise_statistics(model, seed=1):
    """Non-trivial running statistics, so eval mode tests more than the init's 0 / 1: means
    near 0 and variances near 1, so activations stay alive through the ReLUs."""
    rng = np.random.default_rng(seed)
    stats = nnx.state(model, nnx.BatchStat)
    nnx.update(model, jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.asarray(
            rng.normal(0, 0.2, np.shape(v)) if "mean" in jax.tree_util.keystr(path)
            else rng.uniform(0.5, 1.5, np.shape(v)), jnp.float32), stats))


@pytest.mark.parametrize("stem, shortcut, head", VARIANTS)
def test_masked_sub_network_equals_the_sliced_narrow_network(stem, shortcut, head):
    full = build(stem, shortcut=shortcut, head=head)
    randomise_statistics(full)
    narrow = masking.sliced(full, build(stem, SUB, seed=7, shortcut=shortcut, head=head))
    m = {k: jnp.asarray(v) for k, v in masking.masks(SUB, full.channels).items()}
    x = jnp.asarray(np.random.default_rng(2).normal(size=(6, 12, 12, 3)), jnp.float32)
    np.testing.assert_allclose(full(x, train=False, masks=m), narrow(x, train=False),
                               rtol=1e-5, atol=1e-5)
    # train mode: batch statistics per active channel are the narrow network's too
    np.testing.assert_allclose(full(x, train=True, masks=m), narrow(x, train=True),
                               rtol=1e-4, atol=1e-4)
    # and the full width is the model without masks
    full_masks = masking.masks(full.channels, full.channels)
    np.testing.assert_allclose(full(x, train=False, masks=full_masks), full(x, train=False),
                               rtol=1e-6)
    # a mutation: without the masks the sub-network's logits differ
    assert not np.allclose(full(x, train=False), narrow(x, train=False), atol=1e-3)


def test_training_moves_only_the_active_channels_statistics():
    full = build("3x3")
    before = jax.tree.map(np.asarray, nnx.state(full, nnx.BatchStat))
    m = masking.masks(SUB, full.channels)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, 8, 8, 3)), jnp.float32)
    full(x, train=True, masks=m)
    after = nnx.state(full, nnx.BatchStat)
    bn = after["stage2"]["block0"]["bn1"]
    moved = np.asarray(bn["mean"].value) != before["stage2"]["block0"]["bn1"]["mean"].value
    assert moved[:SUB["stage2/block0"]].all() and not moved[SUB["stage2/block0"]:].any()


def test_bad_widths_are_refused():
    full = build()
    with pytest.raises(ValueError, match="stage2/block0: 17 active channels of 16"):
        masking.masks({**SUB, "stage2/block0": 17}, full.channels)
    with pytest.raises(ValueError, match="lacks dims"):
        masking.masks({"stage1/residual": 3}, full.channels)
    with pytest.raises(ValueError, match="has no dims"):
        build(channels={"stage4/residual": 3})


def test_recalibration_averages_each_batch_statistics_over_the_batches():
    """The stem BN's running mean and variance after recalibration are the mean over batches
    of that batch's (biased) per-channel statistics of the stem conv's output, computed
    here from the conv alone; inactive channels keep their values."""
    model = build("3x3")
    randomise_statistics(model)
    before = np.asarray(model.stem_bn.mean.value)
    rng = np.random.default_rng(4)
    batches = [{"image": rng.normal(size=(5, 8, 8, 3)).astype(np.float32)} for _ in range(3)]
    m = masking.masks(SUB, model.channels)
    recalibrate.recalibrate(model, batches, m)
    outs = [np.asarray(model.stem(jnp.asarray(b["image"]))) for b in batches]
    mean = np.mean([o.mean(axis=(0, 1, 2)) for o in outs], axis=0)
    var = np.mean([o.var(axis=(0, 1, 2)) for o in outs], axis=0)
    k = SUB["stage1/residual"]
    np.testing.assert_allclose(model.stem_bn.mean.value[:k], mean[:k], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.stem_bn.var.value[:k], var[:k], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(model.stem_bn.mean.value[k:], before[k:])
    assert model.stem_bn.momentum == 0.9  # restored
    with pytest.raises(ValueError, match="no batches"):
        recalibrate.recalibrate(model, [])


# Pareto utilities (lib/slim/pareto.py), on hand-made point sets.

def test_efficient_points_by_hand():
    points = [(1, 5), (2, 3), (3, 3), (2, 3), (4, 1), (5, 5), (0.5, 9)]
    # (3,3) is dominated by (2,3); the second (2,3) is a copy; (5,5) by (1,5)
    assert pareto.efficient(points).tolist() == [True, True, False, False, True, False, True]


def test_peeling_takes_layers_until_the_cost_stop():
    losses = [3.0, 2.0, 1.5, 2.5, 1.8, 1.2, 2.2]
    costs = [0.2, 0.4, 0.6, 0.45, 0.65, 0.95, 0.3]
    # round 1: non-dominated (loss, cost): (3, .2), (2.2, .3), (2, .4), (1.5, .6), (1.2, .95)
    # → largest cost 0.95 ≥ 0.9: stop. Points 3 (2.5, .45) and 4 (1.8, .65) are not taken.
    assert pareto.peel(losses, costs).tolist() == [1, 1, 1, 0, 0, 1, 1]
    # with the stop above every cost, round 2 runs on the rest from cost 0.95 up: nothing
    assert pareto.peel(losses, costs, stop=0.99).tolist() == [1, 1, 1, 0, 0, 1, 1]
    # without the far point, round 1 stops at 0.6; round 2 (cost ≥ 0.6, round-1 points at
    # (1, 1)) takes (1.8, .65) → 0.65; round 3 finds nothing at cost ≥ 0.65 but (1, 1)s
    taken = pareto.peel(losses[:5] + losses[6:], costs[:5] + costs[6:])
    assert taken.tolist() == [1, 1, 1, 0, 1, 1]


def test_peeling_ends_where_a_taken_point_stays_non_dominated():
    """Losses above 1: the taken (0.33) point moved to (1, 1) dominates the full net
    (3.81, 1.0) and stays non-dominated, so the code's loop would take it forever."""
    taken = pareto.peel([3.85, 3.54, 3.81], [0.64, 0.33, 1.0])
    assert taken.tolist() == [True, True, False]


def test_front_and_area_by_hand():
    costs, accs = [0.2, 0.5, 0.4, 1.0, 0.6], [0.5, 0.7, 0.6, 0.8, 0.55]
    c, a = pareto.front(costs, accs)
    assert c.tolist() == [0.2, 0.4, 0.5, 1.0] and a.tolist() == [0.5, 0.6, 0.7, 0.8]
    # steps on [0.1, 1]: 0 on [.1,.2), .5 on [.2,.4), .6 on [.4,.5), .7 on [.5,1), .8 at 1
    expected = 0.1 * 0 + 0.2 * 0.5 + 0.1 * 0.6 + 0.5 * 0.7
    assert pareto.area(costs, accs, 0.1, 1.0) == pytest.approx(expected)
    with pytest.raises(ValueError, match="low < high"):
        pareto.area(costs, accs, 1.0, 1.0)


@pytest.mark.parametrize("stem, shortcut, head", VARIANTS)
def test_the_model_has_the_convolutions_its_cost_is_counted_over(stem, shortcut, head):
    """Every conv of lib.slim.space.cifar_resnet is a kernel of the NNX model of that shape
    (at full width), and the model has no other conv: the cost counts what runs (a dense
    head is not a conv)."""
    model = build(stem, shortcut=shortcut, head=head)
    arch = space.cifar_resnet(8, 10, widths=(8, 16, 32), image=8, stem=stem,
                              shortcut=shortcut, head=head)
    channels = arch.space.full_channels
    kernels = {"/".join(map(str, path[:-1])): v.value.shape
               for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
               if path[-1] == "kernel" and not (head == "dense" and path[0] == "head")}
    expected = {c.name: (c.kernel, c.kernel, channels[c.cin], channels[c.cout])
                for c in arch.convs}
    assert kernels == expected
    assert model.dims() == list(arch.space.names)
