"""A small plain conv net for CPU-scale experiments (early_phase.md §6's 4-conv net).

3x3 conv (no bias) - BN - ReLU modules of the given widths, a 2x2 max-pool after the modules
listed in `pool_after`, global average pooling and a linear head. Parameter paths:
'conv{i}/conv', 'conv{i}/bn', 'head'; features=True also returns each module's post-ReLU
output ('conv0', ...) and 'pool'.
"""
import collections

from flax import nnx

from lib.models.layers import DEFAULT_LAYERS, LayerSpec, apply_head, global_avg_pool
from lib.models.vgg import ConvModule


class ConvNet(nnx.Module):
    def __init__(self, widths=(16, 32, 64, 64), pool_after=(1, 3), *, num_classes: int,
                 in_channels: int = 3, layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        widths, pool_after = tuple(widths), tuple(pool_after)
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"convnet widths must be positive, got {widths}")
        if any(not 0 <= i < len(widths) for i in pool_after):
            raise ValueError(f"convnet pool_after={pool_after} names modules outside "
                             f"0..{len(widths) - 1}")
        self.num_modules, self.pool_after = len(widths), pool_after
        cin = in_channels
        for i, w in enumerate(widths):
            setattr(self, f"conv{i}", ConvModule(cin, w, layers, use_bias=False, rngs=rngs))
            cin = w
        self.head = layers.head(cin, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool, features: bool = False):
        feats = collections.OrderedDict()
        for i in range(self.num_modules):
            x = getattr(self, f"conv{i}")(x, train=train)
            feats[f"conv{i}"] = x
            if i in self.pool_after:
                x = nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        x = global_avg_pool(x)
        feats["pool"] = x
        logits = apply_head(self.head, x)
        return (logits, feats) if features else logits
