"""experiments/early_phase: perturbations of the rewound weights, by hand and in a stage."""

import math

import jax
import numpy as np
import pytest
from helpers import digits_config

from experiments.early_phase import perturb
from lib import config as config_lib
from lib import procedure, sparsity, train

RNG = np.random.default_rng(0)
W = RNG.normal(0, 0.3, size=(3, 3, 16, 32)).astype(np.float32)
W[0, 0, 0, :4] = 0.0  # exact zeros: sign(0) := +1
MASK = (RNG.random(W.shape) < 0.3).astype(np.float32)
MASK[0, 0, 0, :4] = 1.0
ALIVE = MASK > 0


def run(name, seed=0, **kw):
    return perturb.perturb_tensor(W, MASK, name, np.random.default_rng(seed), **kw)


@pytest.mark.parametrize("name", perturb.PERTURBATIONS)
def test_pruned_positions_stay_zero(name):
    out = run(name)
    assert out.shape == W.shape and out.dtype == np.float32
    assert np.all(out[~ALIVE] == 0)


def test_rewind_is_the_masked_rewound_weights():
    np.testing.assert_array_equal(run("rewind"), W * MASK)


def test_init_std_is_kaiming_normal():
    assert perturb.init_std((3, 3, 16, 32)) == math.sqrt(2 / 144)
    assert perturb.init_std((64, 10)) == math.sqrt(2 / 64)


def test_reinit_draws_at_the_init_std():
    out = run("reinit")[ALIVE]
    assert out.std() == pytest.approx(math.sqrt(2 / 144), rel=0.05)
    assert abs(out.mean()) < 0.02


def test_reinit_keep_sign_keeps_every_sign():
    out = run("reinit_keep_sign")[ALIVE]
    expected_sign = np.where(W[ALIVE] >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(np.sign(out), expected_sign)
    assert np.abs(out).std() > 0 and not np.allclose(np.abs(out), np.abs(W[ALIVE]))


def test_shuffle_keeps_the_layers_multiset_and_mask():
    out = run("shuffle_layer")
    np.testing.assert_array_equal(np.sort(out[ALIVE]), np.sort(W[ALIVE]))
    assert np.mean(out[ALIVE] != W[ALIVE]) > 0.9  # positions moved


def test_shuffle_keep_sign_keeps_magnitudes_and_signs():
    out = run("shuffle_layer_keep_sign")[ALIVE]
    np.testing.assert_array_equal(np.sort(np.abs(out)), np.sort(np.abs(W[ALIVE])))
    # a zero magnitude moved onto a negative position gives -0.0: the sign bit still holds it
    np.testing.assert_array_equal(np.signbit(out), W[ALIVE] < 0)


@pytest.mark.parametrize("epsilon, ref", [(0.5, "init_std"), (2.0, "init_std"),
                                          (1.0, "rewound_std")])
def test_gaussian_noise_scale(epsilon, ref):
    noise = run("gaussian_noise", epsilon=epsilon, noise_ref=ref)[ALIVE] - W[ALIVE]
    scale = math.sqrt(2 / 144) if ref == "init_std" else W[ALIVE].std()
    assert noise.std() == pytest.approx(epsilon * scale, rel=0.06)


def test_seeded_and_per_tensor():
    params = {"a": W, "b": W[..., :8], "bias": np.ones(3, np.float32)}
    masks = {"a": MASK, "b": MASK[..., :8]}
    one = perturb.perturb(params, masks, "reinit", seed=3)
    np.testing.assert_array_equal(one["a"], perturb.perturb(params, masks, "reinit", 3)["a"])
    assert not np.array_equal(one["a"], perturb.perturb(params, masks, "reinit", 4)["a"])
    np.testing.assert_array_equal(one["bias"], params["bias"])  # not prunable: untouched


def test_bad_names_and_values():
    with pytest.raises(ValueError, match="unknown perturbation 'shuffle'; valid choices: rewind"):
        perturb.perturb({"a": W}, {"a": MASK}, "shuffle", 0)
    with pytest.raises(ValueError, match="perturb.epsilon=-1.0 must be >= 0"):
        run("gaussian_noise", epsilon=-1.0)
    with pytest.raises(ValueError, match="valid choices: init_std, rewound_std"):
        run("gaussian_noise", noise_ref="weights")


@pytest.fixture(scope="module")
def trunk(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trunk")
    config = config_lib.add_sections(digits_config(
        **{"imp.levels": 1, "imp.rewind_step": 4, "sparsity.fraction": 0.5}),
        "experiments.early_phase.config")
    procedure.imp(config, workdir)
    return workdir, config


def perturbed_stage(trunk, name):
    workdir, config = trunk
    return train.Trainer(procedure.stage_config(config, **{
        "sparsity.mask": str(workdir / "level_1" / "mask.npz"),
        "init.workdir": str(workdir / "level_0"), "init.step": 4,
        "init.transform": "experiments.early_phase.perturb:transform", "perturb.name": name}))


def test_a_stage_starts_from_the_perturbed_rewound_weights(trunk):
    rewound, _ = perturbed_stage(trunk, "rewind").starting_state()
    trainer = perturbed_stage(trunk, "reinit_keep_sign")
    state, data_state = trainer.starting_state()
    assert int(state["step"]) == 4 and data_state == {"next_index": 4}
    rewound, state = jax.device_get(rewound["params"]), jax.device_get(state["params"])
    masks = trainer.setup.masks
    for k, v in state.items():
        if k not in masks:
            np.testing.assert_array_equal(v, rewound[k], err_msg=k)  # biases, BN, untouched
            continue
        alive = masks[k] > 0
        assert np.all(v[~alive] == 0)
        np.testing.assert_array_equal(np.where(v[alive] >= 0, 1, -1),
                                      np.where(rewound[k][alive] >= 0, 1, -1), err_msg=k)
        assert not np.array_equal(v[alive], rewound[k][alive])
    assert sparsity.sparsity(masks) == pytest.approx(0.5, abs=1e-4)


def test_a_stage_with_an_unknown_perturbation_stops_with_the_choices(trunk):
    with pytest.raises(config_lib.ConfigError, match="unknown perturbation 'flip'"):
        perturbed_stage(trunk, "flip").starting_state()
