"""width_transfer (experiments/width_transfer): the stacking rules on the spec's hand
examples, projection, FLOPs renormalisation, the cost counter's hand counts on the §6 target,
the overhead factor recomputed by hand, fused dimensions in the built network, bad input."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import base
from experiments.width_transfer import nets, overhead, transfer

TARGET = nets.CifarResNet()  # ResNet-14, w0 (8, 16, 32), 14×14
PROXY = TARGET.proxy(width=0.5, depth=0.5, resolution=0.5)


def test_stacking_rules_on_the_spec_examples():
    a, b = 0.3, 0.9
    assert transfer.stack([a, b], 4, "replicate") == [a, a, b, b]
    assert transfer.stack([a, b], 4, "tile") == [a, b, a, b]
    assert transfer.stack([10, 11, 12], 5, "replicate") == [10, 10, 11, 11, 12]
    inter = transfer.stack([a, b], 4, "interpolate")
    assert inter == pytest.approx([a, a + 0.25 * (b - a), a + 0.75 * (b - a), b])
    for rule in transfer.STACKING:  # one proxy block: every rule copies it
        assert transfer.stack([a], 3, rule) == pytest.approx([a, a, a])


@pytest.mark.parametrize("call, message", [
    (lambda: transfer.stack([1, 2], 4, "mirror"), "unknown stacking rule 'mirror'"),
    (lambda: transfer.stack([1, 2, 3], 2), "a proxy may be shallower than its target, not "
                                          "deeper"),
    (lambda: TARGET.proxy(depth=2.0), "never wider, deeper or larger"),
])
def test_bad_transfers_are_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_projection_maps_stage_dims_and_stacks_block_dims():
    assert PROXY.widths == (4, 8, 16) and PROXY.blocks == 1 and PROXY.image == 7
    assert len(PROXY.dims) == 6 and len(TARGET.dims) == 9
    proxy = {"stage1/residual": 0.5, "stage1/block0": 1.5, "stage2/residual": 1.0,
             "stage2/block0": 0.75, "stage3/residual": 2.0, "stage3/block0": 0.25}
    target = transfer.project(proxy, TARGET.dims)
    assert target == {"stage1/residual": 0.5, "stage1/block0": 1.5, "stage1/block1": 1.5,
                      "stage2/residual": 1.0, "stage2/block0": 0.75, "stage2/block1": 0.75,
                      "stage3/residual": 2.0, "stage3/block0": 0.25, "stage3/block1": 0.25}
    # w = max(1, floor(m · w0))
    assert transfer.widths(target, TARGET.base) == {
        "stage1/residual": 4, "stage1/block0": 12, "stage1/block1": 12, "stage2/residual": 16,
        "stage2/block0": 12, "stage2/block1": 12, "stage3/residual": 64, "stage3/block0": 8,
        "stage3/block1": 8}
    with pytest.raises(ValueError, match="no counterpart in the proxy"):
        transfer.project({k: v for k, v in proxy.items() if k != "stage2/residual"},
                         TARGET.dims)


def test_renormalisation_lands_within_one_percent_of_the_budget_and_not_above():
    budget = TARGET.flops(TARGET.base)
    rng = np.random.default_rng(0)
    for _ in range(25):
        m = dict(zip(TARGET.dims, rng.uniform(0.1, 2.5, len(TARGET.dims))))
        out = transfer.renormalise(transfer.widths(m, TARGET.base), TARGET.flops, budget)
        assert 0.99 * budget <= TARGET.flops(out) <= budget
        assert min(out.values()) >= 1


def test_renormalisation_is_uniform_scaling_where_that_lands_within_one_percent():
    w0 = TARGET.base
    budget = TARGET.flops(w0)
    assert transfer.renormalise(w0, TARGET.flops, budget) == w0
    assert transfer.renormalise({d: 2 * w for d, w in w0.items()}, TARGET.flops, budget) == w0
    out = transfer.renormalise({d: 3 * w for d, w in w0.items()}, TARGET.flops, 0.3 * budget)
    ratios = {out[d] / w0[d] for d in w0}
    assert 0.99 * 0.3 * budget <= TARGET.flops(out) <= 0.3 * budget
    assert max(ratios) - min(ratios) <= 1 / 8 + 1e-9  # proportional up to the floors


def test_a_budget_that_cannot_be_met_is_refused():
    w0 = TARGET.base
    with pytest.raises(ValueError, match="cannot be met.*already cost"):
        transfer.renormalise(w0, TARGET.flops, 1_000)
    with pytest.raises(ValueError, match="cannot be met.*reach only"):
        transfer.renormalise(w0, TARGET.flops, 1e12)


def test_cost_counter_equals_a_hand_count_on_the_target():
    # uniform target at 14×14 (stage sides 14, 7, 4), grey input, dense head not counted
    by_hand = (9 * 1 * 8 * 196                                  # stem
               + 4 * 9 * 8 * 8 * 196                             # stage 1: 2 blocks × 2 convs
               + 9 * 8 * 16 * 49 + 9 * 16 * 16 * 49 + 8 * 16 * 49  # stage 2 block 0 + 1×1
               + 2 * 9 * 16 * 16 * 49                            # stage 2 block 1
               + 9 * 16 * 32 * 16 + 9 * 32 * 32 * 16 + 16 * 32 * 16  # stage 3 block 0 + 1×1
               + 2 * 9 * 32 * 32 * 16)                           # stage 3 block 1
    assert TARGET.flops(TARGET.base) == by_hand
    counts = {"stage1/residual": 5, "stage1/block0": 3, "stage1/block1": 7,
              "stage2/residual": 20, "stage2/block0": 9, "stage2/block1": 1,
              "stage3/residual": 11, "stage3/block0": 40, "stage3/block1": 2}
    by_hand = (9 * 1 * 5 * 196
               + 9 * 5 * 3 * 196 + 9 * 3 * 5 * 196 + 9 * 5 * 7 * 196 + 9 * 7 * 5 * 196
               + 9 * 5 * 9 * 49 + 9 * 9 * 20 * 49 + 5 * 20 * 49
               + 9 * 20 * 1 * 49 + 9 * 1 * 20 * 49
               + 9 * 20 * 40 * 16 + 9 * 40 * 11 * 16 + 20 * 11 * 16
               + 9 * 11 * 2 * 16 + 9 * 2 * 11 * 16)
    assert TARGET.flops(counts) == by_hand


def test_overhead_factor_recomputed_by_hand():
    target_run = overhead.OptimiserRun(TARGET.flops(TARGET.base), 4 * 12_000)
    proxy_run = overhead.OptimiserRun(PROXY.flops(PROXY.base), 4 * 3_600)
    expected = (TARGET.flops(TARGET.base) * 48_000) / (PROXY.flops(PROXY.base) * 14_400)
    assert overhead.reduction(target_run, proxy_run) == pytest.approx(expected)
    # each single-axis proxy lowers the per-image cost (width, depth, resolution) or the
    # images seen (data)
    for axis in ({"width": 0.5}, {"depth": 0.5}, {"resolution": 0.5}):
        family = TARGET.proxy(**axis)
        assert family.flops(family.base) < TARGET.flops(TARGET.base), axis
    data_run = overhead.OptimiserRun(TARGET.flops(TARGET.base), 0.3 * 48_000)
    assert overhead.reduction(target_run, data_run) == pytest.approx(1 / 0.3)
    with pytest.raises(ValueError, match="positive"):
        overhead.OptimiserRun(0, 10)


def test_fused_dims_keep_every_layer_of_a_group_at_one_width():
    counts = {"stage1/residual": 5, "stage1/block0": 3, "stage1/block1": 7,
              "stage2/residual": 20, "stage2/block0": 9, "stage2/block1": 1,
              "stage3/residual": 11, "stage3/block0": 40, "stage3/block1": 2}
    cfg = base.get_config().model
    cfg.name, cfg.depth, cfg.width, cfg.widths = nets.MODEL, 14, 8, tuple(counts.values())
    model = nets.resnet(cfg, num_classes=10, in_channels=1, rngs=nnx.Rngs(0))
    out = model(jnp.ones((2, 14, 14, 1)), train=False)
    assert out.shape == (2, 10)
    assert model.stem.kernel.value.shape[-1] == counts["stage1/residual"]
    for s in (1, 2, 3):
        for j in (0, 1):
            block = getattr(model, f"stage{s}").blocks()[j]
            assert block.conv1.kernel.value.shape[-1] == counts[f"stage{s}/block{j}"]
            assert block.conv2.kernel.value.shape[-1] == counts[f"stage{s}/residual"]
            if block.downsample is not None:
                assert s > 1 and j == 0
                assert block.downsample.kernel.value.shape[-1] == counts[f"stage{s}/residual"]
    cfg.widths = (4, 4)
    with pytest.raises(ValueError, match="has 2 channel counts; this network has 9 dims"):
        nets.resnet(cfg, num_classes=10, in_channels=1, rngs=nnx.Rngs(0))


def _measurements():
    from experiments.width_transfer import claims

    optimiser = {"target": {"macs_per_image": 1_391_392, "images": 48_000},
                 "proxy": {"macs_per_image": 44_548, "images": 14_400}}
    factor = (1_391_392 * 48_000) / (44_548 * 14_400)

    def run(top1, rho):
        return {"budget": 1000, "flops/direct": 995, "flops/transferred": 999,
                "overhead/factor": factor, "overhead/clock_factor": 9.0,
                "record": {"optimiser": optimiser,
                           "widths": {"direct": {"stage1/residual": 9}}},
                "spearman": rho, **{f"final/{arm}/top1": v for arm, v in top1.items()}}

    top1 = {"uniform": 0.85, "direct": 0.885, "transferred": 0.88}
    return {"runs": [run(top1, 0.4), run(top1, 0.2)],
            "repeat_direct": {"stage1/residual": 9}, "exact": claims.exact_checks()}


def test_small_claims_on_hand_built_measurements():
    """Every claim passes on a consistent set; each mutation fails exactly its claim."""
    from experiments.width_transfer import claims
    from lib import repro

    def failing(m):
        return [r.id for r in repro.evaluate_small(claims, m) if not r.passed]

    assert failing(_measurements()) == []
    cases = [
        (lambda m: m["runs"][1].__setitem__("flops/transferred", 1001), "(1)"),
        (lambda m: m["runs"][0].__setitem__("flops/direct", 980), "(1)"),
        (lambda m: m["exact"]["stacking"].__setitem__("tile", False), "(2)"),
        (lambda m: m["exact"].__setitem__("counter", 1), "(3)"),
        (lambda m: m["runs"][0].__setitem__("overhead/factor", 49.0), "(4)"),
        (lambda m: m["exact"]["single_axis"].__setitem__("depth", False), "(4)"),
        (lambda m: m["exact"].__setitem__("mixed_by_hand", 1), "(3)"),
        (lambda m: m["exact"]["residual_groups"].__setitem__("2", [20, 19]), "(5)"),
        (lambda m: m.__setitem__("repeat_direct", {"stage1/residual": 8}), "(6)"),
        (lambda m: [r.__setitem__("spearman", -0.5) for r in m["runs"]], "soft: Spearman"),
        (lambda m: [r.__setitem__("final/transferred/top1", 0.862) for r in m["runs"]],
         "soft: top-1"),
        (lambda m: [r.__setitem__("final/uniform/top1", 0.9) for r in m["runs"]],
         "soft: direct"),
    ]
    for mutate, prefix in cases:
        m = _measurements()
        mutate(m)
        failed = failing(m)
        assert len(failed) == 1 and failed[0].startswith(prefix), (prefix, failed)
    assert all(not r.passed for r in repro.evaluate_small(claims, {"exact": {}, "runs": []})
               if r.id.startswith("(1)"))


def test_analysis_groups_seeds_by_settings(tmp_path, capsys):
    import json

    from experiments.width_transfer import analysis
    from lib import config as config_lib
    from tests.helpers import REPO

    def finished(name, seed, penalty, top1, factor):
        config = config_lib.load_file(REPO / "experiments/width_transfer/configs/fashion.py",
                                      f"seed={seed},penalty={penalty}")
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(config.to_json_best_effort())
        (folder / "results.json").write_text(json.dumps({
            "overhead/factor": factor, "spearman": 0.5,
            **{f"final/{arm}/top1": v for arm, v in zip(analysis.ARMS, top1)}}))
        return folder

    runs = [finished("a0", 0, 0.5, (0.80, 0.82, 0.81), 100.0),
            finished("a1", 1, 0.5, (0.82, 0.84, 0.83), 100.0),
            finished("b0", 0, 1.0, (0.80, 0.70, 0.75), 100.0)]
    analysis.analyse(runs, tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == 2
    assert "penalty=0.5" in lines[0] and "2 run(s)" in lines[0]
    assert "direct 0.8300 ± 0.0141" in lines[0] and "100.0× less" in lines[0]
    assert "penalty=1.0" in lines[1] and "1 run(s)" in lines[1]
    assert (tmp_path / "top1_vs_overhead.png").exists()
