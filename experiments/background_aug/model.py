"""The small-scale encoder of background_aug.md §6: conv3×3(16, stride 2) → conv3×3(32,
stride 2) → conv3×3(64, stride 1), ReLU after each, global average pool: a 64-d
representation. model.name = "experiments.background_aug.model:encoder"; model.widths sets
the three widths. With num_classes > 0 a linear head follows (a supervised reference)."""

import jax
from flax import nnx

from lib.models import layers as layers_lib
from lib.models.layers import PAD1, LayerSpec, apply_head, global_avg_pool

STRIDES = (2, 2, 1)


class SmallEncoder(nnx.Module):
    def __init__(self, widths, *, num_classes: int, in_channels: int, layers: LayerSpec,
                 rngs: nnx.Rngs):
        widths = tuple(widths)
        if len(widths) != len(STRIDES) or min(widths) < 1:
            raise ValueError(f"the small encoder has {len(STRIDES)} convs: model.widths needs "
                             f"{len(STRIDES)} positive widths, got {widths}")
        self.convs = nnx.List()
        cin = in_channels
        for w, s in zip(widths, STRIDES):
            self.convs.append(layers.conv(cin, w, 3, s, padding=PAD1, use_bias=True, rngs=rngs))
            cin = w
        self.head = layers.head(cin, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool):
        del train  # no BatchNorm or dropout
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return apply_head(self.head, global_avg_pool(x))


def encoder(model_cfg, *, num_classes, in_channels, image_size, rngs):
    del image_size
    layers = layers_lib.LayerSpec(kernel_init=model_cfg.kernel_init, dtype=model_cfg.dtype,
                                  conv_weight_grad=model_cfg.conv_weight_grad)
    return SmallEncoder(model_cfg.widths, num_classes=num_classes, in_channels=in_channels,
                        layers=layers, rngs=rngs)
