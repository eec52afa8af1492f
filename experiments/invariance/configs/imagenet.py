"""Paper scale (invariance.md §2.1–2.3, §3): the augmentation ablations of ResNet-18 and
ViT-B/16 on imagenet2012, then the invariance of their embeddings.

Training: the train transform is the §2.1 variant (experiments.invariance.augment, `variant=`),
the eval transform resize 256 → centre crop 224, ImageNet mean/std.
- ResNet-18, recipe=code (the paper's code's default for Section 2): 150 epochs, batch 256,
  SGD μ 0.9, lr 0.01, weight decay 1e-3, lr × 0.1 every 30 epochs. The spec doubts these are
  the paper's final values; recipe=standard is the usual one: lr 0.1, wd 1e-4, 90 epochs,
  × 0.1 every 30 (torchvision's reference, 69.76 % with HC).
- ViT-B/16, recipe=deit (DeiT-style): 300 epochs, batch 1024, AdamW lr 5e-4 × 1024/512, weight
  decay 0.05 (not on biases, norms, position embedding and cls token), 5 warm-up epochs, cosine
  to 1e-5, label smoothing 0.1, exact GELU (timm's). DeiT's RandAugment, Mixup / CutMix,
  random erasing, repeated augmentation and stochastic depth are not built: the train
  transform is the variant alone, which is the point of the ablation.
Then top-1 on the validation split, and the invariance of the embedding (ResNet: the GAP
'pool', 512-d; ViT: the CLS token after the final LayerNorm, 'pre_logits', 768-d) to the 13
transformations × 10 magnitudes of §2.3 (pixel space; `space=normalized` for the code's
quirk) on 9,600 (ResNet) / 3,200 (ViT) train images at the eval transform, cosine and L2,
baseline permutation seed 0, against the same architecture at its seeded init (seed 0): the
invariance gap per transformation over k = 3..7 (gap/<kind>).

Command (ImageNet prepared with `python -m lib.data.prepare imagenet2012 --data_dir=D`):
    python -m lib.main \\
      --config=experiments/invariance/configs/imagenet.py:model=resnet18,variant=None \\
      --workdir=$WORKDIR/inv_r18_none --config.data.data_dir=D
User weights (torchvision resnet18 / timm vit_base_patch16_224), measured without training:
    python -m lib.convert --source torchvision_resnet18 --weights resnet18.pth \\
      --config experiments/invariance/configs/imagenet.py:model=resnet18,train=False --workdir W
    python -m lib.main \\
      --config=experiments/invariance/configs/imagenet.py:model=resnet18,train=False \\
      --workdir=$WORKDIR/inv_r18_torchvision --config.init.workdir=W --config.data.data_dir=D
timm's ViT weights expect pixels scaled to [−1, 1]: add --config.data.normalization=inception
to both commands for them. With train=False the run reports the weights' top-1 on the
validation split (torchvision's ResNet-18: 69.76 %), a check that they loaded right; measuring
the seeded init against itself (train=False without init.workdir) is refused.
Args: model (resnet18 | vit_b16), variant (the §2.1 table; default HC), recipe (code |
standard for resnet18; deit for vit_b16), train (False: measure the starting state, the
seeded init or init.workdir's weights), space (pixel | normalized), seed, quick (the same code
path on Fashion-MNIST at 32 px with a narrow ResNet-18 / a 2-block ViT, six of the 13
transformations at k = 0, 3..7 on 32 images: 20–40 s).
Hardware: 8 GPUs or a TPU v4-8 slice. Not run here at this scale: no wall time, accuracy or
invariance has been measured. The measurement itself: see `python -m lib.bench --only
invariance` for images/s.
Reported (claims.py): I1 (translation alone recovers most of HC's gain), I2, I3 (HC 69.76 %
with the standard recipe), I4–I6 (invariance gaps, HC vs None, ResNet vs ViT).
"""

from configs import common
from experiments.invariance import augment
from experiments.invariance import config as paper_config
from lib import perturb
from lib.config import parse_arg

MODELS = ("resnet18", "vit_b16")
RECIPES = {"resnet18": ("code", "standard"), "vit_b16": ("deit",)}
MEASURED = {"resnet18": ("pool", 9_600), "vit_b16": ("pre_logits", 3_200)}
TORCHVISION_CROP = ((0.08, 1.0), (3 / 4, 4 / 3))
QUICK_KINDS = ("translateX", "zoom_in", "rotate", "posterize", "contrast_decrease", "solarize")


def get_config(arg=None):
    a = parse_arg(arg, model="resnet18", variant="HC", recipe="", train=True, space="pixel",
                  seed=0, quick=False)
    if a.model not in MODELS:
        raise ValueError(f"model={a.model!r}; valid choices: {', '.join(MODELS)}")
    recipe = a.recipe or RECIPES[a.model][0]
    if recipe not in RECIPES[a.model]:
        raise ValueError(f"recipe={recipe!r} for {a.model}; valid choices: "
                         f"{', '.join(RECIPES[a.model])}")
    if a.variant not in augment.VARIANTS:
        raise ValueError(f"variant={a.variant!r}; valid choices: {', '.join(augment.VARIANTS)}")
    c = paper_config.get_config()
    c.seed = a.seed
    c.procedure = "experiments.invariance.procedure:run"
    c.data.name = "imagenet2012"
    c.data.eval_split = "validation"
    c.data.augment = "experiments.invariance.augment:Ablation"
    c.data.invaug.variant = a.variant
    c.data.crop_scale, c.data.crop_ratio = TORCHVISION_CROP
    c.data.image_size = 224
    c.data.normalization = "imagenet"
    c.data.num_workers = 16
    c.eval.top_k = 5
    c.log_every, c.checkpoint_every = 100, 2_000
    if a.model == "resnet18":
        _resnet18(c, recipe)
    else:
        _vit_b16(c)
    feature, examples = MEASURED[a.model]
    c.invariance.train = a.train
    c.invariance.split = "train"
    c.invariance.examples = examples
    c.invariance.batch_size = 32
    c.invariance.shifts = ()
    c.invariance.kinds = perturb.KINDS
    c.invariance.space = a.space
    c.invariance.feature = feature
    c.invariance.chunk = 10
    c.invariance.untrained_reference = True
    if a.quick:
        _quick(c, a.model)
    return c


def _resnet18(c, recipe):
    c.model.name, c.model.depth, c.model.width = "imagenet_resnet", 18, 64
    c.model.bn_init, c.model.kernel_init = "fixed", "kaiming_normal_fan_out"  # torchvision
    c.model.linear_init = "torch_default"
    epochs, lr, wd = (150, 0.01, 1e-3) if recipe == "code" else (90, 0.1, 1e-4)
    epoch = common.steps_per_epoch(common.IMAGENET_TRAIN, 256)
    common.lth_sgd(c, lr=lr, total_steps=epochs * epoch,
                   milestones=tuple(e * epoch for e in range(30, epochs, 30)))
    c.optim.weight_decay = wd
    c.data.batch_size, c.data.eval_batch_size = 256, 1024
    c.eval_every = 5 * epoch


def _vit_b16(c):
    c.model.name, c.model.variant, c.model.patch_size, c.model.pool = "vit", "B", 16, "cls"
    c.model.gelu = "exact"
    batch, epochs = 1024, 300
    epoch = common.steps_per_epoch(common.IMAGENET_TRAIN, batch)
    c.optim.name, c.optim.lr, c.optim.weight_decay = "adamw", 5e-4 * batch / 512, 0.05
    c.optim.weight_decay_exclude = r"(bias|scale|pos_embedding|cls)$"
    c.optim.schedule, c.optim.warmup_steps = "cosine", 5 * epoch
    c.optim.cosine_final_fraction = 1e-5 / c.optim.lr
    c.total_steps = epochs * epoch
    c.label_smoothing = 0.1
    c.data.batch_size, c.data.eval_batch_size = batch, 1024
    c.eval_every = 10 * epoch


def _quick(c, model):
    common.quick(c, steps=4)
    c.data.augment = "experiments.invariance.augment:Ablation"
    c.data.pool, c.data.image_size = 1, 32
    c.data.train_examples, c.data.eval_examples = 256, 64
    c.data.batch_size, c.data.eval_batch_size = 32, 64
    if model == "resnet18":
        c.model.width = 8
    else:
        c.model.variant, c.model.width, c.model.depth = "", 32, 2
        c.model.num_heads, c.model.mlp_dim, c.model.patch_size = 4, 64, 8
        c.optim.warmup_steps = 1
    c.invariance.examples, c.invariance.batch_size = 32, 16
    c.invariance.kinds = QUICK_KINDS
    c.invariance.magnitudes = (0, 3, 4, 5, 6, 7)
    c.eval_every = 0
    c.progress = False


def get_sweep(arg=None):
    """Every §2.1 variant of ResNet-18 (the ablation table), and HC / None of ViT-B/16."""
    a = parse_arg(arg, recipe="code")
    return ([dict(model="resnet18", variant=v, recipe=a.recipe) for v in augment.VARIANTS]
            + [dict(model="vit_b16", variant=v) for v in ("HC", "None")])
