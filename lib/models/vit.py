"""Vision Transformer (Dosovitskiy et al. 2021) as a Flax NNX module, big_vision layout.

Patchify with a conv of kernel = stride = patch, add a learned position embedding (after
prepending the cls token, as the original ViT and timm do, so ViT-S/16 has the canonical
22,050,664 parameters), pre-LN encoder blocks, a final LayerNorm, pool (cls token or mean over
tokens) and a linear head.

Initialisation follows big_vision rather than the open_lth defaults of the conv nets (so the
model.kernel_init / bn_* config keys do not apply): patch embedding LeCun-normal with zero bias,
attention and MLP kernels Xavier-uniform, attention biases zero, MLP biases N(0, 1e-6),
position embedding N(0, 0.02), cls token zero, LayerNorm γ=1 β=0 (ε=1e-6), head zero.
The MLP's GELU is big_vision's tanh approximation by default; gelu='exact' (erf) is timm's and
PyTorch's, for weights converted from timm (lib.convert). There is no dropout (rate 0
throughout), so `train` changes nothing; it is accepted so every model is called the same way.

Parameter paths: 'embedding' (conv), 'pos_embedding', 'cls' (pool='cls' only),
'block{j}/{norm1,attention/{query,key,value,out},norm2,mlp/{fc1,fc2}}' (blocks count from 0),
'encoder_norm', 'head'. With features=True the model also returns an OrderedDict of the
token sequences after each block, 'block0', 'block1', ... of shape (B, tokens, width), then
'pre_logits' (the pooled, normalised features fed to the head, (B, width)).
"""
import collections
import numbers

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models.layers import DTYPES
from lib.models.transformer import Attention, Dims

VARIANTS = {
    "Ti": {"width": 192, "depth": 12, "num_heads": 3, "mlp_dim": 768},
    "S": {"width": 384, "depth": 12, "num_heads": 6, "mlp_dim": 1536},
    "B": {"width": 768, "depth": 12, "num_heads": 12, "mlp_dim": 3072},
    "L": {"width": 1024, "depth": 24, "num_heads": 16, "mlp_dim": 4096},
}
POOLS = ("cls", "gap")
GELUS = ("tanh", "exact")  # tanh: big_vision's approximation; exact: erf (timm, PyTorch)
LN_EPSILON = 1e-6

_xavier = jax.nn.initializers.xavier_uniform()
_zeros = jax.nn.initializers.zeros


class Mlp(nnx.Module):
    """Linear(width → mlp_dim), GELU (gelu='tanh': big_vision's approximation; 'exact': erf),
    Linear back."""

    def __init__(self, width: int, mlp_dim: int, *, dtype, gelu: str = "tanh",
                 rngs: nnx.Rngs):
        self.approximate = gelu == "tanh"
        bias_init = jax.nn.initializers.normal(1e-6)
        self.fc1 = nnx.Linear(width, mlp_dim, dtype=dtype, kernel_init=_xavier,
                              bias_init=bias_init, rngs=rngs)
        self.fc2 = nnx.Linear(mlp_dim, width, dtype=dtype, kernel_init=_xavier,
                              bias_init=bias_init, rngs=rngs)

    def __call__(self, x):
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=self.approximate))


class EncoderBlock(nnx.Module):
    """Pre-LN block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, num_heads: int, mlp_dim: int, *, dtype, gelu: str = "tanh",
                 rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(width, epsilon=LN_EPSILON, dtype=dtype, rngs=rngs)
        # Xavier kernels and zero biases: big_vision's, and Attention's defaults
        self.attention = Attention(Dims(width, num_heads, mlp_dim, dropout=0.0,
                                        dtype=jnp.dtype(dtype).name), rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, epsilon=LN_EPSILON, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(width, mlp_dim, dtype=dtype, gelu=gelu, rngs=rngs)

    def __call__(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _pair(name, value):
    """(height, width) as Python ints from an int or a pair of ints (numpy ints included)."""
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and v > 0 for v in pair):
        raise ValueError(f"vit {name} must be a positive int or (height, width), got {value!r}")
    return tuple(int(v) for v in pair)


class ViT(nnx.Module):
    """ViT-{width}/{patch_size}: patch embedding, `depth` pre-LN blocks, LayerNorm, pool, head.

    image_size: int or (height, width), each divisible by patch_size (square patches).
    pool: 'cls' (a learned token prepended to the patches; its final state feeds the head) or
    'gap' (no cls token; the mean over the patch tokens feeds the head).
    dtype: compute dtype ('float32' or 'bfloat16'); parameters stay float32, logits are float32.
    gelu: the MLP's activation, 'tanh' (big_vision's approximation) or 'exact' (erf: timm).
    """

    def __init__(self, *, image_size, patch_size: int = 16, width: int = 384, depth: int = 12,
                 num_heads: int = 6, mlp_dim: int = 1536, num_classes: int,
                 in_channels: int = 3, pool: str = "cls", dtype: str = "float32",
                 gelu: str = "tanh", rngs: nnx.Rngs):
        height, wide = _pair("image_size", image_size)
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"vit patch_size must be a positive integer, got {patch_size!r}")
        if height % patch_size or wide % patch_size:
            raise ValueError(f"vit image size {height}x{wide} is not divisible by patch size "
                             f"{patch_size}")
        for name, value in (("width", width), ("depth", depth), ("num_heads", num_heads),
                            ("mlp_dim", mlp_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"vit {name} must be a positive integer, got {value!r}")
        if width % num_heads:
            raise ValueError(f"vit width {width} is not divisible by num_heads {num_heads}")
        if pool not in POOLS:
            raise ValueError(f"unknown vit pool {pool!r}; valid choices: {', '.join(POOLS)}")
        if gelu not in GELUS:
            raise ValueError(f"unknown vit gelu {gelu!r}; valid choices: {', '.join(GELUS)} "
                             "(tanh: big_vision's approximation; exact: erf, as timm)")
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid choices: {', '.join(DTYPES)}")
        compute = jnp.dtype(dtype)

        self.pool = pool
        self.depth = depth
        self.embedding = nnx.Conv(in_channels, width, (patch_size, patch_size),
                                  (patch_size, patch_size), padding="VALID", dtype=compute,
                                  bias_init=_zeros, rngs=rngs)
        tokens = (height // patch_size) * (wide // patch_size) + (pool == "cls")
        self.cls = nnx.Param(jnp.zeros((1, 1, width))) if pool == "cls" else None
        self.pos_embedding = nnx.Param(
            jax.nn.initializers.normal(0.02)(rngs.params(), (1, tokens, width)))
        for j in range(depth):
            setattr(self, f"block{j}",
                    EncoderBlock(width, num_heads, mlp_dim, dtype=compute, gelu=gelu,
                                 rngs=rngs))
        self.encoder_norm = nnx.LayerNorm(width, epsilon=LN_EPSILON, dtype=compute, rngs=rngs)
        self.head = nnx.Linear(width, num_classes, dtype=compute, kernel_init=_zeros,
                               bias_init=_zeros, rngs=rngs)

    def blocks(self):
        return [(f"block{j}", getattr(self, f"block{j}")) for j in range(self.depth)]

    def __call__(self, x, *, train: bool, features: bool = False):
        del train  # no dropout, no batch statistics
        feats = collections.OrderedDict()
        x = self.embedding(x)
        b, h, w, d = x.shape
        x = x.reshape(b, h * w, d)
        if self.cls is not None:
            cls = jnp.broadcast_to(self.cls[...].astype(x.dtype), (b, 1, d))
            x = jnp.concatenate([cls, x], axis=1)
        x = x + self.pos_embedding[...].astype(x.dtype)
        for name, block in self.blocks():
            x = block(x)
            feats[name] = x
        x = self.encoder_norm(x)
        x = x[:, 0] if self.pool == "cls" else jnp.mean(x, axis=1)
        feats["pre_logits"] = x
        logits = self.head(x).astype(jnp.float32)
        return (logits, feats) if features else logits
