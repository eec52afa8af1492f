"""Small tasks that exercise the trainer's model state: an EMA teacher, a FIFO queue and dropout
on a linear student (config task="toy_tasks:TeacherQueue", any image dataset)."""

import jax
import jax.numpy as jnp
from flax import nnx

from lib import losses
from lib.models import state as model_state
from lib.task import Classification

DECAY = 0.9
QUEUE = 80  # not a multiple of the test batches: the queue wraps around mid-batch


class TeacherStudent(nnx.Module):
    def __init__(self, in_features: int, num_classes: int, rngs: nnx.Rngs):
        self.student = nnx.Linear(in_features, num_classes, rngs=rngs)
        self.teacher = model_state.ema_copy(self.student)
        self.queue = model_state.FIFOQueue(QUEUE, num_classes)
        self.dropout = nnx.Dropout(0.25, rngs=nnx.Rngs(dropout=rngs.params()))

    def __call__(self, images, *, train: bool):
        x = images.reshape(images.shape[0], -1)
        return self.student(self.dropout(x, deterministic=not train))


class TeacherQueue(Classification):
    """Cross-entropy of the student (with dropout) plus its distance to the EMA teacher; each
    step pushes the batch's one-hot labels to the queue (a value numpy can replay)."""

    def build_model(self, config, info, rngs):
        h, w, c = info.image_shape
        return TeacherStudent(h * w * c, info.num_classes, rngs)

    def start(self, model):
        model_state.copy_into(model.teacher, model.student)

    def train_loss(self, model, batch, rng, step):
        del rng, step
        logits = model(batch["image"], train=True)
        x = batch["image"].reshape(batch["image"].shape[0], -1)
        target = jax.lax.stop_gradient(model.teacher(x))
        loss = (losses.softmax_cross_entropy(logits, batch["label"]).mean()
                + 0.1 * jnp.mean((logits - target) ** 2))
        model.queue.push(jax.nn.one_hot(batch["label"], logits.shape[-1]))
        accuracy = losses.topk_correct(logits, batch["label"], 1).mean()
        return loss, {"loss": loss, "accuracy": accuracy}

    def update_state(self, model, step):
        del step
        model_state.ema_update(model.teacher, model.student, DECAY)

    def eval_sums(self, model, batch):
        sums = super().eval_sums(model, batch)
        x = batch["image"].reshape(batch["image"].shape[0], -1)
        teacher = losses.topk_correct(model.teacher(x), batch["label"], 1)
        return {**sums, "teacher_accuracy": jnp.sum(teacher * batch["mask"])}


class LinearClassifier(nnx.Module):
    """Flattened pixels into one linear layer, the `head`: small enough to check by hand."""

    def __init__(self, in_features: int, num_classes: int, rngs: nnx.Rngs):
        self.head = nnx.Linear(in_features, num_classes, rngs=rngs)

    def __call__(self, images, *, train: bool):
        del train
        return self.head(images.reshape(images.shape[0], -1))


def linear_classifier(model_cfg, *, num_classes, in_channels, image_size, rngs):
    """The model factory of config model.name="toy_tasks:linear_classifier"."""
    del model_cfg
    h, w = image_size
    return LinearClassifier(h * w * in_channels, num_classes, rngs)


class PixelShare(Classification):
    """Classification plus a metric with its own denominator: the share of positive pixels,
    counted over pixels ('count/positive_pixels'), not examples."""

    def eval_sums(self, model, batch):
        sums = super().eval_sums(model, batch)
        mask = batch["mask"].reshape(-1, *[1] * (batch["image"].ndim - 1))
        pixels = jnp.broadcast_to(mask, batch["image"].shape)
        return {**sums, "positive_pixels": jnp.sum((batch["image"] > 0) * pixels),
                "count/positive_pixels": jnp.sum(pixels)}


class EncoderHead(nnx.Module):
    """An MLP whose trunk is called `trunk_name` ('encoder' when pretraining, 'backbone' in the
    probe), so a stage maps one onto the other with init.prefix_map."""

    def __init__(self, in_features: int, num_classes: int, trunk_name: str, rngs: nnx.Rngs):
        self.trunk_name = trunk_name
        setattr(self, trunk_name, nnx.Linear(in_features, 16, rngs=rngs))
        self.head = nnx.Linear(16, num_classes, rngs=rngs)

    def features(self, images):
        trunk = getattr(self, self.trunk_name)
        return jax.nn.relu(trunk(images.reshape(images.shape[0], -1)))

    def __call__(self, images, *, train: bool):
        del train
        return self.head(self.features(images))


def encoder_head(model_cfg, *, num_classes, in_channels, image_size, rngs):
    h, w = image_size
    return EncoderHead(h * w * in_channels, num_classes, "encoder", rngs)


def probe(model_cfg, *, num_classes, in_channels, image_size, rngs):
    h, w = image_size
    return EncoderHead(h * w * in_channels, num_classes, "backbone", rngs)
