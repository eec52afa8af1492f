"""Linear evaluation of a pretrained self-supervised encoder, as a classification task.

    task = "lib.ssl.linear_eval:LinearEval"

The model is the method's encoder (config.model with num_classes=0) and one linear layer on
its representation. The encoder runs in inference mode (BatchNorm on its running statistics,
as the methods' linear protocols put the backbone in eval mode) under stop_gradient, so only
the head learns even where the optimizer would train more; `optim.freeze='^encoder/'` keeps
it out of the optimizer too. Inputs are normalised inside the network as in pretraining
(ssl.input_normalization). A stage starts it from a finished pretraining run with
init.mode='params' and init.prefix_map='<method's encoder prefix>=encoder/'
(lib.procedure.stage_from); parameters and BatchNorm statistics both come across.
"""

from __future__ import annotations

import jax
from flax import nnx

from lib.data import device_augment
from lib.ssl import simclr
from lib.task import Classification


class FrozenEncoderClassifier(nnx.Module):
    """[input normalisation →] encoder (inference mode, no gradient) → linear head."""

    def __init__(self, encoder: nnx.Module, dim: int, num_classes: int,
                 input_stats: tuple | None, *, rngs: nnx.Rngs):
        self.encoder = encoder
        self.head = nnx.Linear(dim, num_classes, rngs=rngs)
        self.input_stats = input_stats

    def __call__(self, x, *, train: bool = False):
        del train  # the encoder is evaluated, never trained, here
        if self.input_stats is not None:
            x = device_augment.normalize(x, *self.input_stats)
        return self.head(jax.lax.stop_gradient(self.encoder(x, train=False)))


class LinearEval(Classification):
    """Softmax cross-entropy of a linear head on a frozen encoder's representation."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.input_stats = simclr.input_stats(config)

    def build_model(self, config, info, rngs) -> nnx.Module:
        encoder = simclr.build_encoder(config, info, rngs)
        dim = simclr.representation_dim(encoder, info.image_shape)
        return FrozenEncoderClassifier(encoder, dim, info.num_classes, self.input_stats,
                                       rngs=rngs)
