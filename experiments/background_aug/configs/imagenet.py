"""Paper scale (background_aug.md §2–3): MoCo v2, BYOL or SwAV pretraining of a ResNet-50 on
imagenet2012, with or without background augmentations.

Recipes (spec §2, the methods' published ones):
- mocov2: batch 256, SGD μ 0.9, lr 0.03 cosine, wd 1e-4, queue 65,536, τ 0.2, head
  2048→2048→128, key EMA 0.999, crops 224 at area (0.2, 1), the MoCo v2 colour recipe.
  Shuffled BN as BatchNorm over groups of 32 (one GPU's share of 256 on 8, DESIGN rule 5).
- byol: batch 4096, LARS lr 0.2 × 4096/256 = 3.2 with 10 warm-up epochs then cosine, wd 1.5e-6,
  τ 0.996 → 1 (cosine), projector and predictor 4096→256 with BatchNorm, crops 224 at
  (0.08, 1), blur 1.0 / 0.1 and solarize 0 / 0.2 between the views; 300 epochs (recollection).
- swav: batch 4096, LARS lr 4.8, 10 warm-up epochs, cosine to 0.0048, wd 1e-6, 3,000
  prototypes, Sinkhorn ε 0.05 × 3, τ 0.1, head 2048→2048→128 with BatchNorm, multi-crop
  2 × 224 at (0.14, 1) + 6 × 96 at (0.05, 0.14), prototypes frozen for the first epoch. The
  spec lists a queue without its size; SwAV's small-batch recipe (batch 256) keeps 3,840
  embeddings from epoch 15 (recollection): `batch=256,queue=3840`. At batch 4096 the batch
  alone spans the prototypes, so the default is no queue.
BYOL's LARS leaves biases and BatchNorm parameters out of weight decay and the trust ratio;
SwAV's (LARC in its code, as recalled) applies both to every parameter. Learning rates scale
with `batch=` (MoCo v2 0.03 per 256, BYOL 0.2 per 256, SwAV 4.8 per 4096).

Background augmentations (variant): bg_rm, bg_random, bg_swaps (MoCo only: the others have no
negatives), each at p 0.2 per view (spec §2's reconstructed default; `p=` to sweep), donors'
holes filled by tiling. They need foreground masks: pack them with
`python -m experiments.background_aug.masks` and pass `--config.data.bgaug.masks_dir=PACKED`
(the baseline needs none).

Command (ImageNet prepared with `python -m lib.data.prepare imagenet2012 --data_dir=D`):
    python -m lib.main \\
      --config=experiments/background_aug/configs/imagenet.py:method=mocov2,variant=bg_swaps \\
      --workdir=$WORKDIR/mocov2_bg_swaps --config.data.data_dir=D --config.data.bgaug.masks_dir=M
Args: method (mocov2 | byol | swav), variant (baseline | bg_rm | bg_random | bg_swaps), p,
epochs (default 200 / 300 / 800 as the spec's longest runs), batch, queue (SwAV), seed, quick
(the same code path on the spurious-background set at 24 px: a seconds-long smoke run).
Then the linear evaluation (procedure.imagenet): the frozen encoder and a linear head, MoCo's
recipe after mocov2 (SGD lr 30, wd 0, ×0.1 at epochs 60 and 80 of 100), SwAV's after byol and
swav (lr 0.3 cosine, wd 1e-6, 100 epochs); train random resized crop 224 + flip, eval resize
256 → center 224. BYOL's own linear protocol is not in the spec; SwAV's stands in for it.
Then fine-tuning of encoder and head on the 1 % and 10 % label subsets (TFDS
imagenet2012_subset; SimCLR's protocol as recalled: SGD Nesterov lr 0.05 at batch 256, cosine,
no weight decay, 60 / 30 epochs), and the linear classifier on ImageNet-9 (the user's
backgrounds_challenge folder: `--config.imagenet_sets.in9_dir=DIR`; BG-Gap), ImageNet-A,
ImageNet-R and ReaL (TFDS imagenet_a, imagenet_r, imagenet2012_real), and under FGSM / PGD-10
at ε 0.25, 0.5, 1, 2 /255 on 10,000 validation images. All datasets are checked before
pretraining starts; leave out the sets you lack, e.g.
`--config.imagenet_sets.sets="('imagenet_a', 'real')"`, and the fine-tuning with
`--config.finetune.sets="('',)"`.
Hardware: a TPU v4-32 slice or 8 GPUs. Not run here at this scale: no wall time or accuracy
has been measured.
Reported (claims.py): B1 (+1 to +2 points linear top-1 with background augmentations), B8
(baselines 71.1 MoCo v2 800 ep, 75.3 / 72.1 SwAV 800 / 100 ep).
"""

from configs import common
from experiments.background_aug import config as paper_config
from lib.config import parse_arg

EPOCHS = {"mocov2": 200, "byol": 300, "swav": 800}
BATCH = {"mocov2": 256, "byol": 4096, "swav": 4096}
VARIANTS = ("baseline", "bg_rm", "bg_random", "bg_swaps")
_P_KEY = {"bg_rm": "rm_prob", "bg_random": "random_prob", "bg_swaps": "swap_prob"}


def _mocov2(c, a):
    c.task = "lib.ssl.moco:MoCo"
    c.ssl.temperature, c.ssl.projector_widths = 0.2, (2048, 128)
    c.ssl.queue_size, c.ssl.ema_decay = 65_536, 0.999
    c.ssl.color = "mocov2"
    c.model.bn_group_size = 32
    c.data.views, c.data.view_sizes = (2,), (224,)
    c.data.view_min_scale, c.data.view_max_scale = (0.2,), (1.0,)
    c.optim.name, c.optim.momentum, c.optim.weight_decay = "sgd", 0.9, 1e-4
    c.optim.lr = 0.03 * a.batch / 256
    c.optim.schedule = "cosine"


def _lars(c, lr, weight_decay, warmup_steps, final_fraction=0.0, exclude_1d=True):
    c.optim.name, c.optim.lr, c.optim.momentum = "lars", lr, 0.9
    c.optim.weight_decay, c.optim.lars_exclude_1d = weight_decay, exclude_1d
    c.optim.schedule, c.optim.warmup_steps = "cosine", warmup_steps
    c.optim.cosine_final_fraction = final_fraction


def _byol(c, a, epoch):
    c.task = "lib.ssl.byol:BYOL"
    c.ssl.projector_widths, c.ssl.predictor_hidden = (4096, 256), (4096,)
    c.ssl.projector_batchnorm = True
    c.ssl.ema_decay, c.ssl.ema_schedule = 0.996, "cosine"
    c.ssl.color = "byol"
    c.data.views, c.data.view_sizes = (2,), (224,)
    c.data.view_min_scale, c.data.view_max_scale = (0.08,), (1.0,)
    _lars(c, 0.2 * a.batch / 256, 1.5e-6, 10 * epoch)


def _swav(c, a, epoch):
    c.task = "lib.ssl.swav:SwAV"
    c.ssl.projector_widths, c.ssl.projector_batchnorm = (2048, 128), True
    c.ssl.prototypes, c.ssl.temperature = 3000, 0.1
    c.ssl.sinkhorn_epsilon, c.ssl.sinkhorn_iterations = 0.05, 3
    c.ssl.queue_size, c.ssl.queue_start_step = a.queue, 15 * epoch
    c.ssl.freeze_prototypes_steps = epoch
    c.ssl.color = "swav"
    c.data.views, c.data.view_sizes = (2, 6), (224, 96)
    c.data.view_min_scale, c.data.view_max_scale = (0.14, 0.05), (1.0, 0.14)
    _lars(c, 4.8 * a.batch / 4096, 1e-6, 10 * epoch, final_fraction=0.001, exclude_1d=False)


def get_config(arg=None):
    a = parse_arg(arg, method="mocov2", variant="baseline", p=0.2, epochs=0, batch=0, queue=0,
                  seed=0, quick=False)
    if a.method not in EPOCHS:
        raise ValueError(f"method={a.method!r}; valid choices: {', '.join(EPOCHS)}")
    if a.variant not in VARIANTS:
        raise ValueError(f"variant={a.variant!r}; valid choices: {', '.join(VARIANTS)}")
    if a.variant == "bg_swaps" and a.method != "mocov2":
        raise ValueError(f"variant=bg_swaps needs negatives, which method={a.method!r} does "
                         "not have; choose bg_rm or bg_random, or method=mocov2")
    a.batch = a.batch or BATCH[a.method]
    epochs = a.epochs or EPOCHS[a.method]
    c = paper_config.get_config()
    c.seed = a.seed
    c.procedure = "experiments.background_aug.procedure:imagenet"
    c.linear.recipe = "moco" if a.method == "mocov2" else "swav"
    c.model.name, c.model.depth, c.model.width = "imagenet_resnet", 50, 64
    c.model.bn_init = "fixed"
    c.data.name, c.data.eval_split = "imagenet2012", "validation"
    c.data.normalization, c.ssl.input_normalization = "none", "imagenet"
    c.data.augment = "views"
    c.data.image_size = 224  # the eval images' center crop
    c.data.batch_size, c.data.eval_batch_size, c.data.num_workers = a.batch, 1024, 16
    epoch = common.steps_per_epoch(common.IMAGENET_TRAIN, a.batch)
    {"mocov2": lambda: _mocov2(c, a), "byol": lambda: _byol(c, a, epoch),
     "swav": lambda: _swav(c, a, epoch)}[a.method]()
    c.total_steps = epochs * epoch
    if a.variant != "baseline":
        c.data.name = "experiments.background_aug.masks:source"
        c.data.augment = "experiments.background_aug.augment:BackgroundCrops"
        c.data.bgaug[_P_KEY[a.variant]] = a.p
    c.eval_every, c.log_every, c.checkpoint_every = 5 * epoch, 100, 1000
    c.eval.top_k = 0
    c.imagenet_sets.sets = ("imagenet9", "imagenet_a", "imagenet_r", "real", "adversarial")
    c.finetune.sets = ("1pct=imagenet2012_subset/1pct", "10pct=imagenet2012_subset/10pct")
    c.finetune.epochs = (60, 30)
    if a.quick:
        _quick(c, a)
    return c


def _quick(c, a):
    """The same task, model family, views and background ops on the spurious-background set
    (exact masks, stored clean backgrounds): 4 steps of batch 16 at 24 px (12 px local)."""
    c.model.width = 8
    c.data.name = "experiments.background_aug.spurious:source"
    c.data.train_split, c.data.eval_split = "train", "original"
    c.data.image_size, c.data.num_workers = 24, 0  # eval: resize 27 → centre 24, as at 224
    c.data.batch_size, c.data.eval_batch_size = 16, 64
    c.data.eval_examples = 64
    c.data.view_sizes = tuple(24 if s == 224 else 12 for s in c.data.view_sizes)
    c.data.bgaug.donor_hole_fill = "none"
    if c.data.augment == "views":
        c.data.augment = "experiments.background_aug.augment:BackgroundCrops"  # masks unused
    c.ssl.input_normalization = "none"
    c.ssl.projector_widths = (32, 16)
    c.ssl.predictor_hidden, c.ssl.prototypes = (32,), 10
    c.ssl.queue_size = 32 if c.task == "lib.ssl.moco:MoCo" else 0
    c.ssl.freeze_prototypes_steps, c.ssl.queue_start_step = 1, 0
    c.model.bn_group_size = 8 if c.model.bn_group_size else 0
    c.total_steps, c.optim.warmup_steps = 4, 1
    c.linear.steps, c.linear.batch_size = 4, 16
    c.imagenet_sets.sets = ("",)
    c.finetune.sets = ("quick=experiments.background_aug.spurious:source",)
    c.finetune.steps, c.finetune.batch_size = 4, 16
    c.eval_every, c.log_every, c.checkpoint_every = 0, 1, 4
    c.progress = False


def get_sweep(arg=None):
    """Every method × its variants (spec B1, B9)."""
    a = parse_arg(arg, seeds=1)
    return [dict(method=m, variant=v, seed=s) for m in EPOCHS for v in VARIANTS
            for s in range(a.seeds) if v != "bg_swaps" or m == "mocov2"]
