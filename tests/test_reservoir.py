"""Reservoir Transformers (experiments/reservoir): placement, reservoir initialisation and
freezing, backskipping, the GRU and light-convolution reservoirs against numpy, AUCC against
areas by hand, the synthetic task, and a short training run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.reservoir import analysis, aucc, layers, placement, synthetic
from lib import config as config_lib
from lib import metrics, train
from lib.config import ConfigError
from lib.models import transformer
from tests.helpers import REPO, timeless

SYNTHETIC = REPO / "experiments/reservoir/configs/synthetic.py"
DIMS = transformer.Dims(width=8, heads=2, ffn=12, dropout=0.0)
TYPES = {"T": layers.TransformerReservoir, "F": layers.FFNReservoir,
         "G": layers.GRUReservoir, "C": layers.LightConvReservoir}


# --- placement ------------------------------------------------------------------------------


def test_placement_examples_and_refusal():
    assert placement.layer_types(7, 3, "F") == "LFLFLFL"
    assert placement.layer_types(7, 2, "T") == "LLTLTLL"
    assert placement.layer_types(3, 1) == "LFL"
    assert placement.layer_types(8, 2) == "LLFLFLLL"  # pad floor((8 − 5) / 2) = 1
    assert placement.layer_types(6, 0) == "LLLLLL"
    with pytest.raises(ConfigError, match="at least 2k \\+ 1 = 7 layers"):
        placement.positions(6, 3)
    assert placement.layer_types(5, 2, "F", "bottom") == "FFLLL"
    assert placement.layer_types(5, 2, "F", "top") == "LLLFF"
    assert placement.layer_types(6, 2, "F", "middle") == "LLFFLL"
    with pytest.raises(ConfigError, match="unknown reservoir placement"):
        placement.positions(5, 1, "random")


# --- reservoir layers -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_reservoir_projections_orthogonal_and_all_frozen(kind):
    layer = TYPES[kind](DIMS, rngs=nnx.Rngs(3))
    params = {path: np.asarray(v[...], np.float64)
              for path, v in nnx.to_flat_state(nnx.state(layer, nnx.Param))}
    kernels = {path[:-1]: w for path, w in params.items() if path[-1] == "kernel"}
    for w in kernels.values():
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-5)
    for owner, w in kernels.items():  # PyTorch's U(±1/√fan_in) biases
        bias = params[(*owner, "bias")]
        assert 0 < np.abs(bias).max() <= 1 / np.sqrt(w.shape[0])
    assert len(kernels) == {"T": 6, "F": 2, "G": 4, "C": 3}[kind]
    assert isinstance(layer, transformer.Frozen)


def test_identity_backskip_gradient_is_eta_times_incoming():
    checks = analysis.backskip_checks(eta=0.5)
    assert checks["scaled_error"] < 1e-6 and checks["forward_error"] == 0
    assert checks["zero_f_error"] < 1e-6


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_stochastic_backskip_at_probability_0_and_1(kind):
    x = jax.random.normal(jax.random.key(0), (2, 5, 8))
    g = jax.random.normal(jax.random.key(1), (2, 5, 8))
    mask = jnp.ones((2, 1, 1, 5), bool)

    def grad(mode, p):
        layer = TYPES[kind](DIMS, layers.Backskip(mode, 1.0, p), rngs=nnx.Rngs(0))
        _, vjp = jax.vjp(lambda h: layer(h, mask, rng=jax.random.key(2)), x)
        return vjp(g)[0]

    np.testing.assert_allclose(grad("stochastic", 0.0), grad("none", 1.0), atol=1e-6)
    np.testing.assert_allclose(grad("stochastic", 1.0), g, atol=1e-6)
    assert not np.allclose(grad("none", 1.0), g, atol=1e-3)


def _np_gru(x, wi, bi, wh, bh):
    """PyTorch's GRU equations, one direction, in numpy."""
    half = wh.shape[0]
    h = np.zeros(half)
    out = []
    for xt in x:
        gi, gh = xt @ wi + bi, h @ wh + bh
        r = 1 / (1 + np.exp(-(gi[:half] + gh[:half])))
        z = 1 / (1 + np.exp(-(gi[half:2 * half] + gh[half:2 * half])))
        n = np.tanh(gi[2 * half:] + r * gh[2 * half:])
        h = (1 - z) * n + z * h
        out.append(h)
    return np.array(out)


def _params(linear):
    return np.asarray(linear.kernel[...], np.float64), np.asarray(linear.bias[...], np.float64)


def _np_norm(x, norm):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + 1e-5) * np.asarray(norm.scale[...])
            + np.asarray(norm.bias[...]))


def test_gru_reservoir_matches_numpy_and_ignores_padding():
    layer = layers.GRUReservoir(DIMS, rngs=nnx.Rngs(1))
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 6, 8)), np.float64)
    lengths = (6, 4)
    mask = np.arange(6)[None] < np.array(lengths)[:, None]
    out = np.asarray(layer(jnp.asarray(x, jnp.float32), jnp.asarray(mask)[:, None, None]))
    for b, n in enumerate(lengths):
        h = _np_norm(x[b, :n], layer.norm)
        fwd = _np_gru(h, *_params(layer.forward_input), *_params(layer.forward_hidden))
        bwd = _np_gru(h[::-1], *_params(layer.backward_input),
                      *_params(layer.backward_hidden))[::-1]
        expected = x[b, :n] + np.concatenate([fwd, bwd], -1)
        np.testing.assert_allclose(out[b, :n], expected, atol=2e-5)


def test_light_conv_reservoir_matches_numpy():
    layer = layers.LightConvReservoir(DIMS, kernel=3, rngs=nnx.Rngs(1))
    x = np.asarray(jax.random.normal(jax.random.key(0), (1, 5, 8)), np.float64)
    mask = np.array([[True] * 4 + [False]])
    out = np.asarray(layer(jnp.asarray(x, jnp.float32), jnp.asarray(mask)[:, None, None]))
    h = _np_norm(x[0], layer.norm)
    wi, bi = _params(layer.input)
    proj = h @ wi + bi
    u = proj[:, :8] / (1 + np.exp(-proj[:, 8:])) * mask[0][:, None]
    ww, bw = _params(layer.weights)
    w = (h @ ww + bw).reshape(5, 2, 3)
    w = np.exp(w - w.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    conv = np.zeros((5, 8))
    for t in range(5):
        for c in range(8):
            for k in range(3):
                s = t + k - 1
                if 0 <= s < 5:
                    conv[t, c] += w[t, c // 4, k] * u[s, c]
    wo, bo = _params(layer.output)
    np.testing.assert_allclose(out[0], x[0] + conv @ wo + bo, atol=2e-5)


def test_bidirectional_reservoirs_refuse_causal_stacks():
    tokens = jnp.ones((1, 4), jnp.int32)
    for kind in "GC":
        with pytest.raises(ConfigError, match="causal"):
            TYPES[kind](DIMS, rngs=nnx.Rngs(0))(jnp.zeros((1, 4, 8)),
                                                transformer.causal_mask(tokens))


# --- AUCC -----------------------------------------------------------------------------------


def test_aucc_hand_cases():
    for case in analysis.aucc_checks():
        assert case["measured"] == pytest.approx(case["expected"], abs=1e-12)


def test_aucc_against_dense_trapezoids():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0.5, 9.0, 7))
    g = rng.uniform(0, 1, 7)
    fine = np.linspace(0, 6.3, 200_001)
    dense = np.interp(fine, np.concatenate([[0], t]), np.concatenate([[0], g]))
    expected = float(np.sum((dense[1:] + dense[:-1]) / 2 * np.diff(fine)))
    assert aucc.aucc(t, g, 6.3) == pytest.approx(expected, abs=1e-8)
    assert aucc.aucc(t, g, 20.0) == pytest.approx(
        aucc.aucc(t, g, t[-1]) + g[-1] * (20.0 - t[-1]), abs=1e-12)
    assert aucc.aucc([0.0, 2.0], [0.5, 1.0], 2.0, start_at_zero=False) == pytest.approx(1.5)
    assert aucc.time_to(t, np.arange(7) / 6, 0.5) == t[3]
    assert aucc.time_to(t, np.zeros(7), 0.5) is None
    with pytest.raises(ValueError, match="non-decreasing"):
        aucc.aucc([2.0, 1.0], [0.1, 0.2], 3.0)


# --- the synthetic task ---------------------------------------------------------------------


def test_synthetic_translation_by_hand():
    perm = synthetic.permutation()
    np.testing.assert_array_equal(np.sort(perm), np.arange(32))
    source = np.array([3, 4, 5, 6, 7])
    mapped = [perm[t - 3] + 3 for t in (7, 6, 5, 4, 3)]
    expected = [mapped[1], mapped[0], mapped[3], mapped[2], mapped[4]]
    np.testing.assert_array_equal(synthetic.translate(source, perm), expected)
    sources, targets = synthetic.pairs("validation")
    assert len(sources) == 1000
    lengths = [len(s) - 1 for s in sources]
    assert min(lengths) == 6 and max(lengths) == 14
    for s, t in zip(sources[:50], targets[:50]):
        assert s[-1] == t[-1] == 2 and len(s) == len(t)
        np.testing.assert_array_equal(t[:-1], synthetic.translate(s[:-1], perm))
    with pytest.raises(ConfigError, match="has splits"):
        synthetic.translation(None, "dev")


# --- training -------------------------------------------------------------------------------


def _run(tmp_path, name, arg):
    config = config_lib.load_file(SYNTHETIC, f"quick=True,{arg}")
    config = config_lib.updated(config, {"async_checkpointing": False})
    return train.run(config, tmp_path / name)


def test_training_keeps_every_reservoir_type_frozen_and_is_deterministic(tmp_path):
    results = _run(tmp_path, "mixed", "encoder=LTLFLGLCL")
    check = analysis.frozen_check(tmp_path / "mixed")
    assert check["bit_identical"] and not check["with_optimizer_state"]
    assert check["reservoir_params"] == 16 + 6 + 10 + 8  # T, F, G, C: LNs, kernels, biases
    assert check["orthogonality"] < 1e-5
    _, setup, state = train.load_final(tmp_path / "mixed")
    trained = [n for n in setup.trainable.names if n.startswith("encoder/layer0/")]
    assert trained and not np.array_equal(state["params"][trained[0]],
                                          setup.init_state["params"][trained[0]])
    assert results["trainable_params"] < results["total_params"]
    again = _run(tmp_path, "again", "encoder=LTLFLGLCL")
    assert timeless(again) == timeless(results)
    first, second = (metrics.eval_curve(tmp_path / n) for n in ("mixed", "again"))
    assert first["values"] == second["values"] and len(first["values"]) == 3


def test_identity_backskip_trains_and_bad_types_are_refused(tmp_path):
    results = _run(tmp_path, "skip", "encoder=LFL,backskip=identity")
    assert np.isfinite(results["eval/loss"])
    with pytest.raises(ConfigError, match="unknown layer type 'X'"):
        _run(tmp_path, "bad", "encoder=LXL")
    with pytest.raises(ConfigError, match="reservoir.backskip='sometimes'"):
        _run(tmp_path, "bad2", "encoder=LFL,backskip=sometimes")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()


def test_time_saved_reads_the_training_clock_at_the_best_bleu(tmp_path):
    from experiments.reservoir import claims

    def run(name, rows):
        w = tmp_path / name
        w.mkdir()
        (w / "metrics.jsonl").write_text("".join(
            f'{{"step": {s}, "eval/bleu": {b}, "clock/train_seconds": {t}}}\n'
            for s, b, t in rows))
        return w

    reservoir = [run("r1", [(1, 10.0, 100.0), (2, 30.0, 200.0), (3, 29.0, 300.0)]),
                 run("r2", [(1, 31.0, 300.0), (2, 30.0, 400.0)])]
    regular = [run("g", [(1, 20.0, 150.0), (2, 33.0, 500.0)])]
    assert claims.time_saved(reservoir, regular) == pytest.approx(1 - 250.0 / 500.0)
