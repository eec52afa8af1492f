"""IWSLT'14 De→En (reservoir.md §3): a reservoir encoder and a 2-layer regular decoder.

Reconstructed fairseq recipe (`transformer_iwslt_de_en`, "best values from Ott et al. 2018";
not confirmed by the paper): d 512, FFN 1024, 4 heads, sinusoidal positions, shared
embeddings; Adam (0.9, 0.98) with decoupled weight decay 1e-4, lr 5e-4, inverse-sqrt after
4,000 warm-up updates, dropout 0.3, label smoothing 0.1, about 4,096 tokens per batch; BLEU on
lowercased, tokenised text with beam 5 (eval.bleu_variant='tok'). The decoder depth (2) is a
recollection (arg decoder_layers). A joint sentencepiece BPE of 10,000 pieces is trained on
the training text into the workdir before training (lib.text.procedure) and reused on resume.

Data: the user's files in data_dir: train.de, train.en, valid.de, valid.en, test.de, test.en,
one sentence per line, aligned (fairseq's prepare-iwslt14.sh output before its BPE step;
lowercased here). 160k / 7.3k / 6.8k sentences after that script's filtering.

Command (one GPU):
    python -m lib.main --config=experiments/reservoir/configs/iwslt.py:layers=8,reservoirs=2 \\
      --config.data.data_dir=/data/iwslt14.de-en --workdir=/runs/iwslt_L8_F2_s0
Args: layers (encoder depth), reservoirs (k), type (F | T | G | C: the reservoirs' type; D:
LayerDrop on every layer), placement (alternating | bottom | middle | top), encoder (an
explicit type string, overriding the four), backskip (none | identity | stochastic),
decoder_layers, seed, steps, quick (tiny model, 20 steps, the synthetic task's data).
Hardware: one V100-class GPU (the paper's). Expected wall time: T̂ = 4 h of training clock per
run plus BLEU evaluations. The paper reports a regular Transformer at ≈ 34–35 test BLEU (R9,
a recollection) and up to 22 % less time to the best validation BLEU at equal updatable layers
(R1).
"""

from experiments.reservoir import config as paper_config
from experiments.reservoir import recipes
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, layers=6, reservoirs=0, type="F", placement="alternating", encoder="",
                  backskip="none", decoder_layers=2, seed=0, steps=50_000, quick=False)
    c = paper_config.get_config()
    recipes.translation(c, a, width=512, ffn=1024, heads=4, decoder_layers=a.decoder_layers,
                       dropout=0.3)
    c.data.name = "parallel_text"
    c.data.source_language, c.data.target_language = "de", "en"
    c.data.train_split, c.data.eval_split = "train", "valid"
    c.data.lowercase, c.data.vocab_size = True, 10_000
    c.data.max_length, c.data.batch_tokens, c.data.eval_batch_size = 256, 4096, 64
    c.optim.lr, c.optim.weight_decay = 5e-4, 1e-4
    c.eval.beam_size, c.eval.length_penalty, c.eval.bleu_variant = 5, 1.0, "tok"
    c.eval.sets = ("test",)  # test BLEU at every evaluation (eval_test/bleu): R7, R9
    c.reservoir.horizon = 4 * 3600.0
    c.total_steps = a.steps
    c.log_every, c.eval_every, c.checkpoint_every = 200, 2000, 2000
    if a.quick:
        recipes.quick(c)
    return c


def get_sweep(arg=None):
    """Regular and FFN/T reservoir encoders at 4–8 updatable layers, LayerDrop and a
    backskipped FFN reservoir, × 3 seeds (the paper's Table 1 axis, reconstructed)."""
    a = parse_arg(arg, seeds=3)
    points = []
    for updatable in (4, 6, 8):
        points.append(dict(layers=updatable))
        for kind in ("F", "T"):
            points.append(dict(layers=2 * updatable - 1, reservoirs=updatable - 1, type=kind))
    points += [dict(layers=11, type="D"),
               dict(layers=11, reservoirs=5, type="F", backskip="identity")]
    return [{**p, "seed": s} for p in points for s in range(a.seeds)]
