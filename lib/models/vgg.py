"""open_lth CIFAR VGG (cifar_vgg_D) as a Flax NNX module.

Parameter paths: 'conv{i}/conv' (3x3, with bias), 'conv{i}/bn' for the i-th conv module
(counting from 0, max-pools not counted) and 'head'. With features=True the model also
returns an OrderedDict of each conv module's post-ReLU output ('conv0', 'conv1', ...) and
'pool' (the averaged features fed to the head).
"""
import collections

import jax
import jax.numpy as jnp
from flax import nnx

from lib.models.layers import DEFAULT_LAYERS, PAD1, LayerSpec, apply_head, global_avg_pool

_M = "M"  # 2x2 max-pool, stride 2
PLANS = {
    11: (64, _M, 128, _M, 256, 256, _M, 512, 512, _M, 512, 512),
    13: (64, 64, _M, 128, 128, _M, 256, 256, _M, 512, 512, _M, 512, 512),
    16: (64, 64, _M, 128, 128, _M, 256, 256, 256, _M, 512, 512, 512, _M, 512, 512, 512),
    19: (64, 64, _M, 128, 128, _M, 256, 256, 256, 256, _M, 512, 512, 512, 512, _M,
         512, 512, 512, 512),
}


class ConvModule(nnx.Module):
    """3x3 conv (pad 1, with bias by default) - BN - ReLU."""

    def __init__(self, cin, cout, layers: LayerSpec, *, use_bias: bool = True, rngs: nnx.Rngs):
        self.conv = layers.conv(cin, cout, 3, padding=PAD1, use_bias=use_bias, rngs=rngs)
        self.bn = layers.bn(cout, rngs=rngs)

    def __call__(self, x, *, train: bool):
        return jax.nn.relu(self.bn(self.conv(x), use_running_average=not train))


class CifarVGG(nnx.Module):
    """VGG-D without a final max-pool; the remaining map (2x2 at 32x32) is averaged, or with
    final_pool="max" max-pooled (at 32x32 the GST vgg11_bn's final 2x2 max-pool and flatten).

    Inputs must be at least 16x16 (four max-pools).
    """

    def __init__(self, depth: int = 16, *, num_classes: int, in_channels: int = 3,
                 layers: LayerSpec = DEFAULT_LAYERS, final_pool: str = "avg", rngs: nnx.Rngs):
        if final_pool not in ("avg", "max"):
            raise ValueError(f"cifar_vgg final_pool must be avg or max, got {final_pool!r}")
        self.final_pool = final_pool
        if depth not in PLANS:
            raise ValueError(f"cifar_vgg depth must be one of "
                             f"{', '.join(map(str, PLANS))}, got {depth!r}")
        self.plan = PLANS[depth]
        cin, i = in_channels, 0
        for item in self.plan:
            if item != _M:
                setattr(self, f"conv{i}", ConvModule(cin, item, layers, rngs=rngs))
                cin, i = item, i + 1
        self.head = layers.head(cin, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool, features: bool = False):
        feats = collections.OrderedDict()
        i = 0
        for item in self.plan:
            if item == _M:
                x = nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
            else:
                x = getattr(self, f"conv{i}")(x, train=train)
                feats[f"conv{i}"] = x
                i += 1
        x = global_avg_pool(x) if self.final_pool == "avg" else jnp.max(x, axis=(1, 2))
        feats["pool"] = x
        logits = apply_head(self.head, x)
        return (logits, feats) if features else logits
