"""Paper scale (width_transfer.md §3, §4): widths optimised on a cheap proxy of a scaled-up
MobileNetV2 or ResNet-18 and transferred to it, against widths optimised on it directly and
uniform widths, on imagenet2012.

Targets (the scale-up is not known; the spec's recollection, `width=` and `depth=`):
- resnet18: torchvision's ResNet-18 layout with stage widths ×2 (128/256/512/1024) and blocks
  per stage ×2 (4/4/4/4), 1×1-conv shortcuts, a counted 1×1-conv classifier; 20 dims;
- mobilenet_v2: MobileNetV2 at width ×2 and depth ×2 (channels rounded to 8, blocks per
  stage ceil(2n), last conv 2560), the Linear classifier not counted; 40 dims.
Proxy (`proxy=`, the 320× decomposition of spec §2, as a sweep): `all` (default) halves the
width, the blocks per stage and the input side and keeps 10 % of the images: 4 × 2 × 4 × 10 =
320 if MACs scaled exactly as width², depth and side²; `width`, `depth`, `resolution` and
`data` apply one axis each. The counted factor (overhead/factor) differs from 320 where the
stem's input channels, the fixed last conv and the ceil'd sides do not scale.
Recipe (spec §3, reconstructed from the same authors' ImageNet recipe): SGD momentum 0.9,
lr 0.125 × 1024/256 = 0.5, 5 warm-up epochs then linear decay to 0, label smoothing 0.1,
weight decay 4e-5 (not on BN β and biases), batch 1024, 250 epochs (MobileNetV2) / 100
(ResNet-18); random resized crop 224 at area (0.25, 1), flips, colour jitter 0.4, PCA
lighting 0.1; eval resize 256 → centre crop 224. 10,000 training images are held out as the
validation split (AutoSlim's greedy cuts score on it).
Width optimiser (`optimizer=`): MorphNet (λ 0.5, budget rule ρ 0.5), AutoSlim (2 sampled
sub-networks, the smallest at 0.42, BN recalibrated on 2 batches of 1,024) or DMCP (10
groups per dim, λ 2, ρ 0.5). Its training run
lasts as many epochs as the final training (`shrink_epochs`; the paper's is not known, our
choice), so MorphNet's overhead on the target is about one standard training.

Command (ImageNet prepared with `python -m lib.data.prepare imagenet2012 --data_dir=D`):
    python -m lib.main \\
      --config=experiments/width_transfer/configs/imagenet.py:model=resnet18,seed=0 \\
      --workdir=$WORKDIR/wt_r18_s0 --config.data.data_dir=D
Args: model (resnet18 | mobilenet_v2), optimizer (morphnet | autoslim | dmcp), proxy (all | width |
depth | resolution | data), width, depth (the scale-up), seed, quick (the same stages on
Fashion-MNIST at 32 px, a few steps each, the unscaled nets narrowed: about a minute).
Hardware: 8 GPUs or a TPU v4-8 slice. Not run here: no wall time or accuracy has been
measured. Each run trains the target's optimiser, the proxy's and three final networks.
Reported (claims.py): W2 (up to 320× less overhead), W3 (transferred within 0.3 top-1 of
direct).
"""

from configs import common
from experiments.width_transfer import config as paper_config
from experiments.width_transfer import nets
from lib.config import parse_arg

EPOCHS = {"resnet18": 100, "mobilenet_v2": 250}
# proxy: (width, depth, resolution, data) factors; `all` is the 320× decomposition
PROXIES = {"all": (0.5, 0.5, 0.5, 0.1), "width": (0.5, 1.0, 1.0, 1.0),
           "depth": (1.0, 0.5, 1.0, 1.0), "resolution": (1.0, 1.0, 0.5, 1.0),
           "data": (1.0, 1.0, 1.0, 0.1)}
HELD_OUT = 10_000


def get_config(arg=None):
    a = parse_arg(arg, model="resnet18", optimizer="morphnet", proxy="all", width=2.0,
                  depth=2.0, seed=0, quick=False)
    if a.model not in EPOCHS:
        raise ValueError(f"model={a.model!r}; valid choices: {', '.join(EPOCHS)}")
    if a.proxy not in PROXIES:
        raise ValueError(f"proxy={a.proxy!r}; valid choices: {', '.join(PROXIES)}")
    c = paper_config.get_config()
    c.seed = a.seed
    c.procedure = "experiments.width_transfer.procedure:run"
    if a.model == "resnet18":
        c.model.name, c.model.depth = nets.IMAGENET_RESNET, 18
        c.model.stage_widths = tuple(round(a.width * w) for w in (64, 128, 256, 512))
        c.model.layout = (max(1, round(2 * a.depth)),) * 4
    else:
        c.model.name, c.model.width_mult, c.model.depth_mult = nets.MOBILENET_V2, a.width, a.depth
    c.model.widths = ()
    c.data.name, c.data.eval_split = "imagenet2012", "validation"
    c.data.augment, c.data.image_size, c.data.normalization = "imagenet", 224, "imagenet"
    c.data.crop_scale, c.data.crop_ratio = (0.25, 1.0), (3 / 4, 4 / 3)
    c.data.color_jitter, c.data.lighting = 0.4, 0.1
    c.data.validation_examples, c.data.subset_seed = HELD_OUT, 0
    c.data.batch_size, c.data.eval_batch_size, c.data.num_workers = 1024, 1024, 16
    epoch = common.steps_per_epoch(common.IMAGENET_TRAIN - HELD_OUT, c.data.batch_size)
    c.total_steps = EPOCHS[a.model] * epoch
    c.label_smoothing = 0.1
    c.optim.name, c.optim.lr, c.optim.momentum = "sgd", 0.125 * 1024 / 256, 0.9
    c.optim.weight_decay, c.optim.weight_decay_exclude = 4e-5, r"bias$"  # not on BN β, biases
    c.optim.schedule, c.optim.warmup_steps = "linear", 5 * epoch
    c.log_every, c.eval_every, c.checkpoint_every = 100, 10 * epoch, 2_000
    wt = c.width_transfer
    wt.optimizer, wt.final_steps = a.optimizer, c.total_steps
    wt.shrink_epochs = float(EPOCHS[a.model])
    wt.proxy_width, wt.proxy_depth, wt.proxy_resolution, wt.proxy_data = PROXIES[a.proxy]
    wt.proxy_epochs = 1.0
    wt.recalibration_batches = 2
    if a.quick:
        common.quick(c, steps=4)
        c.data.augment, c.data.pool, c.data.image_size = "imagenet", 1, 32
        c.data.lighting = 0.0  # Fashion-MNIST is grey: the jitter runs, PCA lighting cannot
        c.data.train_examples, c.data.eval_examples, c.data.validation_examples = 256, 64, 64
        c.data.batch_size, c.data.eval_batch_size = 16, 64
        c.optim.warmup_steps = 1
        if a.model == "resnet18":
            c.model.stage_widths = (8, 16, 32, 64)
            c.model.layout = (2, 2, 2, 2)
        else:
            c.model.width_mult, c.model.depth_mult = 0.25, 1.0
        wt.shrink_epochs, wt.final_steps = 0.25, 4
        wt.recalibration_batches = 1
        c.progress = False
    return c


def get_sweep(arg=None):
    """The 320× decomposition: every proxy × both networks × seeds 0–2 (spec §3: ≥ 3)."""
    a = parse_arg(arg, optimizer="morphnet", seeds=3)
    return [dict(model=m, proxy=p, optimizer=a.optimizer, seed=s)
            for m in EPOCHS for p in PROXIES for s in range(a.seeds)]
