"""Reservoir layer types (spec §2): layers left at their random initialisation.

    T  a whole pre-LN transformer layer (self-attention and FFN), frozen;
    F  h + Dropout(FFN(LN(h))), no attention, frozen;
    G  h + Dropout(BiGRU(LN(h))), a bidirectional GRU with width/2 units per direction, frozen
       (the wrapping is reconstructed);
    C  h + Dropout(LightConv(LN(h))), a light dynamic convolution (Wu et al. 2019: input
       projection with GLU, per-position softmax kernels shared within each head, output
       projection), frozen.

Every 2-D projection is initialised orthogonally as its (d_in × d_out) matrix (attention
projections before the reshape into heads); biases are PyTorch's U(±1/√fan_in), LayerNorm
γ = 1, β = 0 (PyTorch defaults, as the paper). All of it, LayerNorm included, stays at its
initial value: the layers subclass `lib.models.transformer.Frozen`, so the trainer gives them
no gradient and no optimizer state. The model's dropout applies inside reservoirs too.

Backskipping (config reservoir.backskip) skips the backward pass through a reservoir block
h_out = h_in + F(h_in): 'identity' returns η·dL/dh_out as dL/dh_in (the Jacobian of F
dropped, through a custom_vjp; F's backward is never computed); 'stochastic' does so with
probability p per step and layer, else backpropagates exactly. The forward pass is unchanged.

Type 'D' is the LayerDrop baseline: a regular layer skipped whole in training with
probability reservoir.layerdrop.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from lib.config import ConfigError
from lib.models import transformer
from lib.models.layers import torch_bias_init
from lib.models.transformer import Dims, Init, dropout, layer_norm, layer_rng, linear

RESERVOIR_INIT = Init(kernel=jax.nn.initializers.orthogonal(), bias=torch_bias_init)
BACKSKIPS = ("none", "identity", "stochastic")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def skip_residual(x, fx, eta: float):
    """x + fx, whose gradient with respect to x is η × the incoming one and to fx zero."""
    return x + fx


def _skip_fwd(x, fx, eta):
    return x + fx, None


def _skip_bwd(eta, _, g):
    return eta * g, jnp.zeros_like(g)


skip_residual.defvjp(_skip_fwd, _skip_bwd)


@dataclasses.dataclass(frozen=True)
class Backskip:
    """How a reservoir block's backward pass is taken (config reservoir.*)."""

    mode: str = "none"
    eta: float = 1.0
    probability: float = 1.0

    def __post_init__(self):
        if self.mode not in BACKSKIPS:
            raise ConfigError(f"reservoir.backskip={self.mode!r}; valid choices: "
                              f"{', '.join(BACKSKIPS)}")
        if not 0 <= self.probability <= 1:
            raise ConfigError(f"reservoir.skip_probability={self.probability} must lie in "
                              "[0, 1]")

    def __call__(self, block, x, rng):
        """block(x) = x + F(x), with this backward rule."""
        if self.mode == "none":
            return block(x)

        def skipped(x):
            return skip_residual(x, jax.lax.stop_gradient(block(x) - x), self.eta)

        if self.mode == "identity" or rng is None:  # evaluation: the same forward either way
            return skipped(x) if self.mode == "identity" else block(x)
        coin = jax.random.bernoulli(layer_rng(rng, 99), self.probability)
        return jax.lax.cond(coin, skipped, block, x)


class TransformerReservoir(transformer.EncoderLayer, transformer.Frozen):
    """Type 'T': a regular encoder layer at the reservoir initialisation, frozen."""

    def __init__(self, dims: Dims, backskip: Backskip = Backskip(), *, rngs: nnx.Rngs):
        super().__init__(dims, RESERVOIR_INIT, rngs=rngs)
        self.backskip = backskip

    def __call__(self, x, mask, *, rng=None):
        sup = super().__call__
        return self.backskip(lambda h: sup(h, mask, rng=rng), x, rng)


class FFNReservoir(nnx.Module, transformer.Frozen):
    """Type 'F': h + Dropout(FFN(LN(h))), frozen."""

    def __init__(self, dims: Dims, backskip: Backskip = Backskip(), *, rngs: nnx.Rngs):
        self.rate, self.backskip = dims.dropout, backskip
        self.norm = layer_norm(dims, rngs)
        self.ffn = transformer.FeedForward(dims, RESERVOIR_INIT, rngs=rngs)

    def __call__(self, x, mask, *, rng=None):
        del mask

        def block(h):
            return h + dropout(self.ffn(self.norm(h), rng=layer_rng(rng, 0)), self.rate,
                               layer_rng(rng, 1))

        return self.backskip(block, x, rng)


class GRUReservoir(nnx.Module, transformer.Frozen):
    """Type 'G': h + Dropout(BiGRU(LN(h))) with width/2 units per direction, frozen.

    Each direction is a GRU (PyTorch's gate equations) over the real tokens only: the backward
    one runs over each sequence reversed within its length, so padding never leaks in."""

    def __init__(self, dims: Dims, backskip: Backskip = Backskip(), *, rngs: nnx.Rngs):
        if dims.width % 2:
            raise ConfigError(f"a BiGRU reservoir needs an even width, got {dims.width}")
        half = dims.width // 2
        self.rate, self.backskip, self.half = dims.dropout, backskip, half
        self.norm = layer_norm(dims, rngs)
        self.forward_input = linear(dims.width, 3 * half, dims, RESERVOIR_INIT, rngs)
        self.forward_hidden = linear(half, 3 * half, dims, RESERVOIR_INIT, rngs)
        self.backward_input = linear(dims.width, 3 * half, dims, RESERVOIR_INIT, rngs)
        self.backward_hidden = linear(half, 3 * half, dims, RESERVOIR_INIT, rngs)

    def _direction(self, x, project_input, project_hidden):
        gates_x = project_input(x)  # (B, T, 3h), all positions at once

        def step(h, gx):
            gh = project_hidden(h)
            r = jax.nn.sigmoid(gx[:, :self.half] + gh[:, :self.half])
            z = jax.nn.sigmoid(gx[:, self.half:2 * self.half] + gh[:, self.half:2 * self.half])
            n = jnp.tanh(gx[:, 2 * self.half:] + r * gh[:, 2 * self.half:])
            h = (1 - z) * n + z * h
            return h, h

        h0 = jnp.zeros((x.shape[0], self.half), gates_x.dtype)
        _, hs = jax.lax.scan(step, h0, jnp.swapaxes(gates_x, 0, 1))
        return jnp.swapaxes(hs, 0, 1)

    def __call__(self, x, mask, *, rng=None):
        real = mask[:, 0, 0, :] if mask.shape[2] == 1 else None
        if real is None:
            raise ConfigError("a BiGRU reservoir reads both directions: it cannot sit in a "
                              "causal (language-model) stack")
        lengths = jnp.sum(real, axis=1)
        t = jnp.arange(x.shape[1])
        reverse = jnp.where(t[None] < lengths[:, None], lengths[:, None] - 1 - t[None], t[None])

        def flip(y):
            return jnp.take_along_axis(y, reverse[..., None], axis=1)

        def block(h):
            n = self.norm(h)
            fwd = self._direction(n, self.forward_input, self.forward_hidden)
            bwd = flip(self._direction(flip(n), self.backward_input, self.backward_hidden))
            out = jnp.concatenate([fwd, bwd], axis=-1) * real[..., None]
            return h + dropout(out, self.rate, layer_rng(rng, 0))

        return self.backskip(block, x, rng)


class LightConvReservoir(nnx.Module, transformer.Frozen):
    """Type 'C': h + Dropout(LightConv(LN(h))), frozen. LightConv: Linear(d → 2d) and GLU,
    then a dynamic convolution of width `kernel` (centred): at each position, `heads`
    softmax-normalised kernels predicted by Linear(d → heads·kernel), each shared by the
    d/heads channels of its head; then Linear(d → d). Padding positions are zeroed first."""

    def __init__(self, dims: Dims, backskip: Backskip = Backskip(), kernel: int = 3, *,
                 rngs: nnx.Rngs):
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"reservoir.conv_kernel={kernel}: use an odd width >= 1")
        self.rate, self.backskip = dims.dropout, backskip
        self.heads, self.kernel = dims.heads, kernel
        self.norm = layer_norm(dims, rngs)
        self.input = linear(dims.width, 2 * dims.width, dims, RESERVOIR_INIT, rngs)
        self.weights = linear(dims.width, dims.heads * kernel, dims, RESERVOIR_INIT, rngs)
        self.output = linear(dims.width, dims.width, dims, RESERVOIR_INIT, rngs)

    def __call__(self, x, mask, *, rng=None):
        if mask.shape[2] != 1:
            raise ConfigError("a light-convolution reservoir is centred (it reads the next "
                              "tokens): it cannot sit in a causal (language-model) stack")
        real = mask[:, 0, 0, :, None]

        def block(h):
            n = self.norm(h)
            a, gate = jnp.split(self.input(n), 2, axis=-1)
            u = a * jax.nn.sigmoid(gate) * real
            b, t, d = u.shape
            w = jax.nn.softmax(self.weights(n).reshape(b, t, self.heads, self.kernel), -1)
            half = self.kernel // 2
            padded = jnp.pad(u, ((0, 0), (half, half), (0, 0)))
            shifted = jnp.stack([padded[:, k:k + t] for k in range(self.kernel)], axis=-1)
            shifted = shifted.reshape(b, t, self.heads, d // self.heads, self.kernel)
            conv = jnp.einsum("bthck,bthk->bthc", shifted, w).reshape(b, t, d)
            return h + dropout(self.output(conv), self.rate, layer_rng(rng, 0))

        return self.backskip(block, x, rng)


class LayerDropLayer(transformer.EncoderLayer):
    """Type 'D': a regular (trainable) layer under LayerDrop (Fan et al. 2019), the paper's
    baseline: in training the whole layer is skipped (identity) with probability `rate`, per
    step and layer, through lax.cond so a skipped layer costs neither forward nor backward
    time; in evaluation every layer runs."""

    def __init__(self, dims: Dims, rate: float = 0.2, *, rngs: nnx.Rngs):
        super().__init__(dims, rngs=rngs)
        self.drop_rate = rate

    def __call__(self, x, mask, *, rng=None):
        sup = super().__call__
        if rng is None or self.drop_rate == 0:
            return sup(x, mask, rng=rng)
        coin = jax.random.bernoulli(layer_rng(rng, 98), self.drop_rate)
        return jax.lax.cond(coin, lambda h: h, lambda h: sup(h, mask, rng=rng), x)


def layer_types(config) -> dict:
    """model.layer_types = "experiments.reservoir.layers:layer_types": the reservoir types
    with the run's backskip rule."""
    section = config.reservoir
    backskip = Backskip(section.backskip, section.eta, section.skip_probability)
    return {
        "T": functools.partial(TransformerReservoir, backskip=backskip),
        "F": functools.partial(FFNReservoir, backskip=backskip),
        "G": functools.partial(GRUReservoir, backskip=backskip),
        "C": functools.partial(LightConvReservoir, backskip=backskip,
                               kernel=section.conv_kernel),
        "D": functools.partial(LayerDropLayer, rate=section.layerdrop),
    }
