"""enwik8 (reservoir.md §3): character-level language modelling with a causal reservoir stack.

Data: the user's Hutter Prize file data_dir/enwik8 (unzip http://mattmahoney.net/dc/enwik8.zip,
100,000,000 bytes), split 90/5/5 into train / valid / test as Dai et al. 2019; one token per
byte (vocabulary 260: the bytes and PAD/BOS/EOS/UNK). Validation on 'valid', test BPC at every
evaluation too (eval_test/bpc).

Reconstructed recipe: the paper says only "as ReZero (Bachlechner et al. 2020)"; none of these
values is confirmed by it. A pre-LN decoder-only Transformer of 12 layers (arg layers), d 512,
8 heads, FFN 2048 (ReLU), learned positions, dropout 0.1; context 512: records are
non-overlapping chunks of 513 bytes (data.max_length), the model reads the first 512 and
predicts the last 512, so every chunk's first byte goes unscored and no context carries over
from one chunk to the next (Al-Rfou et al. 2019's setting, not Transformer-XL's memory). Adam
(0.9, 0.999), lr 2.5e-4, 4,000 linear warm-up steps then cosine decay to 0 over 400,000 steps,
no weight decay, batch 32 sequences (a multiple of the 8 devices). Metric: bits per character
(eval/bpc, lower is better). Reservoirs sit in the causal stack: F (FFN) and T (a whole layer
under the causal mask); G (BiGRU) and C (centred convolution) read later characters and are
refused.

Command (8 GPUs on one host):
    python -m lib.main --config=experiments/reservoir/configs/enwik8.py:layers=18,reservoirs=6 \\
      --config.data.data_dir=/data/enwik8 --workdir=/runs/enwik8_L18_F6_s0
Args: layers (depth), reservoirs (k), type (F | T: the reservoirs' type; D: LayerDrop on every
layer), placement (alternating | bottom | middle | top), encoder (an explicit type string,
overriding the four; no G or C), backskip (none | identity | stochastic), seed, steps, quick
(tiny model, 20 steps, synthetic Markov token streams).
Hardware: 8 V100-class GPUs (the paper's). Expected wall time: about 10–15 h for 400,000 steps
(an estimate, not measured), plus evaluations; the AUCC horizon is the paper's T̂ = 30 h of
training clock (reservoir.horizon), the last value carried forward (BPC: lower is better). The paper
reports BPC per model without a number the spec gives: qualitative only (no claim checks an
enwik8 value).
"""

from experiments.reservoir import config as paper_config
from experiments.reservoir import recipes
from lib.config import parse_arg

CONTEXT = 512  # characters the model reads per record


def get_config(arg=None):
    a = parse_arg(arg, layers=12, reservoirs=0, type="F", placement="alternating", encoder="",
                  backskip="none", seed=0, steps=400_000, quick=False)
    c = paper_config.get_config()
    c.seed = a.seed
    c.task = "lib.text.tasks:LanguageModel"
    c.model.name = "transformer"
    recipes.reservoir_encoder(c, a, causal=True)
    c.model.width, c.model.mlp_dim, c.model.num_heads = 512, 2048, 8
    c.model.activation, c.model.positions = "relu", "learned"
    c.model.dropout = 0.1
    c.data.name, c.data.data_dir = "enwik8", ""
    c.data.train_split, c.data.eval_split = "train", "valid"
    c.data.max_length = CONTEXT + 1  # 513-byte chunks: 512 inputs, 512 predicted
    c.data.batching, c.data.batch_size, c.data.eval_batch_size = "examples", 32, 64
    c.optim.name, c.optim.lr, c.optim.b1, c.optim.b2 = "adam", 2.5e-4, 0.9, 0.999
    c.optim.weight_decay = 0.0
    c.optim.schedule, c.optim.warmup_steps = "cosine", 4000
    c.eval.top_k = 0
    c.eval.sets = ("test",)  # test BPC at every evaluation (eval_test/bpc)
    c.reservoir.horizon = 30 * 3600.0
    c.total_steps = a.steps
    c.log_every, c.eval_every, c.checkpoint_every = 500, 5000, 5000
    if a.quick:
        recipes.quick_tokens(c, "tokens")
    return c


def get_sweep(arg=None):
    """Regular and FFN/T reservoir stacks at 4, 8 and 12 updatable layers (reservoirs: half as
    many again, alternating), × 3 seeds: the paper's axis, the depths reconstructed."""
    a = parse_arg(arg, seeds=3)
    points = []
    for updatable in (4, 8, 12):
        points.append(dict(layers=updatable))
        for kind in ("F", "T"):
            points.append(dict(layers=updatable + updatable // 2,
                               reservoirs=updatable // 2, type=kind))
    return [{**p, "seed": s} for p in points for s in range(a.seeds)]
