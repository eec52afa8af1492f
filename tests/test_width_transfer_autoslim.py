"""AutoSlim (experiments/width_transfer/autoslim.py) on worked examples: the greedy cuts on a
two-dim family with linear FLOPs, worked out by hand; the supernet's sampled sub-networks; the
expected training MACs; the supernet step's loss."""

import dataclasses

import jax
import numpy as np
import pytest

from experiments.width_transfer import autoslim, nets


@dataclasses.dataclass(frozen=True)
class Line:
    """Two dims, w0 = (10, 20), FLOPs 3a + b: B = 50."""

    dims: tuple = ("a", "b")
    base: dict = dataclasses.field(default_factory=lambda: {"a": 10, "b": 20})

    def flops(self, counts):
        return 3 * counts["a"] + counts["b"]


def test_greedy_cuts_the_dim_whose_cut_costs_least_accuracy_by_hand():
    # cutting a channel of a costs 1 point, of b 0.1: b goes first, 20 → 18 → ... → 8 (its
    # floor: floor(0.42·20)), FLOPs 50 → 38; then a, 10 → 9 → ... → 5: 3·6 + 8 = 26 > 25,
    # 3·5 + 8 = 23 ≤ 25 = 0.5·B.
    family = Line()
    score = lambda c: -(10 - c["a"]) - 0.1 * (20 - c["b"])  # noqa: E731
    counts, trace = autoslim.greedy(family, score, 25, low=0.42)
    assert counts == {"a": 5, "b": 8}
    assert [t["dim"] for t in trace] == ["b"] * 6 + ["a"] * 5
    assert [t["flops"] for t in trace] == [48, 46, 44, 42, 40, 38, 35, 32, 29, 26, 23]


def test_greedy_breaks_ties_by_the_larger_flops_saving():
    # equal scores: a's channel saves 3 FLOPs, b's two channels 2: a down to its floor 4
    # (50 → 32), then b 20 → 18 → 16 → 14 → 12 (24 ≤ 25)
    counts, trace = autoslim.greedy(Line(), lambda c: 0.0, 25, low=0.42)
    assert counts == {"a": 4, "b": 12}
    assert [t["dim"] for t in trace] == ["a"] * 6 + ["b"] * 4


def test_a_goal_below_the_supernets_smallest_widths_is_refused():
    # floors a = 4, b = 8: 20 FLOPs
    with pytest.raises(ValueError, match="cannot cut to 19 FLOPs.*cost 20"):
        autoslim.greedy(Line(), lambda c: 0.0, 19, low=0.42)


def test_optimise_expands_back_within_one_percent_of_the_budget():
    family = nets.CifarResNet()
    rng = np.random.default_rng(0)
    weights = {d: rng.uniform(0.1, 1) for d in family.dims}
    score = lambda c: -sum(weights[d] * (family.base[d] - c[d]) / family.base[d]  # noqa: E731
                           for d in family.dims)
    counts, trace = autoslim.optimise(family, score, low=0.42, ratio=0.5)
    budget = family.flops(family.base)
    assert 0.99 * budget <= family.flops(counts) <= budget
    assert trace[-1]["flops"] <= 0.5 * budget < (trace[-2]["flops"] if len(trace) > 1
                                                  else budget)


@pytest.mark.parametrize("sampling", ["uniform", "layerwise"])
def test_sampled_sub_networks_lie_in_the_trained_range(sampling):
    family = nets.CifarResNet()
    base = np.array([family.base[d] for d in family.dims])
    rows = np.asarray(autoslim.sample_rows(jax.random.key(3), family, 50, 0.42, sampling))
    assert rows.shape == (51, len(base))
    np.testing.assert_array_equal(rows[-1], np.maximum(1, np.floor(0.42 * base)))
    assert (rows >= np.floor(0.42 * base)).all() and (rows <= base).all()
    if sampling == "uniform":  # one f per row: row_d = floor(f·w0_d) for every d, that is
        for row in rows[:-1]:  # row_d / w0_d ≤ f < (row_d + 1) / w0_d has a solution
            assert np.max(row / base) < np.min((row + 1) / base), row
    else:
        assert len({tuple(np.round(r / base, 2)) for r in rows[:-1]}) > 40
    again = np.asarray(autoslim.sample_rows(jax.random.key(3), family, 50, 0.42, sampling))
    np.testing.assert_array_equal(rows, again)


def test_training_macs_is_the_full_the_samples_and_the_smallest():
    # FLOPs 3a + b are linear, so the uniform mean over f ∈ [0.42, 1] is about
    # ((0.42 + 1)/2)·50 = 35.5 less the floors' average loss (under 1 per dim: 3·0.5 + 0.5),
    # and the smallest net is 3·4 + 8 = 20: 50 + 2·(35.5 − 2) + 20 = 137.
    macs = autoslim.training_macs(Line(), 2, 0.42, "uniform")
    assert macs == pytest.approx(137, abs=1.5)
    assert autoslim.training_macs(Line(), 0, 0.42, "uniform") == 70
    layerwise = autoslim.training_macs(Line(), 2, 0.42, "layerwise")
    assert layerwise == pytest.approx(137, abs=2.5)


def test_the_supernet_loss_is_the_sandwich_of_its_sampled_rows():
    import jax.numpy as jnp

    from experiments.width_transfer import task as task_lib
    from lib import config as config_lib
    from lib.slim import sandwich
    from tests.helpers import REPO
    from tests.test_width_transfer_morphnet import model_at

    config = config_lib.load_file(REPO / "experiments/width_transfer/configs/fashion.py",
                                  "quick,optimizer=autoslim")
    supernet = task_lib.AutoSlimSupernet(config)
    supernet.family = nets.CifarResNet()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 14, 14, 1)), jnp.float32)
    batch = {"image": x, "label": jnp.asarray([0, 1, 2, 3])}
    key = jax.random.key(7)
    total, metrics = supernet.train_loss(model_at(), batch, key, 0)
    rows = autoslim.sample_rows(key, supernet.family, 2, 0.42)
    expected, _ = sandwich.sandwich_loss(model_at(), batch, rows, 0.0)
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert set(metrics) >= {"loss_full", "kd_0", "kd_1", "loss_smallest"}
