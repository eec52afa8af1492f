"""Pieces the reservoir configs share: the encoder type string from (layers, reservoirs,
type, placement) args, and the fairseq-style translation recipe."""

from experiments.reservoir import placement
from lib.config import ConfigError

RESERVOIR_TYPES = "TFGC"


def encoder_types(a) -> str:
    """An explicit `encoder` type string, else `layers` with `reservoirs` of `type` at
    `placement` (type D: LayerDrop on every layer, at that total depth)."""
    if a.encoder:
        return a.encoder
    if a.type == "D":
        return "D" * a.layers
    if a.type not in RESERVOIR_TYPES:
        raise ConfigError(f"type={a.type!r}: a reservoir type ({', '.join(RESERVOIR_TYPES)}) "
                          "or D (LayerDrop)")
    return placement.layer_types(a.layers, a.reservoirs, a.type, a.placement)


def translation(c, a, *, width: int, ffn: int, heads: int, decoder_layers: int,
                dropout: float) -> None:
    """The Transformer encoder-decoder of a translation config: sizes, reservoir encoder,
    joint BPE vocabulary trained in the workdir, label smoothing 0.1, Adam (0.9, 0.98) with
    fairseq's inverse-sqrt schedule, BLEU by beam search at every evaluation."""
    c.seed = a.seed
    c.task = "lib.text.tasks:Translation"
    c.procedure = "lib.text.procedure:run"  # trains the BPE vocabulary in the workdir first
    c.model.name = "transformer"
    c.model.layer_types = "experiments.reservoir.layers:layer_types"
    c.model.encoder_types, c.model.decoder_layers = encoder_types(a), decoder_layers
    c.model.width, c.model.mlp_dim, c.model.num_heads = width, ffn, heads
    c.model.dropout, c.model.positions, c.model.tie_embeddings = dropout, "sinusoidal", True
    c.reservoir.backskip = a.backskip
    c.data.batching, c.data.bucket_step = "tokens", 8
    c.label_smoothing = 0.1
    c.optim.name, c.optim.b1, c.optim.b2 = "adamw", 0.9, 0.98
    c.optim.schedule, c.optim.warmup_steps = "inverse_sqrt", 4000
    c.eval.bleu, c.eval.top_k = True, 0


def quick(c) -> None:
    """A minute-scale smoke run of a paper-scale config on the offline synthetic task:
    the paper's model shape at tiny sizes, no tokenizer to train."""
    c.procedure = ""
    c.data.name = "experiments.reservoir.synthetic:translation"
    c.data.eval_split, c.data.max_length = "validation", 16
    c.data.batching, c.data.batch_size, c.data.eval_batch_size = "examples", 16, 200
    c.data.train_examples, c.data.eval_examples = 0, 200
    c.model.width, c.model.mlp_dim, c.model.num_heads = 32, 64, 4
    c.eval.beam_size, c.eval.bleu_variant = 2, "tok"
    c.optim.warmup_steps = 10
    c.total_steps, c.log_every, c.eval_every, c.checkpoint_every = 20, 10, 10, 10
