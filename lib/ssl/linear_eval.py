"""Evaluation of a pretrained self-supervised encoder by classification: linear evaluation
on the frozen encoder, and fine-tuning of encoder and head (limited labels).

    task = "lib.ssl.linear_eval:LinearEval"     task = "lib.ssl.linear_eval:FineTune"

The model is the method's encoder (config.model with num_classes=0) and one linear layer on
its representation. For LinearEval the encoder runs in inference mode (BatchNorm on its
running statistics, as the methods' linear protocols put the backbone in eval mode) under
stop_gradient, so only the head learns even where the optimizer would train more;
`optim.freeze='^encoder/'` keeps it out of the optimizer too. FineTune trains both, the encoder
in training mode. Inputs are normalised inside the network as in pretraining
(ssl.input_normalization). A stage starts either from a finished pretraining run with
init.mode='params' and init.prefix_map='<method's encoder prefix>=encoder/'
(lib.procedure.stage_from); parameters and BatchNorm statistics both come across.
"""

from __future__ import annotations

import jax
from flax import nnx

from lib.data import device_augment
from lib.ssl import simclr
from lib.task import Classification


class EncoderClassifier(nnx.Module):
    """[input normalisation →] encoder → linear head; a `frozen` encoder runs in inference
    mode with no gradient."""

    def __init__(self, encoder: nnx.Module, dim: int, num_classes: int,
                 input_stats: tuple | None, frozen: bool, *, rngs: nnx.Rngs):
        self.encoder = encoder
        self.head = nnx.Linear(dim, num_classes, rngs=rngs)
        self.input_stats, self.frozen = input_stats, frozen

    def __call__(self, x, *, train: bool = False):
        if self.input_stats is not None:
            x = device_augment.normalize(x, *self.input_stats)
        if self.frozen:
            return self.head(jax.lax.stop_gradient(self.encoder(x, train=False)))
        return self.head(self.encoder(x, train=train))


class LinearEval(Classification):
    """Softmax cross-entropy of a linear head on a frozen encoder's representation."""

    frozen = True

    def __init__(self, config) -> None:
        super().__init__(config)
        self.input_stats = simclr.input_stats(config)

    def build_model(self, config, info, rngs) -> nnx.Module:
        encoder = simclr.build_encoder(config, info, rngs)
        dim = simclr.representation_dim(encoder, info.image_shape)
        return EncoderClassifier(encoder, dim, info.num_classes, self.input_stats,
                                 self.frozen, rngs=rngs)


class FineTune(LinearEval):
    """The same classifier with the encoder trained too (limited-label fine-tuning)."""

    frozen = False
