"""A plain MLP on flattened images (class_selectivity.md §6: 784→256→256→10, ReLU).

Parameter paths: 'dense{i}' for the hidden layers and 'head'. features=True also returns each
hidden layer's post-ReLU output ('dense0', ...), the units whose selectivity is measured.
"""
import collections

import jax
from flax import nnx

from lib.models.layers import DEFAULT_LAYERS, LayerSpec, apply_head


class MLP(nnx.Module):
    def __init__(self, widths=(256, 256), *, num_classes: int, in_features: int,
                 layers: LayerSpec = DEFAULT_LAYERS, rngs: nnx.Rngs):
        widths = tuple(widths)
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"mlp widths must be positive, got {widths}")
        self.num_hidden = len(widths)
        cin = in_features
        for i, w in enumerate(widths):
            setattr(self, f"dense{i}", layers.linear(cin, w, rngs=rngs))
            cin = w
        self.head = layers.head(cin, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool, features: bool = False):
        del train  # no dropout or BatchNorm
        feats = collections.OrderedDict()
        x = x.reshape(x.shape[0], -1)
        for i in range(self.num_hidden):
            x = jax.nn.relu(getattr(self, f"dense{i}")(x))
            feats[f"dense{i}"] = x
        logits = apply_head(self.head, x)
        return (logits, feats) if features else logits
