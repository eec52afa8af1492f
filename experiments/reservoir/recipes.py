"""Pieces the reservoir configs share: the encoder type string from (layers, reservoirs,
type, placement) args, the fairseq-style translation recipe, the RoBERTa-base encoder that
pre-training and fine-tuning must build alike, and the quick runs' shrink."""

from experiments.reservoir import placement
from lib.config import ConfigError

RESERVOIR_TYPES = "TFGC"
BIDIRECTIONAL = "GC"  # reservoir types that read later positions: not in a causal stack
ROBERTA_MAX_LENGTH = 512  # tokens per record, BOS and EOS included (the position table's size)


def encoder_types(a) -> str:
    """An explicit `encoder` type string, else `layers` with `reservoirs` of `type` at
    `placement` (type D: LayerDrop on every layer, at that total depth)."""
    if a.encoder:
        unknown = sorted(set(a.encoder) - set("L" + RESERVOIR_TYPES + "D"))
        if unknown:
            raise ConfigError(f"unknown layer type {unknown[0]!r} in {a.encoder!r}; valid "
                              f"types: L, {', '.join(RESERVOIR_TYPES)}, D")
        return a.encoder
    if a.type == "D":
        return "D" * a.layers
    if a.type not in RESERVOIR_TYPES:
        raise ConfigError(f"type={a.type!r}: a reservoir type ({', '.join(RESERVOIR_TYPES)}) "
                          "or D (LayerDrop)")
    return placement.layer_types(a.layers, a.reservoirs, a.type, a.placement)


def reservoir_encoder(c, a, *, causal: bool = False) -> None:
    """The encoder's layer types from the args (encoder_types) and the reservoirs' backward
    rule. `causal`: a language model's stack, where bidirectional reservoirs (G, C), which
    read later positions, are refused."""
    types = encoder_types(a)
    if causal and set(types) & set(BIDIRECTIONAL):
        found = "".join(sorted(set(types) & set(BIDIRECTIONAL)))
        raise ConfigError(
            f"encoder {types!r} has {found} reservoirs, which read later positions (G: a "
            "bidirectional GRU, C: a centred convolution): a causal language model cannot use "
            "them. Use type=F or T (or D, LayerDrop)")
    c.model.layer_types = "experiments.reservoir.layers:layer_types"
    c.model.encoder_types = types
    c.reservoir.backskip = a.backskip


def roberta_base(c, a) -> None:
    """RoBERTa-base's encoder (Liu et al. 2019): 12 × 768 by default (arg layers), FFN 3072,
    12 heads, GELU, learned positions over 512 tokens, dropout 0.1 (attention too); reservoirs
    from the args. Pre-training (roberta.py) and fine-tuning (glue.py) both call this, so a
    fine-tuning run builds the pre-trained model's parameters with the same paths and shapes."""
    c.model.name = "transformer"
    reservoir_encoder(c, a)
    c.model.width, c.model.mlp_dim, c.model.num_heads = 768, 3072, 12
    c.model.activation, c.model.positions = "gelu", "learned"
    c.model.dropout, c.model.attention_dropout = 0.1, 0.1
    c.data.max_length = ROBERTA_MAX_LENGTH
    c.optim.name, c.optim.b1, c.optim.b2, c.optim.eps = "adamw", 0.9, 0.98, 1e-6
    c.optim.schedule = "linear"  # linear warm-up, then linear decay to 0


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


def quick_tokens(c, source: str) -> None:
    """A minute-scale smoke run of a token config (language model, masked LM, sentence
    classification) on an offline synthetic token stream (experiments.reservoir.synthetic_text):
    the config's model shape at tiny sizes, no tokenizer to train."""
    from experiments.reservoir import synthetic_text

    c.procedure = ""
    c.data.name = f"experiments.reservoir.synthetic_text:{source}"
    c.data.tokenizer, c.data.data_dir = "", ""
    c.data.train_split, c.data.eval_split = "train", "validation"
    c.data.max_length = synthetic_text.MAX_LENGTH
    c.data.train_examples, c.data.eval_examples, c.data.validation_examples = 0, 200, 0
    c.data.batching, c.data.batch_size, c.data.eval_batch_size = "examples", 16, 200
    c.model.width, c.model.mlp_dim, c.model.num_heads = 32, 64, 4
    c.optim.lr, c.optim.warmup_steps = 1e-3, 5
    c.eval.sets = ("",)
    c.total_steps, c.log_every, c.eval_every, c.checkpoint_every = 20, 10, 10, 10
