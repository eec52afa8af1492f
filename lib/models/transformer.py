"""Pre-LN Transformers as Flax NNX modules: an encoder-decoder (translation), an encoder-only
masked LM with a classification head (RoBERTa-style pre-training and fine-tuning), and a causal
LM (character-level language modelling).

Every layer is pre-LN: x + Dropout(Attention(LN(x))), then x + Dropout(FFN(LN(x))); the stacks
end in a LayerNorm. Each encoder-side stack is built from a layer type string, one character per
layer: 'L' is a regular trainable layer; a paper adds its own types (reservoirs) by passing
`layer_types` = {char: factory}, each factory called as factory(dims, rngs=rngs) and returning a
module called as layer(x, mask, rng=rng). A layer type that subclasses `Frozen` keeps every
parameter at its initial value: the trainer leaves such parameters out of the optimizer.

Initialisation is fairseq's: Xavier-uniform kernels, zero biases, LayerNorm γ = 1, β = 0,
token embeddings N(0, d^-1/2) with the PAD row zero, scaled by √d in the forward pass; learned
positions N(0, d^-1/2), or fixed sinusoids. With tied embeddings the output layer is the token
embedding's transpose.

Randomness is explicit: a call takes `rng` (a key; None = deterministic, no dropout), and each
layer gets its own key by folding in its index, so a layer can be run under lax.cond or
custom_vjp without hidden RNG state. Token id 0 is PAD; attention never looks at PAD keys.

Parameter paths: 'embed/{tokens,positions}', 'encoder/layer{i}/{norm1,attention/{query,key,
value,out},norm2,ffn/{fc1,fc2}}', 'encoder/norm', 'decoder/layer{i}/{norm1,self_attention,
norm2,cross_attention,norm3,ffn}', 'decoder/norm', 'output' (untied only), masked LM
'lm_head/{dense,norm}', 'lm_bias', 'classifier/{dense,out}'.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models.layers import DTYPES
from lib.text import PAD  # masked as attention keys; its embedding row is zero

POSITIONS = ("learned", "sinusoidal")
ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu}

_xavier = jax.nn.initializers.xavier_uniform()
_zeros = jax.nn.initializers.zeros


@dataclasses.dataclass(frozen=True)
class Dims:
    """Sizes and regularisation shared by every layer of a model."""

    width: int = 512
    heads: int = 8
    ffn: int = 2048
    dropout: float = 0.1  # after attention, after the FFN, on the embeddings
    attention_dropout: float = 0.0  # on the attention weights
    activation_dropout: float = 0.0  # inside the FFN, after the activation
    activation: str = "relu"
    dtype: str = "float32"  # compute dtype; parameters stay float32, logits float32

    def __post_init__(self):
        for name in ("width", "heads", "ffn"):
            if getattr(self, name) < 1:
                raise ValueError(f"transformer {name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"transformer width {self.width} is not divisible by "
                             f"{self.heads} heads")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"transformer {name} must be in [0, 1), got "
                                 f"{getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown transformer activation {self.activation!r}; valid "
                             f"choices: {', '.join(ACTIVATIONS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; valid choices: {', '.join(DTYPES)}")

    @property
    def compute(self):
        return jnp.dtype(self.dtype)


@dataclasses.dataclass(frozen=True)
class Init:
    """Initialisers of a layer's kernels and biases (a reservoir uses orthogonal ones)."""

    kernel: Callable = _xavier
    bias: Callable | None = None  # None: zeros; else called with fan_in -> initializer

    def bias_for(self, fan_in: int):
        return _zeros if self.bias is None else self.bias(fan_in)


def dropout(x, rate: float, rng):
    """Inverted dropout; identity when rng is None (evaluation) or rate is 0."""
    if rng is None or rate == 0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def layer_rng(rng, index: int):
    return None if rng is None else jax.random.fold_in(rng, index)


def linear(d_in: int, d_out: int, dims: Dims, init: Init, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(d_in, d_out, dtype=dims.compute, kernel_init=init.kernel,
                      bias_init=init.bias_for(d_in), rngs=rngs)


def layer_norm(dims: Dims, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(dims.width, epsilon=1e-5, dtype=dims.compute, rngs=rngs)


class Attention(nnx.Module):
    """Multi-head attention with 2-D (width × width) query/key/value/out projections, reshaped
    into heads after the matmul (so an orthogonal init is orthogonal as a d × d matrix).
    `mask` is boolean, broadcastable to (B, heads, Tq, Tk), True where a query may attend.

    Both matmuls run in the compute dtype (bfloat16 accumulates in float32 on GPU and TPU), the
    scaling, masking and softmax in float32: so under bfloat16 the backward pass's matmuls are
    bfloat16 too (jax.nn.dot_product_attention's float32 logits make them float32 × bfloat16)."""

    def __init__(self, dims: Dims, init: Init = Init(), *, rngs: nnx.Rngs):
        self.heads, self.rate = dims.heads, dims.attention_dropout
        self.query, self.key, self.value, self.out = (
            linear(dims.width, dims.width, dims, init, rngs) for _ in range(4))

    def __call__(self, x, context=None, mask=None, *, rng=None):
        context = x if context is None else context
        b, tq, d = x.shape
        q, k, v = (y.reshape(b, y.shape[1], self.heads, d // self.heads)
                   for y in (self.query(x), self.key(context), self.value(context)))
        logits = (jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)
                  / math.sqrt(d // self.heads))
        if mask is not None:
            logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1)
        if rng is not None and self.rate > 0:
            weights = dropout(weights, self.rate, rng)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v)
        return self.out(out.reshape(b, tq, d))


class FeedForward(nnx.Module):
    """Linear(width → ffn), activation, dropout, Linear back."""

    def __init__(self, dims: Dims, init: Init = Init(), *, rngs: nnx.Rngs):
        self.activation, self.rate = ACTIVATIONS[dims.activation], dims.activation_dropout
        self.fc1 = linear(dims.width, dims.ffn, dims, init, rngs)
        self.fc2 = linear(dims.ffn, dims.width, dims, init, rngs)

    def __call__(self, x, *, rng=None):
        return self.fc2(dropout(self.activation(self.fc1(x)), self.rate, rng))


class EncoderLayer(nnx.Module):
    """Type 'L': x + Drop(SelfAttention(LN(x))), then x + Drop(FFN(LN(x)))."""

    def __init__(self, dims: Dims, init: Init = Init(), *, rngs: nnx.Rngs):
        self.rate = dims.dropout
        self.norm1 = layer_norm(dims, rngs)
        self.attention = Attention(dims, init, rngs=rngs)
        self.norm2 = layer_norm(dims, rngs)
        self.ffn = FeedForward(dims, init, rngs=rngs)

    def attend(self, x, mask, rng=None):
        """The attention branch (before its residual add)."""
        out = self.attention(self.norm1(x), mask=mask, rng=layer_rng(rng, 0))
        return dropout(out, self.rate, layer_rng(rng, 1))

    def feed_forward(self, x, rng=None):
        """The FFN branch (before its residual add)."""
        return dropout(self.ffn(self.norm2(x), rng=layer_rng(rng, 2)), self.rate,
                       layer_rng(rng, 3))

    def __call__(self, x, mask, *, rng=None):
        x = x + self.attend(x, mask, rng)
        return x + self.feed_forward(x, rng)


class Frozen:
    """Marker base of layer types whose parameters never train (reservoirs): the trainer
    leaves every parameter of such a module out of the optimizer (lib.models.frozen_params)."""


LAYER_TYPES: Mapping[str, Callable] = {"L": EncoderLayer}


def check_layer_types(types: str, factories: Mapping[str, Callable]) -> None:
    if not types:
        raise ValueError("a layer type string needs at least one layer, e.g. 'LLLL'")
    unknown = sorted(set(types) - set(factories))
    if unknown:
        raise ValueError(f"unknown layer type {unknown[0]!r} in {types!r}; valid types: "
                         f"{', '.join(factories)}")


class Stack(nnx.Module):
    """Layers by type string, then a final LayerNorm."""

    def __init__(self, types: str, dims: Dims, factories: Mapping[str, Callable] = LAYER_TYPES,
                 *, rngs: nnx.Rngs):
        check_layer_types(types, factories)
        self.types = types
        for i, kind in enumerate(types):
            setattr(self, f"layer{i}", factories[kind](dims, rngs=rngs))
        self.norm = layer_norm(dims, rngs)

    def layers(self) -> list[tuple[str, nnx.Module]]:
        return [(f"layer{i}", getattr(self, f"layer{i}")) for i in range(len(self.types))]

    def __call__(self, x, mask, *, rng=None):
        for i, (_, layer) in enumerate(self.layers()):
            x = layer(x, mask, rng=layer_rng(rng, i))
        return self.norm(x)


class DecoderLayer(nnx.Module):
    """Pre-LN causal self-attention, cross-attention to the encoder, FFN; each with dropout
    and a residual add."""

    def __init__(self, dims: Dims, *, rngs: nnx.Rngs):
        self.rate = dims.dropout
        self.norm1 = layer_norm(dims, rngs)
        self.self_attention = Attention(dims, rngs=rngs)
        self.norm2 = layer_norm(dims, rngs)
        self.cross_attention = Attention(dims, rngs=rngs)
        self.norm3 = layer_norm(dims, rngs)
        self.ffn = FeedForward(dims, rngs=rngs)

    def __call__(self, x, self_mask, memory, memory_mask, *, rng=None):
        r = [layer_rng(rng, i) for i in range(6)]
        x = x + dropout(self.self_attention(self.norm1(x), mask=self_mask, rng=r[0]),
                        self.rate, r[1])
        x = x + dropout(self.cross_attention(self.norm2(x), memory, memory_mask, rng=r[2]),
                        self.rate, r[3])
        return x + dropout(self.ffn(self.norm3(x), rng=r[4]), self.rate, r[5])


class Decoder(nnx.Module):
    def __init__(self, depth: int, dims: Dims, *, rngs: nnx.Rngs):
        self.depth = depth
        for i in range(depth):
            setattr(self, f"layer{i}", DecoderLayer(dims, rngs=rngs))
        self.norm = layer_norm(dims, rngs)

    def __call__(self, x, self_mask, memory, memory_mask, *, rng=None):
        for i in range(self.depth):
            x = getattr(self, f"layer{i}")(x, self_mask, memory, memory_mask,
                                           rng=layer_rng(rng, i))
        return self.norm(x)


def sinusoids(length: int, width: int) -> jax.Array:
    """Fixed position encodings of "Attention is all you need" (sin and cos halves, fairseq's
    concatenated layout)."""
    half = width // 2
    scale = math.log(10_000) / max(half - 1, 1)
    freqs = jnp.exp(-scale * jnp.arange(half))
    angles = jnp.arange(length)[:, None] * freqs[None]
    out = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=1)
    return jnp.pad(out, ((0, 0), (0, width - 2 * half)))


class Embedding(nnx.Module):
    """Token embedding × √d plus positions, then dropout; `attend` gives tied output logits."""

    def __init__(self, vocab_size: int, max_length: int, dims: Dims, positions: str = "learned",
                 *, rngs: nnx.Rngs):
        if positions not in POSITIONS:
            raise ValueError(f"unknown positions {positions!r}; valid choices: "
                             f"{', '.join(POSITIONS)}")
        if vocab_size < 3 or max_length < 1:
            raise ValueError(f"need vocab_size >= 3 (PAD, BOS, EOS) and max_length >= 1, got "
                             f"{vocab_size} and {max_length}")
        normal = jax.nn.initializers.normal(dims.width ** -0.5)
        table = normal(rngs.params(), (vocab_size, dims.width)).at[PAD].set(0.0)
        self.tokens = nnx.Embed(vocab_size, dims.width, dtype=dims.compute,
                                embedding_init=lambda *_: table, rngs=rngs)
        self.positions = (nnx.Param(normal(rngs.params(), (max_length, dims.width)))
                          if positions == "learned" else None)
        self.max_length, self.width, self.rate = max_length, dims.width, dims.dropout
        self.compute = dims.compute

    def position_table(self) -> jax.Array:
        if self.positions is None:
            return sinusoids(self.max_length, self.width)
        return self.positions[...]

    def __call__(self, tokens, *, rng=None):
        length = tokens.shape[1]
        if length > self.max_length:
            raise ValueError(f"sequences of {length} tokens exceed the model's max_length "
                             f"{self.max_length}")
        x = self.tokens(tokens) * math.sqrt(self.width)
        x = x + self.position_table()[:length].astype(self.compute)
        return dropout(x, self.rate, rng)

    def attend(self, x):
        return self.tokens.attend(x)


def padding_mask(tokens) -> jax.Array:
    """(B, 1, 1, T): True at real (non-PAD) keys."""
    return (tokens != PAD)[:, None, None, :]


def causal_mask(tokens) -> jax.Array:
    """(B, 1, T, T): query t attends to keys ≤ t that are not PAD."""
    t = tokens.shape[1]
    return jnp.tril(jnp.ones((t, t), bool))[None, None] & padding_mask(tokens)


def _output(x, embed: Embedding, output: nnx.Linear | None):
    logits = embed.attend(x) if output is None else output(x)
    return logits.astype(jnp.float32)


class Seq2Seq(nnx.Module):
    """Encoder-decoder for translation: a (reservoir) encoder by type string and a shallow
    regular decoder, one joint vocabulary with source, target and output embeddings tied
    (tie=False: a separate output layer)."""

    def __init__(self, *, vocab_size: int, max_length: int, dims: Dims,
                 encoder_types: str = "LLLLLL", decoder_layers: int = 1,
                 positions: str = "learned", tie: bool = True,
                 layer_types: Mapping[str, Callable] = LAYER_TYPES, rngs: nnx.Rngs):
        if decoder_layers < 1:
            raise ValueError(f"decoder_layers must be >= 1, got {decoder_layers}")
        self.embed = Embedding(vocab_size, max_length, dims, positions, rngs=rngs)
        self.encoder = Stack(encoder_types, dims, layer_types, rngs=rngs)
        self.decoder = Decoder(decoder_layers, dims, rngs=rngs)
        self.output = None if tie else nnx.Linear(dims.width, vocab_size, use_bias=False,
                                                  dtype=dims.compute, kernel_init=_xavier,
                                                  rngs=rngs)

    def encode(self, inputs, *, rng=None):
        """(memory (B, S, d), its mask (B, 1, 1, S))."""
        mask = padding_mask(inputs)
        x = self.embed(inputs, rng=layer_rng(rng, 0))
        return self.encoder(x, mask, rng=layer_rng(rng, 1)), mask

    def decode(self, prefix, memory, memory_mask, *, rng=None):
        """Logits (B, T, V): position t predicts token t+1 of `prefix` (BOS first)."""
        x = self.embed(prefix, rng=layer_rng(rng, 2))
        x = self.decoder(x, causal_mask(prefix), memory, memory_mask, rng=layer_rng(rng, 3))
        return _output(x, self.embed, self.output)

    def __call__(self, inputs, prefix, *, rng=None):
        memory, mask = self.encode(inputs, rng=rng)
        return self.decode(prefix, memory, mask, rng=rng)


class MaskedLM(nnx.Module):
    """Encoder-only masked LM (RoBERTa layout): layers by type string, a final LayerNorm, an LM
    head (dense, GELU, LayerNorm, tied output plus a bias), and where num_classes > 0 a
    sentence classifier on the first token (dropout, dense, tanh, dropout, out)."""

    def __init__(self, *, vocab_size: int, max_length: int, dims: Dims,
                 encoder_types: str = "LLLLLLLLLLLL", num_classes: int = 0,
                 positions: str = "learned", layer_types: Mapping[str, Callable] = LAYER_TYPES,
                 rngs: nnx.Rngs):
        self.embed = Embedding(vocab_size, max_length, dims, positions, rngs=rngs)
        self.encoder = Stack(encoder_types, dims, layer_types, rngs=rngs)
        self.lm_head = MlmHead(dims, rngs=rngs)
        self.lm_bias = nnx.Param(jnp.zeros((vocab_size,)))
        self.classifier = (Classifier(dims, num_classes, rngs=rngs) if num_classes else None)

    def features(self, tokens, *, rng=None):
        x = self.embed(tokens, rng=layer_rng(rng, 0))
        return self.encoder(x, padding_mask(tokens), rng=layer_rng(rng, 1))

    def __call__(self, tokens, *, rng=None):
        """Vocabulary logits (B, T, V) at every position."""
        x = self.lm_head(self.features(tokens, rng=rng))
        return self.embed.attend(x).astype(jnp.float32) + self.lm_bias[...]

    def classify(self, tokens, *, rng=None):
        """Class logits (B, num_classes) from the first token's final state."""
        if self.classifier is None:
            raise ValueError("this MaskedLM was built with num_classes=0: no classifier")
        x = self.features(tokens, rng=rng)[:, 0]
        return self.classifier(x, rng=layer_rng(rng, 2))


class MlmHead(nnx.Module):
    def __init__(self, dims: Dims, *, rngs: nnx.Rngs):
        self.dense = linear(dims.width, dims.width, dims, Init(), rngs)
        self.norm = layer_norm(dims, rngs)

    def __call__(self, x):
        return self.norm(jax.nn.gelu(self.dense(x)))


class Classifier(nnx.Module):
    def __init__(self, dims: Dims, num_classes: int, *, rngs: nnx.Rngs):
        self.rate = dims.dropout
        self.dense = linear(dims.width, dims.width, dims, Init(), rngs)
        self.out = nnx.Linear(dims.width, num_classes, dtype=dims.compute, kernel_init=_xavier,
                              bias_init=_zeros, rngs=rngs)

    def __call__(self, x, *, rng=None):
        x = jnp.tanh(self.dense(dropout(x, self.rate, layer_rng(rng, 0))))
        return self.out(dropout(x, self.rate, layer_rng(rng, 1))).astype(jnp.float32)


class CausalLM(nnx.Module):
    """Decoder-only LM (character-level): layers by type string under a causal mask, a final
    LayerNorm, tied output. Position t predicts token t+1."""

    def __init__(self, *, vocab_size: int, max_length: int, dims: Dims,
                 encoder_types: str = "LLLLLLLLLLLL", positions: str = "learned",
                 layer_types: Mapping[str, Callable] = LAYER_TYPES, rngs: nnx.Rngs):
        self.embed = Embedding(vocab_size, max_length, dims, positions, rngs=rngs)
        self.encoder = Stack(encoder_types, dims, layer_types, rngs=rngs)

    def __call__(self, tokens, *, rng=None):
        x = self.embed(tokens, rng=layer_rng(rng, 0))
        x = self.encoder(x, causal_mask(tokens), rng=layer_rng(rng, 1))
        return _output(x, self.embed, None)
