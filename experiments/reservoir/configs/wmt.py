"""WMT'16 En→De (reservoir.md §3): a deep reservoir encoder and a 1-layer regular decoder
(Kasai et al. 2020's deep-encoder, shallow-decoder setting).

Data: TFDS `wmt14_translate/de-en` by default (newstest2013 validation, newstest2014 test, the
usual choice: reconstructed), or `wmt16_translate/de-en` (dataset=wmt16), prepared by the
user with `python -m lib.data.prepare NAME`; English source, German target. A joint
sentencepiece BPE of 32,000 pieces is trained on the training text into the workdir first.

Reconstructed recipe ("from Kasai et al. 2020"; verify before claiming fidelity): transformer
base sizes (d 512, FFN 2048, 8 heads), Adam (0.9, 0.98), lr 5e-4 (the spec gives 5e-4 to
1e-3: arg lr), inverse-sqrt after 4,000 warm-up updates, dropout 0.1, label smoothing 0.1,
about 32k tokens per batch, beam 4 with length penalty 0.6, sacrebleu on detokenised text.

Command (8 GPUs on one host):
    python -m lib.main --config=experiments/reservoir/configs/wmt.py:layers=12,reservoirs=4 \\
      --workdir=/runs/wmt_L12_F4_s0
Args: dataset (wmt14 | wmt16), layers, reservoirs, type (F | T | G | C; D: LayerDrop),
placement, encoder (explicit type string), backskip, decoder_layers, lr, seed, steps, quick
(tiny model, 20 steps, the synthetic task's data).
Hardware: 8 V100-class GPUs (the paper's). Expected wall time: T̂ = 20 h of training clock per
run. The paper reports up to 22 % (24 layers: 27 %, R2) less time to convergence at equal
updatable layers, and that reservoirs need a minimum encoder depth to match the regular
Transformer's AUCC (R6).
"""

from experiments.reservoir import config as paper_config
from experiments.reservoir import recipes
from lib.config import ConfigError, parse_arg

DATASETS = {"wmt14": "wmt14_translate/de-en", "wmt16": "wmt16_translate/de-en"}


def get_config(arg=None):
    a = parse_arg(arg, dataset="wmt14", layers=12, reservoirs=0, type="F",
                  placement="alternating", encoder="", backskip="none", decoder_layers=1,
                  lr=5e-4, seed=0, steps=100_000, quick=False)
    if a.dataset not in DATASETS:
        raise ConfigError(f"dataset={a.dataset!r}; valid choices: {', '.join(DATASETS)}")
    c = paper_config.get_config()
    recipes.translation(c, a, width=512, ffn=2048, heads=8, decoder_layers=a.decoder_layers,
                       dropout=0.1)
    c.data.name = DATASETS[a.dataset]
    c.data.source_language, c.data.target_language = "en", "de"
    c.data.train_split, c.data.eval_split = "train", "validation"
    c.data.vocab_size = 32_000
    c.data.max_length, c.data.batch_tokens, c.data.eval_batch_size = 256, 32_768, 128
    c.optim.lr, c.optim.weight_decay = a.lr, 0.0
    c.eval.beam_size, c.eval.length_penalty, c.eval.bleu_variant = 4, 0.6, "detok"
    c.eval.sets = ("test",)  # test BLEU at every evaluation (eval_test/bleu): R7, R9
    c.reservoir.horizon = 20 * 3600.0
    c.total_steps = a.steps
    c.log_every, c.eval_every, c.checkpoint_every = 500, 5000, 5000
    if a.quick:
        recipes.quick(c)
    return c


def get_sweep(arg=None):
    """Regular and FFN/T reservoir encoders at 6–24 updatable layers, × 3 seeds."""
    a = parse_arg(arg, seeds=3)
    points = []
    for updatable in (6, 12, 24):
        points.append(dict(layers=updatable))
        for kind in ("F", "T"):
            points.append(dict(layers=updatable + updatable // 2,
                               reservoirs=updatable // 2, type=kind))
    return [{**p, "seed": s} for p in points for s in range(a.seeds)]
