"""The small-scale experiment of reservoir.md §6: synthetic translation on a 2-core CPU.

Reverse, permute and pair-swap 6–14 random tokens (experiments.reservoir.synthetic). Pre-LN
Transformer, d 64, 4 heads, FFN 128 (ReLU), learned positions, embeddings × √d tied with the
output, no dropout; a 1-layer decoder and an encoder given by its type string ('L' regular,
'F'/'T'/'G'/'C' reservoirs). Adam (0.9, 0.98), lr 1e-3 · min((s+1)/200, √(200/(s+1))), label
smoothing 0.1, batch 64 sentences padded to 16 tokens, 1,500 steps; teacher-forced validation
token accuracy every 100 steps, stamped with the training clock.

Command:
    python -m lib.main --config=experiments/reservoir/configs/synthetic.py:encoder=LFLFLFL \\
      --workdir=/tmp/reservoir_LFLFLFL
Args: encoder (type string, e.g. LLLL, LFLFLFL, LTLTLTL, LLLLLLL), backskip (none |
identity | stochastic), seed, steps, quick (30 steps).
Hardware: a 2-core CPU. Expected wall time: 1–2 minutes per encoder.
"""

from experiments.reservoir import config as paper_config
from lib.config import parse_arg

SYNTHETIC = "experiments.reservoir.synthetic:translation"


def get_config(arg=None):
    a = parse_arg(arg, encoder="LFLFLFL", backskip="none", seed=0, steps=1500, quick=False)
    c = paper_config.get_config()
    c.seed = a.seed
    c.task = "lib.text.tasks:Translation"
    c.model.name = "transformer"
    c.model.layer_types = "experiments.reservoir.layers:layer_types"
    c.model.encoder_types, c.model.decoder_layers = a.encoder, 1
    c.model.width, c.model.num_heads, c.model.mlp_dim = 64, 4, 128
    c.model.positions, c.model.tie_embeddings = "learned", True
    c.reservoir.backskip = a.backskip
    c.data.name = SYNTHETIC
    c.data.eval_split = "validation"
    c.data.max_length = 16
    c.data.batch_size, c.data.eval_batch_size = 64, 200
    c.label_smoothing = 0.1
    c.optim.name, c.optim.lr, c.optim.b1, c.optim.b2 = "adam", 1e-3, 0.9, 0.98
    c.optim.weight_decay = 0.0
    c.optim.schedule, c.optim.warmup_steps = "inverse_sqrt", 200
    c.total_steps = a.steps
    c.log_every, c.eval_every, c.checkpoint_every = 100, 100, 500
    c.eval.top_k = 0
    c.progress = False
    if a.quick:
        c.total_steps, c.eval_every, c.log_every, c.checkpoint_every = 30, 10, 10, 20
    return c


def get_sweep(arg=None):
    """Spec §6's four encoders (and identity backskipping of LFLFLFL) × seeds."""
    a = parse_arg(arg, seeds=1)
    runs = [dict(encoder=e, seed=s) for e in ("LLLL", "LFLFLFL", "LTLTLTL", "LLLLLLL")
            for s in range(a.seeds)]
    return runs + [dict(encoder="LFLFLFL", backskip="identity", seed=s)
                   for s in range(a.seeds)]
