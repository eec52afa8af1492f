"""CoordConv inputs (Liu et al. 2018): two extra channels holding each pixel's x and y, so a
conv net can read absolute position (plan2vec's ResNet18CoordL2 encoder)."""

import jax.numpy as jnp
from flax import nnx


def add_coordinates(x):
    """NHWC `x` with channels x = (j + 1)/W and y = (i + 1)/H appended: a grid in (0, 1]."""
    n, h, w, _ = x.shape
    xs = jnp.broadcast_to(((jnp.arange(w) + 1) / w)[None, None, :, None], (n, h, w, 1))
    ys = jnp.broadcast_to(((jnp.arange(h) + 1) / h)[None, :, None, None], (n, h, w, 1))
    return jnp.concatenate([x, xs.astype(x.dtype), ys.astype(x.dtype)], axis=-1)


class WithCoordinates(nnx.Module):
    """`inner` (built for C + 2 input channels) applied to the input with coordinates."""

    def __init__(self, inner: nnx.Module):
        self.inner = inner

    def __call__(self, x, *, train: bool, features: bool = False):
        return self.inner(add_coordinates(x), train=train, features=features)
