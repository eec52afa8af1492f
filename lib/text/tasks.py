"""Sequence tasks for the one trainer: translation with a Transformer encoder-decoder, masked-LM
pre-training and sentence classification with an encoder, character-level language modelling
with a causal decoder.

Batches come from token datasets (lib.data.sequences): 'inputs' and 'targets' padded with PAD
(0), targets ending in EOS. The decoder reads BOS followed by the targets shifted right
(teacher forcing). The loss is label-smoothed cross-entropy (fairseq's form) averaged over
the batch's real target tokens. Evaluation sums token-level negative log-likelihood and
accuracy with the token count as their denominator ('count/…'), so padding never counts.
The other tasks read a 'tokens' feature (and 'label' for classification) the same way.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lib import losses, registry
from lib.config import ConfigError
from lib.models import transformer
from lib.text import BOS, PAD, bleu, masking


def dims(model_cfg) -> transformer.Dims:
    """The transformer sizes of a config's model section."""
    return transformer.Dims(
        width=model_cfg.width, heads=model_cfg.num_heads, ffn=model_cfg.mlp_dim,
        dropout=model_cfg.dropout, attention_dropout=model_cfg.attention_dropout,
        activation_dropout=model_cfg.activation_dropout, activation=model_cfg.activation,
        dtype=model_cfg.dtype)


def layer_types(config) -> dict:
    """lib's 'L' plus the types a paper adds: model.layer_types = "module:function", called
    with the config, returns {char: factory}."""
    if not config.model.layer_types:
        return dict(transformer.LAYER_TYPES)
    extra = registry.resolve(config.model.layer_types, "model.layer_types")(config)
    return {**transformer.LAYER_TYPES, **extra}


def shift_right(targets):
    """Decoder input: BOS, then the targets without their last position."""
    return jnp.concatenate([jnp.full_like(targets[:, :1], BOS), targets[:, :-1]], axis=1)


def token_sums(logits, targets, weights) -> dict:
    """Summed NLL and correct tokens over `weights` (1 at real tokens), with their count."""
    nll = losses.token_cross_entropy(logits, targets)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    tokens = jnp.sum(weights)
    return {"loss": jnp.sum(nll * weights), "accuracy": jnp.sum(correct * weights),
            "count/loss": tokens, "count/accuracy": tokens}


class Translation:
    """Teacher-forced translation: label-smoothed token cross-entropy and token accuracy."""

    def __init__(self, config) -> None:
        self.smoothing = config.label_smoothing
        self.eval_cfg, self.data_cfg = config.eval, config.data
        if self.eval_cfg.bleu_variant not in bleu.VARIANTS:
            raise ConfigError(f"eval.bleu_variant={self.eval_cfg.bleu_variant!r}; valid "
                              f"choices: {', '.join(bleu.VARIANTS)}")
        self._translators = {}

    def check_data(self, info) -> None:
        missing = {"inputs", "targets"} - set(info.keys)
        if not info.vocab_size or missing:
            raise ConfigError(f"{type(self).__name__} needs a token dataset with 'inputs' and "
                              f"'targets'; {info.name} has {', '.join(info.keys) or 'images'}")

    def build_model(self, config, info, rngs):
        return transformer.Seq2Seq(
            vocab_size=info.vocab_size, max_length=config.data.max_length,
            dims=dims(config.model), encoder_types=config.model.encoder_types,
            decoder_layers=config.model.decoder_layers, positions=config.model.positions,
            tie=config.model.tie_embeddings, layer_types=layer_types(config), rngs=rngs)

    def train_loss(self, model, batch, rng, step):
        del step
        targets = batch["targets"]
        logits = model(batch["inputs"], shift_right(targets), rng=rng)
        weights = (targets != PAD).astype(jnp.float32)
        loss = losses.masked_mean(
            losses.token_cross_entropy(logits, targets, self.smoothing), weights)
        accuracy = losses.masked_mean(
            (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32), weights)
        return loss, {"loss": loss, "accuracy": accuracy}

    def eval_sums(self, model, batch):
        targets = batch["targets"]
        logits = model(batch["inputs"], shift_right(targets))
        weights = (targets != PAD) * batch["mask"][:, None]
        return {**token_sums(logits, targets, weights), "count": jnp.sum(batch["mask"])}

    def corpus_metrics(self, trainer, state, batches) -> dict:
        """BLEU of the pass decoded by beam search (eval.bleu; eval.beam_size 1: greedy),
        text from data.tokenizer where there is one, else token ids."""
        if not self.eval_cfg.bleu:
            return {}
        from lib.evaluators import translation

        key = id(trainer)
        if key not in self._translators:
            self._translators = {key: translation.Translator(
                trainer, self.eval_cfg.beam_size, self.eval_cfg.length_penalty)}
        detokenize = translation.ids_text
        if self.data_cfg.get("tokenizer"):
            from lib.text import tokenizer

            detokenize = tokenizer.load(self.data_cfg.tokenizer).decode
        score = self._translators[key].bleu(state, batches, detokenize,
                                            variant=self.eval_cfg.bleu_variant,
                                            lowercase=self.data_cfg.lowercase)
        return {"bleu": score}


def token_loss(logits, targets, weights, smoothing: float):
    """Training loss (label-smoothed cross-entropy) and accuracy, means over `weights`."""
    loss = losses.masked_mean(losses.token_cross_entropy(logits, targets, smoothing), weights)
    accuracy = losses.masked_mean(
        (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32), weights)
    return loss, {"loss": loss, "accuracy": accuracy}


def check_tokens(task, info, labels: bool = False) -> None:
    """A token dataset with a 'tokens' feature (and, with `labels`, class labels)."""
    name = type(task).__name__
    if not info.vocab_size or "tokens" not in info.keys:
        raise ConfigError(f"{name} needs a token dataset with a 'tokens' feature; {info.name} "
                          f"has {', '.join(info.keys) or 'images'}")
    if labels and not info.num_classes:
        raise ConfigError(f"{name} needs class labels; {info.name} has none")


def masked_lm(config, info, num_classes: int, rngs) -> transformer.MaskedLM:
    """The encoder of both RoBERTa stages. Its vocabulary is the data's plus MASK (id
    info.vocab_size) in both, so fine-tuning (init.mode='params') maps every pre-trained
    parameter by path and only the classifier starts fresh."""
    return transformer.MaskedLM(
        vocab_size=info.vocab_size + 1, max_length=config.data.max_length,
        dims=dims(config.model), encoder_types=config.model.encoder_types,
        num_classes=num_classes, positions=config.model.positions,
        layer_types=layer_types(config), rngs=rngs)


class MaskedLanguageModel:
    """RoBERTa pre-training: cross-entropy at the positions lib.text.masking selects (15%, of
    which 80% MASK, 10% a random token, 10% unchanged), MASK being the model's extra last id.

    Evaluation masks each record with a key of its own, fold_in(key(0), index): the same
    positions at every evaluation whatever the batching, so checkpoints are compared on one
    problem. Its loss and accuracy are per selected token, without label smoothing."""

    def __init__(self, config) -> None:
        self.smoothing = config.label_smoothing

    def check_data(self, info) -> None:
        check_tokens(self, info)
        if info.vocab_size <= masking.REGULAR:
            raise ConfigError(f"{type(self).__name__} masks regular tokens (ids >= "
                              f"{masking.REGULAR}); {info.name} has vocab_size "
                              f"{info.vocab_size}, only special ids")

    def build_model(self, config, info, rngs):
        return masked_lm(config, info, 0, rngs)

    @staticmethod
    def mask(model, tokens, rng):
        mask_id = model.embed.tokens.num_embeddings - 1  # the data's vocab_size
        return masking.mask_tokens(tokens, rng, vocab_size=mask_id, mask_id=mask_id)

    def train_loss(self, model, batch, rng, step):
        del step
        mask_rng, model_rng = jax.random.split(rng)
        inputs, targets, weights = self.mask(model, batch["tokens"], mask_rng)
        logits = model(inputs, rng=model_rng)
        return token_loss(logits, targets, weights, self.smoothing)

    def eval_sums(self, model, batch):
        keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(0), batch["index"])
        inputs, targets, weights = jax.vmap(lambda t, k: self.mask(model, t, k))(
            batch["tokens"], keys)
        weights = weights * batch["mask"][:, None]
        return {**token_sums(model(inputs), targets, weights), "count": jnp.sum(batch["mask"])}


class SentenceClassification:
    """GLUE fine-tuning (SST-2, MNLI): cross-entropy of the MaskedLM's classifier on the first
    token (label smoothing as lib.task.Classification), accuracy. Token batches may end in
    empty rows (mask 0), so the training loss is a mean over real rows too."""

    def __init__(self, config) -> None:
        self.smoothing = config.label_smoothing

    def check_data(self, info) -> None:
        check_tokens(self, info, labels=True)

    def build_model(self, config, info, rngs):
        return masked_lm(config, info, info.num_classes, rngs)

    def train_loss(self, model, batch, rng, step):
        del step
        logits, labels = model.classify(batch["tokens"], rng=rng), batch["label"]
        if self.smoothing:
            nll = losses.smoothed_cross_entropy(logits, labels, self.smoothing)
        else:
            nll = losses.softmax_cross_entropy(logits, labels)
        loss = losses.masked_mean(nll, batch["mask"])
        accuracy = losses.masked_mean(losses.topk_correct(logits, labels, 1), batch["mask"])
        return loss, {"loss": loss, "accuracy": accuracy}

    def eval_sums(self, model, batch):
        logits, labels, mask = model.classify(batch["tokens"]), batch["label"], batch["mask"]
        return {"loss": jnp.sum(losses.softmax_cross_entropy(logits, labels) * mask),
                "accuracy": jnp.sum(losses.topk_correct(logits, labels, 1) * mask),
                "count": jnp.sum(mask)}


class LanguageModel:
    """Next-token prediction with a CausalLM (character-level enwik8): token t of a record
    predicts token t + 1, over the non-PAD targets. Evaluation reports nats per token ('loss'),
    bits per character ('bpc' = loss / ln 2, the enwik8 metric) and accuracy. Each record is
    predicted from its own start only: no context carries over from the previous record."""

    def __init__(self, config) -> None:
        self.smoothing = config.label_smoothing

    def check_data(self, info) -> None:
        check_tokens(self, info)

    def build_model(self, config, info, rngs):
        return transformer.CausalLM(
            vocab_size=info.vocab_size, max_length=config.data.max_length,
            dims=dims(config.model), encoder_types=config.model.encoder_types,
            positions=config.model.positions, layer_types=layer_types(config), rngs=rngs)

    def train_loss(self, model, batch, rng, step):
        del step
        tokens = batch["tokens"]
        logits, targets = model(tokens[:, :-1], rng=rng), tokens[:, 1:]
        weights = (targets != PAD).astype(jnp.float32)
        return token_loss(logits, targets, weights, self.smoothing)

    def eval_sums(self, model, batch):
        tokens = batch["tokens"]
        targets = tokens[:, 1:]
        weights = (targets != PAD) * batch["mask"][:, None]
        sums = token_sums(model(tokens[:, :-1]), targets, weights)
        return {**sums, "bpc": sums["loss"] / math.log(2), "count/bpc": sums["count/loss"],
                "count": jnp.sum(batch["mask"])}
