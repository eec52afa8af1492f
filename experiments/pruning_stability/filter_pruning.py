"""Filter pruning during training (pruning_stability.md §2): the pruned convs and their
schedules, and the masks after one pruning event.

A pruned filter c of a conv has its kernel slice [..., c] masked and the following BatchNorm's
γ[c] and β[c] masked too, so the channel is exactly 0 after BN (its conv bias is left alone: BN
removes it). The masks live in the optimizer state (`lib.optim.element_masked`), so the masked
weights stay 0 through Adam moments and weight decay; `Trainer.with_masks` installs new ones
between steps. Residual nets also need `model.mask_pruned_residual` so a pruned channel stays 0
after the residual add.

Scores are computed on host copies of the parameters at the event; targets pick among the
filters still alive. `scratch` prunes every layer to its final count before the first step.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from lib import sparsity

SCORES = ("L2", "L1", "EBN", "EBN_alt", "activations")
BLOCK_CONV = re.compile(r"^(.*block\d+)/conv([12])/kernel$")  # a basic block's two convs
TARGETS = ("S", "L", "R", "scratch", "none")
INIT_EPOCH = -1  # the epoch index of scratch's single event: before any training


@dataclasses.dataclass(frozen=True)
class Layer:
    """One pruned conv: its kernel, the following BN's γ and β, and its events."""

    kernel: str
    scale: str
    bias: str
    filters: int
    events: tuple[tuple[int, int], ...]  # (epoch after which it is pruned, filters removed)


def next_batchnorm(kernel: str, names) -> tuple[str, str]:
    """(γ, β) paths of the BatchNorm after a conv: '…/conv/kernel' → '…/bn/{scale,bias}'
    ('conv1' → 'bn1', 'shortcut_conv' → 'shortcut_bn'), as every model here names them."""
    *parent, conv, leaf = kernel.split("/")
    bn = "/".join([*parent, conv.replace("conv", "bn", 1)])
    scale, bias = f"{bn}/scale", f"{bn}/bias"
    if leaf != "kernel" or "conv" not in conv or scale not in names or bias not in names:
        raise ValueError(f"filter pruning: no BatchNorm follows {kernel!r} (expected "
                         f"{scale!r} and {bias!r}); filter pruning needs conv-BN layers")
    return scale, bias


def _choice(kind: str, value: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"filter_pruning.{kind}={value!r}; valid choices: {', '.join(choices)}")
    return value


def plan(cfg, roles: Mapping[str, str], shapes: Mapping[str, tuple]) -> list[Layer]:
    """The pruned layers of config `filter_pruning` (forward order as configured), checked."""
    _choice("score", cfg.score, SCORES)
    _choice("target", cfg.target, TARGETS)
    layers = [k for k in cfg.layers if k]
    if cfg.target == "none":
        return []
    if cfg.score == "EBN_alt" and not cfg.mask_bn and cfg.noise == "none":
        raise ValueError("filter_pruning.score=EBN_alt masks only the BN (not the kernel), so "
                         "it needs filter_pruning.mask_bn=True")
    columns = {"fractions": cfg.fractions, "starts": cfg.starts, "ends": cfg.ends}
    bad = {k: len(v) for k, v in columns.items() if len(v) != len(layers)}
    if not layers or bad:
        raise ValueError(f"filter_pruning.layers names {len(layers)} convs; fractions, starts "
                         f"and ends need one value per layer (got {bad or 'no layers'})")
    convs = sorted(k for k, r in roles.items() if r == "conv_kernel")
    out = []
    for kernel, fraction, start, end in zip(layers, cfg.fractions, cfg.starts, cfg.ends):
        if kernel not in convs:
            raise ValueError(f"filter_pruning.layers: {kernel!r} is not a conv kernel of this "
                             f"model; conv kernels: {', '.join(convs)}")
        if cfg.score == "activations" and not BLOCK_CONV.match(kernel):
            raise ValueError(f"filter_pruning.score=activations reads residual-block "
                             f"activations; {kernel!r} is not conv1 or conv2 of a basic block")
        sparsity.check_fraction(fraction, f"filter_pruning fraction of {kernel}")
        scale, bias = next_batchnorm(kernel, roles)
        filters = shapes[kernel][-1]
        if cfg.target == "scratch":
            final = sparsity.kept_filters(filters, fraction, 1)[0]
            events = ((INIT_EPOCH, filters - final),)
        else:
            events = tuple(sparsity.filter_schedule(filters, fraction, start, end, cfg.period))
        out.append(Layer(kernel, scale, bias, filters, events))
    if len({layer.kernel for layer in out}) != len(out):
        raise ValueError("filter_pruning.layers lists a conv twice")
    return out


def mask_names(layers: list[Layer], score: str, mask_bn: bool = True) -> list[str]:
    """The tensors whose masks pruning changes. EBN_alt leaves kernels unmasked (the BN mask
    alone silences the channel); mask_bn=False (a noise-study baseline) leaves the BN alone."""
    names = []
    for layer in layers:
        if score != "EBN_alt":
            names.append(layer.kernel)
        if mask_bn:
            names += [layer.scale, layer.bias]
    return names


def event_epochs(layers: list[Layer]) -> list[int]:
    """Every epoch after which at least one layer has an event (events that remove nothing
    included), sorted."""
    return sorted({epoch for layer in layers for epoch, _ in layer.events})


def alive_filters(layer: Layer, masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Which filters are unpruned, read from the masks (γ's when the BN is masked)."""
    if layer.scale in masks:
        return np.asarray(masks[layer.scale]) > 0
    kernel = np.asarray(masks[layer.kernel])
    return kernel.reshape(-1, kernel.shape[-1]).any(0)


def scores(layer: Layer, params: Mapping[str, np.ndarray], score: str,
           activity: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """One score per filter: kernel L2/L1 norm, the expected post-ReLU BN output, or the
    running activation (`activity[kernel]`, kept during training: see activation_sums)."""
    if score in ("L2", "L1"):
        return sparsity.filter_norms(params[layer.kernel], score)
    if score == "activations":
        return np.asarray(activity[layer.kernel], np.float64)
    return sparsity.expected_bn_output(params[layer.scale], params[layer.bias],
                                       use_abs=score == "EBN")


def prune(layers: list[Layer], epoch: int, params: Mapping[str, np.ndarray],
          masks: Mapping[str, np.ndarray], score: str, target: str,
          rng: np.random.Generator | None = None,
          activity: Mapping[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Masks after the event at `epoch`, and what it did: filters removed and their mean score.

    scratch prunes with S on the weights it is given (the initialisation).
    """
    chooser = "S" if target == "scratch" else target
    new = {k: np.array(v, np.float32) for k, v in masks.items()}
    removed, chosen_scores = 0, []
    for layer in layers:
        for event_epoch, count in layer.events:
            if event_epoch != epoch or count == 0:
                continue
            layer_scores = scores(layer, params, score, activity)
            chosen = sparsity.select_filters(layer_scores, alive_filters(layer, new), count,
                                             chooser, rng)
            for name in (layer.kernel, layer.scale, layer.bias):
                if name in new:
                    new[name][..., chosen] = 0.0
            removed += chosen.size
            chosen_scores += list(layer_scores[chosen])
    info = {"removed": removed,
            "mean_pruned_score": float(np.mean(chosen_scores)) if chosen_scores else 0.0}
    return new, info


def pruned_filters(layers: list[Layer], masks: Mapping[str, np.ndarray]) -> int:
    """Filters pruned so far over all layers."""
    return int(sum((~alive_filters(layer, masks)).sum() for layer in layers))


def recorded_activation(model, kernel: str):
    """The activation that scores the filters of `kernel` (a basic block's conv1 or conv2),
    sown by a block with record_activations set: BN1's output, or the residual sum."""
    parent, conv = BLOCK_CONV.match(kernel).groups()
    block = model
    for part in parent.split("/"):
        block = getattr(block, part)
    return block, ("bn1_output" if conv == "1" else "residual_sum")


ACTIVITY_EVERY = 10  # the running average is updated every 10th training batch
ACTIVITY_DECAY = 0.9


def running_activity(previous, abs_sum, step):
    """s ← 0.1·Σ_{batch,h,w}|a| + 0.9·s on every ACTIVITY_EVERY-th batch (step counts from 0),
    unchanged otherwise (jax arrays: runs inside the train step)."""
    updated = (1.0 - ACTIVITY_DECAY) * abs_sum + ACTIVITY_DECAY * previous
    return jnp.where(step % ACTIVITY_EVERY == 0, updated, previous)
