"""GLUE fine-tuning (reservoir.md §3–§5, R8): SST-2 or MNLI-matched accuracy of a RoBERTa model
that roberta.py pre-trained, reservoirs included.

The run starts from the pre-training run's parameters (arg pretrained=PATH, its workdir:
init.workdir, init.mode='params'; the sentence classifier on the first token starts fresh) and
reads GLUE with that run's tokenizer (data.tokenizer = PATH/tokenizer), so the pieces keep the
ids its embeddings learned. The encoder args (layers, reservoirs, type, placement, encoder)
must give the pre-trained model's type string: the same args as its roberta.py run. Reservoirs
stay frozen. Arg frozen (e.g. 1+3+5: 0-based encoder layers joined by '+') also freezes those
regular layers during fine-tuning only: the paper's "Transformer (frozen finetuned)" baseline,
a normally pre-trained model with some layers frozen at fine-tuning (optim.freeze
'^encoder/layer(1|3|5)/'). Arg pretrained_root=ROOT instead finds the pre-trained model in
ROOT, the --workdir_root of roberta.py's sweep (launch/sweep.py), by its encoder args and seed:
the run of the same seed. Without either, the model starts from its random initialisation with
a tokenizer of 8,000 pieces trained on the task's text (a control, not one of the paper's rows).

Data: TFDS `glue/sst2` (67,349 train sentences, 872 validation) or `glue/mnli` (392,702 train
pairs; validation_matched, 9,815), prepared with `python -m lib.data.prepare glue/sst2` (or
glue/mnli); records <s> a </s> (</s> b </s>), padded to the pre-trained 512 positions.

Reconstructed recipe (RoBERTa's fine-tuning, Liu et al. 2019, Table 10; the paper gives none):
Adam (0.9, 0.98, eps 1e-6), decoupled weight decay 0.1, lr 1e-5 (RoBERTa searched 1e-5, 2e-5,
3e-5: arg lr), linear warm-up over the first 6 % of the steps then linear decay to 0, batch 32,
10 epochs (SST-2 21,050 steps; MNLI 122,720), dropout 0.1, no label smoothing; validation
accuracy after every epoch (eval/accuracy in the eval curve; RoBERTa reports the best epoch).

Command (one GPU):
    python -m lib.main --config=experiments/reservoir/configs/glue.py:task=sst2,layers=12,\\
reservoirs=4,pretrained=/runs/roberta_L12_F4_s0 --workdir=/runs/sst2_L12_F4_s0
    python -m lib.main --config=experiments/reservoir/configs/glue.py:task=mnli,layers=12,\\
frozen=2+4+6+8,pretrained=/runs/roberta_L12_s0 --workdir=/runs/mnli_L12_frozen_s0
Args: task (sst2 | mnli), pretrained (a workdir path without commas), pretrained_root,
frozen, layers, reservoirs, type (F | T | G | C; D: LayerDrop), placement, encoder, backskip,
lr, epochs, seed, quick (tiny model, 20 steps, synthetic labelled token streams; from
`pretrained` when given, e.g. a roberta.py:quick run).
Hardware: one V100-class GPU. Expected wall time: SST-2 about 1–2 h, MNLI about 6–9 h (10
epochs of batch 32 padded to 512 tokens; estimates, not measured), not part of any AUCC. The
paper reports (R8) reservoir models more accurate than regular ones at every depth on SST-2 and
MNLI-m, by much at low depth, and the frozen-finetuned baseline gaining only a little; no
numbers in the spec.
"""

import math

from experiments.reservoir import config as paper_config
from experiments.reservoir import recipes
from experiments.reservoir.configs import roberta
from lib.config import ConfigError, parse_arg

TASKS = {  # TFDS name, eval split, train examples
    "sst2": ("glue/sst2", "validation", 67_349),
    "mnli": ("glue/mnli", "validation_matched", 392_702),
}
BATCH = 32
SCRATCH_VOCAB = 8_000  # pieces of the tokenizer trained on the task without a pre-trained run
FREEZE_PATTERN = "^encoder/layer({})/"


def frozen_layers(frozen: str, types: str) -> list[int]:
    """The 0-based encoder layers of arg `frozen` ('1+3+5'), checked against the encoder."""
    if not frozen:
        return []
    try:
        layers = sorted({int(part) for part in frozen.split("+")})
    except ValueError:
        raise ConfigError(f"frozen={frozen!r}: 0-based encoder layer indices joined by '+', "
                          "e.g. frozen=1+3+5") from None
    outside = [i for i in layers if not 0 <= i < len(types)]
    if outside:
        raise ConfigError(f"frozen={frozen!r}: layer {outside[0]} is not in the encoder "
                          f"{types!r} (layers 0 to {len(types) - 1})")
    reservoirs = [i for i in layers if types[i] in recipes.RESERVOIR_TYPES]
    if reservoirs:
        raise ConfigError(f"frozen={frozen!r}: layer {reservoirs[0]} of {types!r} is a "
                          "reservoir, frozen throughout already; freeze regular layers ('L')")
    return layers


def pretrained_run(a) -> str:
    """The pre-trained workdir: arg pretrained, or in pretrained_root the roberta.py sweep
    point with this run's encoder args and seed."""
    if a.pretrained and a.pretrained_root:
        raise ConfigError("give pretrained (a workdir) or pretrained_root (roberta.py's sweep "
                          "root), not both")
    if not a.pretrained_root:
        return a.pretrained
    point = roberta.run_point(**{k: a[k] for k in ("layers", *roberta.SWEEP_DEFAULTS)},
                              seed=a.seed)
    return f"{a.pretrained_root.rstrip('/')}/{roberta.run_name(point)}"


def get_config(arg=None):
    a = parse_arg(arg, task="sst2", pretrained="", pretrained_root="", frozen="", layers=12,
                  reservoirs=0, type="F", placement="alternating", encoder="",
                  backskip="none", lr=1e-5, epochs=10, seed=0, quick=False)
    if a.task not in TASKS:
        raise ConfigError(f"task={a.task!r}; valid choices: {', '.join(TASKS)}")
    c = paper_config.get_config()
    c.seed = a.seed
    c.task = "lib.text.tasks:SentenceClassification"
    c.procedure = "lib.text.procedure:run"  # passes through (tokenizer given) unless scratch
    recipes.roberta_base(c, a)
    frozen = frozen_layers(a.frozen, c.model.encoder_types)
    if frozen:
        c.optim.freeze = FREEZE_PATTERN.format("|".join(map(str, frozen)))
    name, eval_split, examples = TASKS[a.task]
    c.data.name, c.data.eval_split = name, eval_split
    c.data.batching, c.data.batch_size, c.data.eval_batch_size = "examples", BATCH, 128
    pretrained = pretrained_run(a)
    if pretrained:
        c.init.workdir, c.init.mode = pretrained, "params"
        c.data.tokenizer = f"{pretrained.rstrip('/')}/tokenizer"
        c.data.vocab_size = roberta.VOCAB_SIZE  # the tokenizer's; recorded, not trained
    else:
        c.data.vocab_size = SCRATCH_VOCAB
    epoch = math.ceil(examples / BATCH)
    c.total_steps = a.epochs * epoch
    c.optim.lr, c.optim.weight_decay = a.lr, 0.1
    c.optim.warmup_steps = round(0.06 * c.total_steps)
    c.eval.top_k = 0
    c.log_every, c.eval_every, c.checkpoint_every = 100, epoch, epoch
    if a.quick:
        recipes.quick_tokens(c, "labelled")
    return c


def get_sweep(arg=None):
    """SST-2 and MNLI × every pre-trained model of roberta.py's sweep, plus the frozen-finetuned
    baseline (the regular 6-, 12- and 18-layer models with the layers frozen where the
    reservoir models of that depth have reservoirs), × 3 seeds, seed s fine-tuning the
    pre-training run of seed s. Arg pretrained_root: roberta.py's sweep root (required to
    run the points; without it they load, from scratch)."""
    a = parse_arg(arg, pretrained_root="", seeds=3)
    from experiments.reservoir import placement

    root = {"pretrained_root": a.pretrained_root} if a.pretrained_root else {}
    models = roberta.get_sweep(f"seeds={a.seeds}")
    frozen = []
    for updatable in roberta.UPDATABLE:
        total, k = updatable + updatable // 2, updatable // 2
        layers = "+".join(map(str, placement.positions(total, k)))
        frozen += [dict(layers=total, frozen=layers, seed=s) for s in range(a.seeds)]
    return [{"task": task, **p, **root} for task in TASKS for p in models + frozen]
