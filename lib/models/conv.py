"""A 2-D convolution whose weight gradient avoids XLA:CPU's slow activation transpose.

For the weight gradient of an NHWC convolution, XLA:CPU's conv canonicalisation transposes
the activations NHWC -> CHWN in one generic 4-D transpose, which on ResNet-20 costs more than
the convolutions themselves (`python -m lib.bench --only step_profile`: the
`transpose_copy_fusion` ops). Here the weight gradient is written as a convolution of its own
whose operands we lay out first, in two cheap steps: [N, HW, C] -> [HW, C, N] (a 2-D
transpose), then -> [C, HW, N] (a copy of contiguous rows), with an optimisation barrier
between them so that XLA does not fuse them back into the slow one. The input gradient stays
XLA's own (it is fast). On other backends the plain convolution is used (`auto`).

Selected by `model.conv_weight_grad`: auto | xla | transposed.
"""

from __future__ import annotations

import functools

import jax
from jax import lax

WEIGHT_GRADS = ("auto", "xla", "transposed")
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def conv_function(weight_grad: str):
    """The `conv_general_dilated` to give nnx.Conv for a `model.conv_weight_grad` choice."""
    if weight_grad not in WEIGHT_GRADS:
        raise ValueError(f"unknown conv_weight_grad {weight_grad!r}; "
                         f"valid choices: {', '.join(WEIGHT_GRADS)}")
    if weight_grad == "auto":
        weight_grad = "transposed" if jax.default_backend() == "cpu" else "xla"
    return conv_transposed_weight_grad if weight_grad == "transposed" else lax.conv_general_dilated


def conv_transposed_weight_grad(lhs, rhs, window_strides, padding, lhs_dilation=None,
                                rhs_dilation=None, dimension_numbers=None,
                                feature_group_count=1, batch_group_count=1, precision=None,
                                preferred_element_type=None, out_sharding=None):
    """lax.conv_general_dilated's signature; the custom weight gradient where it applies.

    It applies to 2-D NHWC/HWIO convolutions without dilation or groups (every conv of the
    ResNets, VGGs and conv nets); anything else goes to lax unchanged.
    """
    plain = functools.partial(
        lax.conv_general_dilated, window_strides=window_strides, padding=padding,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type, out_sharding=out_sharding)
    dilated = any(d != 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
    if (lhs.ndim != 4 or not _is_nhwc(lhs, rhs, dimension_numbers) or dilated
            or feature_group_count != 1 or batch_group_count != 1
            or preferred_element_type is not None or out_sharding is not None):
        return plain(lhs, rhs)
    strides = tuple(int(s) for s in window_strides)
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv(lhs, rhs, strides, padding, precision)


def _is_nhwc(lhs, rhs, dimension_numbers) -> bool:
    """Whether the dimension numbers (strings, or nnx.Conv's ConvDimensionNumbers) are ours."""
    if dimension_numbers is None:  # lax's default is NCHW / OIHW
        return False
    as_given = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    return as_given == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _DIMENSIONS)


def _plain_conv(x, w, strides, padding, precision):
    return lax.conv_general_dilated(x, w, strides, padding, precision=precision,
                                    dimension_numbers=_DIMENSIONS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, strides, padding, precision):
    return _plain_conv(x, w, strides, padding, precision)


def _conv_forward(x, w, strides, padding, precision):
    return _plain_conv(x, w, strides, padding, precision), (x, w)


def _conv_backward(strides, padding, precision, residuals, g):
    x, w = residuals
    _, input_vjp = jax.vjp(lambda x: _plain_conv(x, w, strides, padding, precision), x)
    (dx,) = input_vjp(g)
    return dx, weight_gradient(x, g, w.shape, strides, padding, precision).astype(w.dtype)


_conv.defvjp(_conv_forward, _conv_backward)


def weight_gradient(x, g, kernel_shape, strides, padding, precision=None):
    """dL/dw of an NHWC/HWIO convolution, from its input x and output cotangent g.

    dw[a, b, c, o] = sum over n, i, j of x_padded[n, i·s + a, j·s + b, c] · g[n, i, j, o]: a
    convolution over the spatial dimensions with batch C, features N and the kernel g
    dilated by the stride. Its high padding is whatever makes the output K wide; it is
    negative where the forward pass dropped trailing rows.
    """
    n, h, w_, c = x.shape
    kh, kw = kernel_shape[:2]
    _, ho, wo, _ = g.shape
    # [N, H, W, C] -> [HW, C, N] -> (barrier) -> [C, HW, N] = [C, H, W, N]
    xt = lax.optimization_barrier(x.reshape(n, h * w_, c).transpose(1, 2, 0))
    xt = xt.transpose(1, 0, 2).reshape(c, h, w_, n)
    gt = g.transpose(1, 2, 0, 3)  # [Ho, Wo, N, O]: the kernel, N as its input features
    pads = []
    for (lo, _), size, k, out, s in zip(padding, (h, w_), (kh, kw), (ho, wo), strides):
        pads.append((lo, k + (out - 1) * s - size - lo))
    dw = lax.conv_general_dilated(xt, gt, (1, 1), pads, rhs_dilation=strides,
                                  dimension_numbers=_DIMENSIONS, precision=precision)
    return dw.transpose(1, 2, 0, 3)  # [C, K, K, O] -> [K, K, C, O]
