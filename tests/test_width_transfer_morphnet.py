"""MorphNet (experiments/width_transfer/morphnet.py) by hand: the BN groups of each fused
dim, the channel scores, the marginal costs and the penalty, both prune rules, and one
shrink-prune-expand iteration within the budget; the shrink task's loss; the same seed
giving the same widths."""

import numpy as np
import pytest
from flax import nnx

from configs import base
from experiments.width_transfer import morphnet, nets

TARGET = nets.CifarResNet()


def model_at(family=TARGET, seed=0):
    cfg = base.get_config().model
    cfg.name, cfg.depth, cfg.width, cfg.widths = nets.MODEL, family.depth, family.widths[0], ()
    return nets.resnet(cfg, num_classes=10, in_channels=1, rngs=nnx.Rngs(seed))


def test_bn_groups_of_the_target():
    groups = TARGET.bn_groups()
    assert groups["stage1/residual"] == ["stem_bn", "stage1/block0/bn2", "stage1/block1/bn2"]
    assert groups["stage2/residual"] == ["stage2/block0/bn2", "stage2/block0/downsample_bn",
                                         "stage2/block1/bn2"]
    assert groups["stage3/block1"] == ["stage3/block1/bn1"]
    assert sorted(groups) == sorted(TARGET.dims)


def test_channel_scores_reduce_the_groups_gammas():
    model = model_at()
    rng = np.random.default_rng(0)
    gammas = {}
    for paths in TARGET.bn_groups().values():
        for p in paths:
            module = model
            for name in p.split("/"):
                module = getattr(module, name)
            gammas[p] = rng.normal(size=module.scale.value.shape).astype(np.float32)
            module.scale.value = gammas[p]
    paths = ["stem_bn", "stage1/block0/bn2", "stage1/block1/bn2"]
    summed = morphnet.channel_scores(model, TARGET, "sum", xp=np)
    maxed = morphnet.channel_scores(model, TARGET, "max", xp=np)
    np.testing.assert_allclose(summed["stage1/residual"],
                               sum(np.abs(gammas[p]) for p in paths), rtol=1e-6)
    np.testing.assert_allclose(maxed["stage1/residual"],
                               np.max([np.abs(gammas[p]) for p in paths], axis=0))
    np.testing.assert_allclose(summed["stage2/block1"], np.abs(gammas["stage2/block1/bn1"]))
    with pytest.raises(ValueError, match="group_reduce 'mean'"):
        morphnet.channel_scores(model, TARGET, "mean")


def test_marginal_costs_and_penalty_by_hand():
    cost = morphnet.marginal_costs(TARGET)
    # stage 1, block 0: conv1 8→9 and conv2 9→8 at 14×14
    assert cost["stage1/block0"] == 2 * 9 * 8 * 196
    # stage 3's residual: block0 conv2 and the 1×1 shortcut out, block1 conv1 in, conv2 out
    assert cost["stage3/residual"] == 16 * (9 * 32 + 16 + 9 * 32 + 9 * 32)
    # stage 1's residual: the stem out, both blocks' conv1 in and conv2 out, stage 2's
    # block0 conv1 in and 1×1 shortcut in
    assert cost["stage1/residual"] == (9 * 196 + 4 * 9 * 8 * 196 + 9 * 16 * 49 + 16 * 49)
    scores = {d: np.ones(n) for d, n in TARGET.base.items()}
    expected = sum(cost[d] * TARGET.base[d] for d in TARGET.dims) / TARGET.flops(TARGET.base)
    assert float(morphnet.penalty(scores, TARGET)) == pytest.approx(expected)


def test_budget_rule_drops_the_smallest_scores_first_and_keeps_one_per_dim():
    scores = {d: np.full(n, 1.0) for d, n in TARGET.base.items()}
    scores["stage3/block0"] = np.full(32, 1e-3)  # the first to go
    scores["stage3/block1"][:5] = 1e-2  # the next
    f0 = TARGET.flops(TARGET.base)
    per_channel = 9 * 16 * 16 + 9 * 32 * 16  # stage 3 block 0's conv1 out and conv2 in, 4×4
    # ρ = 0.9: ceil(0.1 · F0 / per_channel) channels of stage3/block0 go, nothing else
    counts = morphnet.prune(scores, TARGET, "budget", ratio=0.9)
    assert counts["stage3/block0"] == 32 - int(np.ceil(0.1 * f0 / per_channel))
    assert {d: c for d, c in counts.items() if d != "stage3/block0"} == {
        d: n for d, n in TARGET.base.items() if d != "stage3/block0"}
    # ρ = 0.5: stage3/block0 keeps one channel, then stage3/block1's 5 low ones go first
    counts = morphnet.prune(scores, TARGET, "budget", ratio=0.5)
    assert counts["stage3/block0"] == 1 and counts["stage3/block1"] <= 27
    assert TARGET.flops(counts) <= 0.5 * f0


def test_threshold_rule_by_hand():
    scores = {d: np.full(n, 0.5) for d, n in TARGET.base.items()}
    scores["stage2/block0"] = np.array([0.0] * 10 + [0.02] * 6)
    scores["stage3/block1"] = np.zeros(32)
    counts = morphnet.prune(scores, TARGET, "threshold", threshold=0.01)
    assert counts["stage2/block0"] == 6 and counts["stage3/block1"] == 1
    assert counts["stage1/block0"] == 8
    with pytest.raises(ValueError, match="prune_rule 'random'"):
        morphnet.prune(scores, TARGET, "random")


def test_one_iteration_lands_within_one_percent_of_the_budget():
    rng = np.random.default_rng(3)
    for family in (TARGET, TARGET.proxy(0.5, 0.5, 0.5)):
        scores = {d: rng.uniform(0, 1, n) for d, n in family.base.items()}
        counts = morphnet.optimise(scores, family)
        budget = family.flops(family.base)
        assert 0.99 * budget <= family.flops(counts) <= budget


def _quick():
    from lib import config as config_lib
    from tests.helpers import REPO
    return config_lib.load_file(REPO / "experiments/width_transfer/configs/fashion.py", "quick")


def test_the_shrink_loss_is_cross_entropy_plus_the_weighted_penalty():
    import jax.numpy as jnp

    from experiments.width_transfer import task as task_lib
    from lib import losses

    config = _quick()
    shrink = task_lib.MorphNetShrink(config)
    shrink.family = TARGET
    model = model_at()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 14, 14, 1)), jnp.float32)
    y = jnp.asarray([0, 1, 2, 3])
    total, metrics = shrink.train_loss(model, {"image": x, "label": y}, None, 0)
    model = model_at()  # the same init: train mode moved the BN statistics above
    ce = float(losses.softmax_cross_entropy(model(x, train=True), y).mean())
    gammas = morphnet.channel_scores(model, TARGET, "sum", xp=np)
    cost = morphnet.marginal_costs(TARGET)
    penalty = sum(cost[d] * gammas[d].sum() for d in TARGET.dims) / TARGET.flops(TARGET.base)
    assert float(metrics["cross_entropy"]) == pytest.approx(ce, rel=1e-5)
    assert float(metrics["penalty"]) == pytest.approx(penalty, rel=1e-5)
    assert float(total) == pytest.approx(ce + 0.5 * penalty, rel=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"width_transfer.stacking": "mirror"}, "width_transfer.stacking='mirror'; valid"),
    ({"width_transfer.proxy_resolution": 0.3}, "must be a whole multiple of data.pool"),
    ({"width_transfer.optimizer": "autoslim", "data.validation_examples": 0},
     "set data.validation_examples"),
    ({"width_transfer.optimizer": "autoslim", "width_transfer.supernet_low": 0.9},
     "AutoSlim cannot cut to"),
    ({"model.name": "cifar_resnet"}, "width transfer trains"),
    ({"width_transfer.optimizer": "netadapt"}, "width_transfer.optimizer='netadapt'; valid"),
    ({"model.depth": 12}, "6n \\+ 2 deep"),
    ({"model.width": 5}, "model config cannot build"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, changes, message):
    from experiments.width_transfer import procedure
    from lib import config as config_lib

    config = config_lib.updated(_quick(), changes)
    with pytest.raises(config_lib.ConfigError, match=message):
        procedure.run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("optimizer", ["morphnet", "autoslim", "dmcp"])
def test_the_same_seed_gives_the_same_optimised_widths(tmp_path, optimizer):
    from experiments.width_transfer import procedure
    from lib import config as config_lib
    from lib import data, train

    config = config_lib.updated(_quick(), {"width_transfer.optimizer": optimizer})
    if optimizer == "autoslim":  # fewer greedy cuts, each scored on fewer images
        config = config_lib.updated(config, {"width_transfer.ratio": 0.8,
                                             "width_transfer.recalibration_batches": 1,
                                             "data.eval_batch_size": 104})
    if optimizer == "dmcp":  # a chain whose expected widths differ from w0 after 3 steps
        config = config_lib.updated(config, {"width_transfer.dmcp_init": 0.0})
    stage = procedure.stages(config, data.get_info(config.data))["optimise_target"]
    stage = config_lib.updated(stage, {"total_steps": 3})
    widths = []
    for name in ("a", "b"):
        train.run(stage, tmp_path / name)
        widths.append(procedure.optimised(tmp_path / name, config)[1])
    assert widths[0] == widths[1]
    assert widths[0] != TARGET.base  # the optimiser moved them
    assert 0.99 * TARGET.flops(TARGET.base) <= TARGET.flops(widths[0]) <= TARGET.flops(TARGET.base)
