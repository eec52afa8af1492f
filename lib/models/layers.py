"""Initialisers and layer constructors shared by the model families.

The defaults follow open_lth (PyTorch), not Flax: untruncated Kaiming-normal weights,
PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases, and a configurable BatchNorm init
(see /work/shared/papers/lth_common.md §2 and §6).
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models import conv as conv_lib

KERNEL_INITS = ("kaiming_normal", "kaiming_normal_fan_out", "kaiming_uniform", "torch_default",
                "orthogonal", "binary", "lecun_normal")
BIAS_INITS = ("torch", "zeros")
BN_INITS = ("uniform", "fixed", "oneone", "positivenegative")
DTYPES = ("float32", "bfloat16")


def _choice(kind, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(choices)}")
    return value


# jax's "normal" distribution is untruncated, unlike he_normal (truncated at 2σ).
_kaiming_normal = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _binary(key, shape, dtype=jnp.float32):
    """Sign of a Kaiming-normal sample times that sample's (unbiased, as torch) std."""
    w = _kaiming_normal(key, shape, dtype)
    return jnp.sign(w) * jnp.std(w, ddof=1)


def kernel_initializer(name: str):
    """Weight initialiser for convs and linears; Flax kernels put fan_in first as PyTorch does."""
    _choice("kernel_init", name, KERNEL_INITS)
    return {
        "kaiming_normal": _kaiming_normal,
        # torchvision / GST VGG convs: Kaiming normal with mode='fan_out'.
        "kaiming_normal_fan_out": jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
        "kaiming_uniform": jax.nn.initializers.variance_scaling(2.0, "fan_in", "uniform"),
        # PyTorch's default conv/linear init, U(±1/√fan_in): kaiming_uniform with a = √5.
        "torch_default": jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
        "orthogonal": jax.nn.initializers.orthogonal(),
        "lecun_normal": jax.nn.initializers.lecun_normal(),  # Flax's default (truncated)
        "binary": _binary,
    }[name]


def torch_bias_init(fan_in: int):
    """PyTorch's default bias init U(-1/sqrt(fan_in), 1/sqrt(fan_in)); Flax would use zeros."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _uniform(low, high):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, low, high)

    return init


def bn_initializers(name: str):
    """(scale_init, bias_init) for the config's bn_init."""
    _choice("bn_init", name, BN_INITS)
    ones, zeros = jax.nn.initializers.ones, jax.nn.initializers.zeros
    return {
        "uniform": (_uniform(0.0, 1.0), zeros),
        "fixed": (ones, zeros),
        "oneone": (ones, ones),
        "positivenegative": (_uniform(-1.0, 1.0), zeros),
    }[name]


class GroupedBatchNorm(nnx.BatchNorm):
    """BatchNorm whose training statistics are taken over consecutive groups of `group_size`
    examples, as each device's BatchNorm does under data parallelism without synchronisation
    (MoCo's shuffled BN, DESIGN.md rule 5), on any device count. The running averages move
    by the mean over groups of each group's mean and (biased) variance. Evaluation, and a
    batch of one group, are plain BatchNorm."""

    def __init__(self, *args, group_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_size = group_size

    def __call__(self, x, use_running_average=None, *, mask=None):
        if use_running_average is None:
            use_running_average = self.use_running_average
        b = x.shape[0]
        if use_running_average or mask is not None or b == self.group_size:
            return super().__call__(x, use_running_average, mask=mask)
        if b % self.group_size:
            raise ValueError(f"model.bn_group_size={self.group_size} does not divide the batch "
                             f"of {b} examples at this BatchNorm; choose a divisor")
        groups = x.reshape(b // self.group_size, self.group_size, *x.shape[1:])
        x32 = groups.astype(jnp.float32)
        axes = tuple(range(1, x32.ndim - 1))
        mean = jnp.mean(x32, axes, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axes, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
        y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        m = self.momentum
        self.mean[...] = jax.lax.stop_gradient(
            m * self.mean[...] + (1 - m) * jnp.mean(mean, axis=0).reshape(-1))
        self.var[...] = jax.lax.stop_gradient(
            m * self.var[...] + (1 - m) * jnp.mean(var, axis=0).reshape(-1))
        return y.reshape(x.shape).astype(self.dtype or x.dtype)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """Builds convs, BatchNorms and linears with one model's init and numerics settings.

    Passed to constructors only (never stored on a module), so the graph stays free of
    functions.
    """

    kernel_init: str = "kaiming_normal"
    linear_init: str = ""  # '' = kernel_init
    bn_init: str = "uniform"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    bn_group_size: int = 0  # 0: statistics over the whole batch
    dtype: str = "float32"
    conv_weight_grad: str = "auto"
    bias_init: str = "torch"  # torch: U(±1/√fan_in) | zeros (Flax's default)

    def __post_init__(self):
        _choice("bias_init", self.bias_init, BIAS_INITS)
        kernel_initializer(self.kernel_init)
        kernel_initializer(self.linear_init or self.kernel_init)
        bn_initializers(self.bn_init)
        _choice("dtype", self.dtype, DTYPES)
        _choice("conv_weight_grad", self.conv_weight_grad, conv_lib.WEIGHT_GRADS)

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    def _bias(self, fan_in: int):
        return torch_bias_init(fan_in) if self.bias_init == "torch" else \
            jax.nn.initializers.zeros

    def conv(self, cin, cout, kernel, stride=1, *, padding, use_bias=False, groups=1, rngs):
        """A kernel×kernel conv; `groups` splits the channels into that many groups (groups =
        cin = cout: a depthwise conv, kernel [k, k, 1, cout])."""
        bias_init = self._bias(cin // groups * kernel * kernel)
        return nnx.Conv(
            cin, cout, (kernel, kernel), (stride, stride), padding=padding,
            use_bias=use_bias, feature_group_count=groups, dtype=self.compute_dtype,
            kernel_init=kernel_initializer(self.kernel_init), bias_init=bias_init,
            conv_general_dilated=conv_lib.conv_function(self.conv_weight_grad), rngs=rngs,
        )

    def bn(self, features, *, rngs):
        scale_init, bias_init = bn_initializers(self.bn_init)
        # Flax momentum 0.9 == PyTorch momentum 0.1. Flax updates the running variance with
        # the biased batch variance (PyTorch: unbiased); negligible at training batch sizes.
        common = dict(momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                      dtype=self.compute_dtype, use_fast_variance=False,
                      scale_init=scale_init, bias_init=bias_init, rngs=rngs)
        if self.bn_group_size:
            return GroupedBatchNorm(features, group_size=self.bn_group_size, **common)
        return nnx.BatchNorm(features, **common)

    def head(self, cin, num_classes, *, rngs):
        """The classifier, or None for num_classes=0: an encoder whose output is its pooled
        representation (self-supervised backbones)."""
        return self.linear(cin, num_classes, rngs=rngs) if num_classes else None

    def linear(self, cin, cout, *, rngs):
        return nnx.Linear(
            cin, cout, dtype=self.compute_dtype,
            kernel_init=kernel_initializer(self.linear_init or self.kernel_init),
            bias_init=self._bias(cin),
            rngs=rngs,
        )


DEFAULT_LAYERS = LayerSpec()  # configs/base.py defaults
PAD1 = ((1, 1), (1, 1))  # 3x3 "same" padding that gives ceil(H/stride) like PyTorch pad=1.


def apply_head(head, x):
    """Float32 logits, or the representation itself where there is no head."""
    return x if head is None else head(x).astype(jnp.float32)


def global_avg_pool(x):
    """Mean over H, W of an NHWC map (jnp.mean accumulates bfloat16 in float32)."""
    return jnp.mean(x, axis=(1, 2))
