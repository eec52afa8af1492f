"""Reusable config fragments: the open_lth recipes (lth_common.md §3-4) and the `quick` shrink."""

from __future__ import annotations

import math

import ml_collections

CIFAR10_TRAIN = 50_000
IMAGENET_TRAIN = 1_281_167
TINY_IMAGENET_TRAIN = 100_000


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """open_lth's iterations per epoch: ceil(N / B) (the last partial batch counts)."""
    return math.ceil(num_examples / batch_size)


def lth_sgd(c: ml_collections.ConfigDict, *, lr: float, total_steps: int,
            milestones: tuple[int, ...], warmup_steps: int = 0) -> None:
    """open_lth's optimizer: SGD μ 0.9 with coupled wd 1e-4, lr × 0.1 at each milestone."""
    c.optim.name = "sgd"
    c.optim.lr = lr
    c.optim.momentum = 0.9
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "step"
    c.optim.decay_factor = 0.1
    c.optim.milestones = tuple(milestones)
    c.optim.warmup_steps = warmup_steps
    c.total_steps = total_steps


def lth_cifar10(c: ml_collections.ConfigDict) -> None:
    """open_lth cifar_resnet / cifar_vgg defaults: 160 epochs of SGD, drops at 80 and 120."""
    epoch = steps_per_epoch(CIFAR10_TRAIN, 128)  # 391
    c.data.name = "cifar10"
    c.data.augment = "cifar"
    c.data.normalization = "imagenet"  # open_lth quirk, kept (lth_common.md §3)
    c.data.batch_size = 128
    c.data.eval_batch_size = 1024
    c.data.num_workers = 4
    lth_sgd(c, lr=0.1, total_steps=160 * epoch,  # 62,560
            milestones=(80 * epoch, 120 * epoch))  # 31,280 and 46,920
    c.eval_every = epoch  # open_lth evaluates every epoch (≈ 7 % extra compute)
    c.log_every = 100
    c.checkpoint_every = epoch * 5


def lth_imagenet(c: ml_collections.ConfigDict) -> None:
    """open_lth imagenet_resnet defaults: 90 epochs, batch 1024, lr 0.4, 5-epoch warmup."""
    epoch = steps_per_epoch(IMAGENET_TRAIN, 1024)  # 1,252
    c.data.name = "imagenet2012"
    c.data.eval_split = "validation"
    c.data.augment = "imagenet"
    c.data.image_size = 224
    c.data.normalization = "imagenet"
    c.data.batch_size = 1024
    c.data.eval_batch_size = 1024
    c.data.num_workers = 16
    lth_sgd(c, lr=0.4, total_steps=90 * epoch,  # 112,680
            milestones=(30 * epoch, 60 * epoch, 80 * epoch), warmup_steps=5 * epoch)
    c.eval_every = epoch  # 50,000 validation images: ≈ 1 % extra compute
    c.log_every = 100
    c.checkpoint_every = 1000


def quick(c: ml_collections.ConfigDict, steps: int = 60) -> None:
    """Shrinks a config to about a minute on a 2-core CPU: offline Fashion-MNIST at 14×14."""
    c.data.name = "fashion_mnist"
    c.data.data_dir = ""
    c.data.eval_split = "test"
    c.data.train_examples = 2_000
    c.data.eval_examples = 500
    c.data.pool = 2
    c.data.augment = "none"
    c.data.image_size = 0
    c.data.normalization = "dataset"
    c.data.batch_size = 64
    c.data.eval_batch_size = 256
    c.data.num_workers = 0
    c.total_steps = steps
    c.optim.milestones = (steps // 2, 3 * steps // 4)
    c.optim.warmup_steps = min(c.optim.warmup_steps, steps // 10)
    c.log_every = 10
    c.eval_every = 0
    c.checkpoint_every = steps // 2
