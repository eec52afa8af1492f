"""RoBERTa masked-LM pre-training (reservoir.md §3) with a reservoir encoder; glue.py then
fine-tunes the result on SST-2 and MNLI.

Data (arg corpus): `lines` (default) reads the user's corpus from data_dir: train.txt and
valid.txt, UTF-8, one document (better: fills the 512 tokens as RoBERTa's FULL-SENTENCES
packing does) or one sentence per line; or `lm1b`, TFDS's One Billion Word benchmark (prepare
with `python -m lib.data.prepare lm1b`), the stand-in the spec names for small runs, whose
10,000 held-out train sentences validate (it has no validation split). Each line or sentence is
one record, BOS + its pieces + EOS, a longer one truncated to 512 tokens. A sentencepiece BPE of
50,000 pieces (RoBERTa: a 50K byte-level BPE; ours is not byte-level) is trained on the train
text into workdir/tokenizer first (lib.text.procedure), and glue.py reuses it. Both corpora are
encoded into memory: lm1b's 30M sentences take several GB and minutes to read; the real RoBERTa
corpus (160 GB of text) does not fit this reader.

Recipe (Liu et al. 2019, RoBERTa-base; the spec's values, the rest reconstructed): 12 layers
(arg layers) × 768, FFN 3072, 12 heads, GELU, learned positions, pre-LN (the paper's layers;
RoBERTa is post-LN), dropout 0.1; masking 15 % (80 % MASK / 10 % random / 10 % kept); Adam
(0.9, 0.98, eps 1e-6), decoupled weight decay 0.01, peak lr 6e-4, linear warm-up over 4.8 % of
the steps (RoBERTa's 24k of 500k) then linear decay to 0. Batches of about 2,048 × 512 tokens
(length buckets of 64) for 125,000 steps: RoBERTa's 2K-batch, 125K-step budget (its Table 3),
reconstructed; the trainer has no gradient accumulation, so the batch must fit the devices'
memory (args batch, steps, lr). The metric: masked-token accuracy and loss on the validation
text (eval/accuracy, eval/loss), then SST-2 / MNLI-m accuracy after fine-tuning (glue.py).

Command (32 GPUs, 4 hosts):
    python -m lib.main --config=experiments/reservoir/configs/roberta.py:layers=12,reservoirs=4 \\
      --config.data.data_dir=/data/roberta_text --workdir=/runs/roberta_L12_F4_s0
Args: corpus (lines | lm1b), layers, reservoirs, type (F | T | G | C; D: LayerDrop),
placement, encoder (explicit type string), backskip, batch (sequences of 512 per batch), lr,
steps, seed, quick (tiny model, 20 steps, synthetic Markov token streams).
Hardware: 32 V100-class GPUs (the paper's). Expected wall time: about 70 h for 125,000 steps in
float32 (an estimate from 8e14 FLOPs per step, not measured), plus evaluations; the AUCC reads
the paper's T̂ = 60 h of training clock (reservoir.horizon). The paper reports no pre-training
number: its claim (R8) is on the fine-tuned accuracy (glue.py).
"""

import re

from experiments.reservoir import config as paper_config
from experiments.reservoir import recipes
from lib.config import ConfigError, parse_arg

CORPORA = {  # data.name, eval split
    "lines": ("text_lines", "valid"),
    "lm1b": ("lm1b", "validation"),
}
VOCAB_SIZE = 50_000  # sentencepiece BPE pieces (RoBERTa: 50K byte-level BPE)
LM1B_VALIDATION = 10_000  # lm1b train sentences held out for validation
BUCKET = 64  # length bucket step of the token batches
UPDATABLE = (4, 8, 12)  # the sweep's updatable depths; reservoirs k = u // 2 at total u + k
SWEEP_DEFAULTS = dict(reservoirs=0, type="F", placement="alternating", encoder="",
                      backskip="none")


def get_config(arg=None):
    a = parse_arg(arg, corpus="lines", layers=12, reservoirs=0, type="F",
                  placement="alternating", encoder="", backskip="none", batch=2048, lr=6e-4,
                  steps=125_000, seed=0, quick=False)
    if a.corpus not in CORPORA:
        raise ConfigError(f"corpus={a.corpus!r}; valid choices: {', '.join(CORPORA)}")
    c = paper_config.get_config()
    c.seed = a.seed
    c.task = "lib.text.tasks:MaskedLanguageModel"
    c.procedure = "lib.text.procedure:run"  # trains the BPE vocabulary in the workdir first
    recipes.roberta_base(c, a)
    c.data.name, c.data.eval_split = CORPORA[a.corpus]
    if a.corpus == "lm1b":
        c.data.validation_examples = LM1B_VALIDATION
    c.data.vocab_size = VOCAB_SIZE
    c.data.batching, c.data.bucket_step = "tokens", BUCKET
    c.data.batch_tokens = a.batch * recipes.ROBERTA_MAX_LENGTH
    c.data.eval_batch_size = 256
    c.optim.lr, c.optim.weight_decay = a.lr, 0.01
    c.optim.warmup_steps = a.steps * 24 // 500
    c.eval.top_k = 0
    c.reservoir.horizon = 60 * 3600.0
    c.total_steps = a.steps
    c.log_every, c.eval_every, c.checkpoint_every = 200, 2000, 2000
    if a.quick:
        recipes.quick_tokens(c, "tokens")
    return c


def run_point(**args) -> dict:
    """The sweep point (get_sweep) of the pre-training run with these encoder args and seed:
    layers, the other encoder args that differ from their defaults, and seed, in that order, so
    glue.py finds the run's workdir, which launch/sweep.py names by its point."""
    point = {"layers": args["layers"]}
    point.update({k: args[k] for k, default in SWEEP_DEFAULTS.items()
                  if k in args and args[k] != default})
    return {**point, "seed": args.get("seed", 0)}


def run_name(point: dict) -> str:
    """The workdir name launch/sweep.py gives a sweep point: its arg string ('k=v,…'), with
    characters that do not belong in a path replaced by '_' (launch/sweep.py:workdir_name)."""
    arg = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                   for k, v in point.items())
    return re.sub(r"[^\w.=,+-]", "_", arg)


def get_sweep(arg=None):
    """Regular encoders at 4, 6, 8, 12 and 18 layers; FFN and T reservoir encoders at 4, 8 and
    12 updatable layers (half as many reservoirs again: 6, 12, 18 in all), × 3 seeds. The
    regular 6-, 12- and 18-layer runs are also the pre-trained models of glue.py's "frozen
    finetuned" baseline at those depths. The depths are reconstructed."""
    a = parse_arg(arg, seeds=3)
    points = [dict(layers=n) for n in sorted({*UPDATABLE, *(u + u // 2 for u in UPDATABLE)})]
    for updatable in UPDATABLE:
        for kind in ("F", "T"):
            points.append(dict(layers=updatable + updatable // 2, reservoirs=updatable // 2,
                               type=kind))
    return [run_point(**p, seed=s) for p in points for s in range(a.seeds)]
