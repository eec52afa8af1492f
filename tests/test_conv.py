"""The custom weight-gradient convolution (lib/models/conv.py) against jax.grad and numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from configs import base
from lib import models
from lib.models import conv

DIMS = ("NHWC", "HWIO", "NHWC")


def _operands(n, h, w, cin, cout, k, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h, w, cin)).astype(dtype)
    kernel = rng.normal(size=(k, k, cin, cout)).astype(dtype)
    return x, kernel


def _loss(fn, strides, padding):
    # A fixed random cotangent: sum(out · r), so every output position weighs differently.
    def loss(x, kernel):
        out = fn(x, kernel, strides, padding, dimension_numbers=DIMS)
        r = jax.random.normal(jax.random.key(1), out.shape, jnp.float32)
        return jnp.sum(out.astype(jnp.float32) * r)
    return loss


CASES = [  # (n, h, w, cin, cout, k, strides, padding)
    (2, 8, 8, 3, 4, 3, (1, 1), ((1, 1), (1, 1))),
    (2, 8, 8, 3, 4, 3, (2, 2), ((1, 1), (1, 1))),
    (3, 7, 9, 2, 5, 3, (2, 2), ((1, 1), (1, 1))),   # odd sizes: trailing rows unused
    (2, 7, 7, 4, 6, 1, (2, 2), ((0, 0), (0, 0))),   # 1×1 projection shortcut
    (2, 9, 6, 3, 2, 3, (2, 1), "VALID"),             # negative high padding, mixed strides
    (1, 6, 6, 2, 3, 3, (1, 1), "SAME"),
    (2, 10, 10, 3, 3, 7, (2, 2), ((3, 3), (3, 3))),  # ImageNet stem shape
]


@pytest.mark.parametrize("n,h,w,cin,cout,k,strides,padding", CASES)
def test_gradients_match_jax_grad(n, h, w, cin, cout, k, strides, padding):
    x, kernel = _operands(n, h, w, cin, cout, k)
    ours = jax.grad(_loss(conv.conv_transposed_weight_grad, strides, padding), (0, 1))(x, kernel)
    ref = jax.grad(_loss(lax.conv_general_dilated, strides, padding), (0, 1))(x, kernel)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    out = conv.conv_transposed_weight_grad(x, kernel, strides, padding, dimension_numbers=DIMS)
    np.testing.assert_array_equal(
        out, lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=DIMS))


def test_weight_gradient_matches_numpy_loops():
    """dw[a, b, c, o] = Σ_{n,i,j} x_pad[n, i·s+a, j·s+b, c] · g[n, i, j, o], by hand."""
    n, h, w, cin, cout, k, s, pad = 2, 7, 6, 3, 2, 3, 2, 1
    x, _ = _operands(n, h, w, cin, cout, k)
    ho, wo = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    g = np.random.default_rng(3).normal(size=(n, ho, wo, cout)).astype(np.float32)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    expected = np.zeros((k, k, cin, cout))
    for a in range(k):
        for b in range(k):
            patch = xp[:, a:a + s * ho:s, b:b + s * wo:s, :]  # [n, ho, wo, cin]
            expected[a, b] = np.einsum("nijc,nijo->co", patch, g)
    got = conv.weight_gradient(x, g, (k, k, cin, cout), (s, s), ((pad, pad), (pad, pad)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_gradients_within_bfloat16_rounding_of_float32():
    x, kernel = _operands(4, 8, 8, 8, 8, 3)
    strides, padding = (1, 1), ((1, 1), (1, 1))
    bf16 = jax.grad(_loss(conv.conv_transposed_weight_grad, strides, padding), (0, 1))(
        x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16))
    ref = jax.grad(_loss(lax.conv_general_dilated, strides, padding), (0, 1))(x, kernel)
    for a, b in zip(bf16, ref):
        assert a.dtype == jnp.bfloat16
        scale = float(np.max(np.abs(b)))
        np.testing.assert_allclose(np.asarray(a, np.float32), b, atol=0.02 * scale)


def test_dilated_and_grouped_convs_go_to_lax_unchanged():
    x, kernel = _operands(2, 8, 8, 4, 4, 3)
    for kwargs in ({"rhs_dilation": (2, 2)}, {"feature_group_count": 2}):
        k = kernel[:, :, :2] if "feature_group_count" in kwargs else kernel

        def loss(x, k, fn, kwargs=kwargs):
            return jnp.sum(fn(x, k, (1, 1), "SAME", dimension_numbers=DIMS, **kwargs) ** 2)
        ours = jax.grad(loss, (0, 1))(x, k, conv.conv_transposed_weight_grad)
        ref = jax.grad(loss, (0, 1))(x, k, lax.conv_general_dilated)
        for a, b in zip(ours, ref):
            np.testing.assert_array_equal(a, b)


def test_conv_function_choices():
    assert conv.conv_function("xla") is lax.conv_general_dilated
    assert conv.conv_function("transposed") is conv.conv_transposed_weight_grad
    expected = (conv.conv_transposed_weight_grad if jax.default_backend() == "cpu"
                else lax.conv_general_dilated)
    assert conv.conv_function("auto") is expected
    with pytest.raises(ValueError, match="conv_weight_grad 'fast'.*auto, xla, transposed"):
        conv.conv_function("fast")


def test_resnet_gradients_agree_between_formulations():
    """The whole CIFAR ResNet-20 (strided convs, 1×1 shortcuts, BN) gives the same gradient."""
    grads = {}
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
    y = jnp.arange(4) % 10
    for choice in ("xla", "transposed"):
        cfg = base.get_config().model
        cfg.conv_weight_grad = choice
        model = models.build(cfg, num_classes=10, in_channels=3, rngs=nnx.Rngs(0))
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)

        def loss(params, graphdef=graphdef, rest=rest):
            logits = nnx.merge(graphdef, params, rest)(x, train=True)
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), y])
        grads[choice] = jax.grad(loss)(params)
    flat_xla = jax.tree.leaves(grads["xla"])
    flat_ours = jax.tree.leaves(grads["transposed"])
    assert len(flat_xla) == len(flat_ours) > 40
    for a, b in zip(flat_ours, flat_xla):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_nnx_conv_takes_the_custom_weight_gradient():
    """nnx.Conv passes ConvDimensionNumbers, not strings: the custom path must still apply
    (its backward pass holds the optimisation barrier; XLA's does not)."""
    x = jnp.ones((2, 8, 8, 3))
    for choice, barriers in (("transposed", True), ("xla", False)):
        layer = models.LayerSpec(conv_weight_grad=choice).conv(
            3, 4, 3, 2, padding="SAME", rngs=nnx.Rngs(0))
        graphdef, params = nnx.split(layer)

        def loss(params, x, graphdef=graphdef):
            return jnp.sum(nnx.merge(graphdef, params)(x) ** 2)
        lowered = jax.jit(jax.grad(loss)).lower(params, x).as_text()
        assert ("optimization_barrier" in lowered) is barriers, choice
