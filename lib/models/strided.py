"""A plain strided conv net for CPU-scale experiments: 3×3 convs with bias and given strides,
ReLU after each, global average pooling, and a linear head when num_classes > 0 (none: the
pooled output is a representation). background_aug.md §6 and invariance.md §6 both use
widths (16, 32, 64) and strides (2, 2, 1).

model.conv_padding picks the padding (PADDINGS). Parameter paths 'convs/{i}', 'head';
features=True also returns each conv's post-ReLU output ('conv0', …) and 'pool' (the GAP
embedding).
"""

import collections

import jax
from flax import nnx

from lib.models.layers import PAD1, LayerSpec, apply_head, global_avg_pool

# symmetric: one pixel each side (PyTorch's padding=1); same: XLA / TensorFlow SAME, which for
# a stride-2 conv on an even size pads only the end
PADDINGS = {"symmetric": PAD1, "same": "SAME"}


class StridedConvNet(nnx.Module):
    def __init__(self, widths, strides, *, num_classes: int, in_channels: int,
                 layers: LayerSpec, padding: str = "symmetric", rngs: nnx.Rngs):
        widths, strides = tuple(widths), tuple(strides)
        if len(widths) != len(strides) or not widths or min(widths) < 1 or min(strides) < 1:
            raise ValueError(f"strided_convnet: model.widths={widths} and model.strides="
                             f"{strides} need one positive width and stride per conv")
        if padding not in PADDINGS:
            raise ValueError(f"unknown conv_padding {padding!r}; valid choices: "
                             f"{', '.join(PADDINGS)}")
        self.convs = nnx.List()
        cin = in_channels
        for w, s in zip(widths, strides):
            self.convs.append(layers.conv(cin, w, 3, s, padding=PADDINGS[padding],
                                          use_bias=True, rngs=rngs))
            cin = w
        self.head = layers.head(cin, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool, features: bool = False):
        del train  # no BatchNorm or dropout
        feats = collections.OrderedDict()
        for i, conv in enumerate(self.convs):
            x = jax.nn.relu(conv(x))
            feats[f"conv{i}"] = x
        x = global_avg_pool(x)
        feats["pool"] = x
        logits = apply_head(self.head, x)
        return (logits, feats) if features else logits
