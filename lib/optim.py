"""Optimizers from config: schedules, weight decay, trainable subsets and per-element masks.

Parameters travel as flat dicts `{"stage1/block0/conv1/kernel": array}`. A trainable subset is
(1) the set of whole tensors the optimizer sees — everything else is frozen: no gradient is
computed, no decay, no momentum, bit-identical forever — and (2) per-element {0,1} masks for
tensors that are only partly trainable (`random_k_per_channel`). A masked element's gradient is
zeroed before the optax chain and its update after it, so neither momentum nor weight decay can
move it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from lib.config import ConfigError

TRAINABLE_SUBSETS = (
    "all", "bn_only", "bn_and_output", "output_only", "gamma_only", "beta_only",
    "random_k_per_channel", "random_count", "all_no_affine", "none",
)

_ROLES_OF_SUBSET = {
    "bn_only": {"bn_scale", "bn_bias"},
    "bn_and_output": {"bn_scale", "bn_bias", "head_kernel", "head_bias"},
    "output_only": {"head_kernel", "head_bias"},
    "gamma_only": {"bn_scale"},
    "beta_only": {"bn_bias"},
    "none": set(),
}
# Subsets defined by the BatchNorm parameters (random_count: as many weights as BN has). On a
# model without BatchNorm (vit: LayerNorm only) they would silently train nothing or only the
# head, so they are refused instead.
_NEEDS_BATCHNORM = ("bn_only", "bn_and_output", "gamma_only", "beta_only", "random_count",
                    "all_no_affine")


@dataclasses.dataclass(frozen=True)
class TrainableSubset:
    """Which parameters train: whole tensors by name, plus element masks for partial ones."""

    names: tuple[str, ...]
    element_masks: dict[str, np.ndarray]

    def count(self, shapes: dict[str, tuple[int, ...]]) -> int:
        """Number of scalar parameters that can change."""
        return sum(
            int(self.element_masks[k].sum()) if k in self.element_masks else int(np.prod(shapes[k]))
            for k in self.names
        )


def _random_k_per_channel_masks(kernels: dict[str, tuple], k: int, seed: int) -> dict:
    """k uniformly chosen entries per output channel (last axis) of every conv kernel."""
    rng = np.random.default_rng(seed)
    masks = {}
    for name in sorted(kernels):
        shape = kernels[name]
        per_channel = int(np.prod(shape[:-1]))
        if k > per_channel:
            raise ConfigError(
                f"random_k={k} exceeds the {per_channel} entries per channel of {name}")
        mask = np.zeros((per_channel, shape[-1]), dtype=np.float32)
        for channel in range(shape[-1]):
            mask[rng.choice(per_channel, size=k, replace=False), channel] = 1.0
        masks[name] = mask.reshape(shape)
    return masks


def _random_count_masks(kernels: dict[str, tuple], count: int, seed: int) -> dict:
    """`count` entries chosen uniformly over all conv kernels jointly."""
    names = sorted(kernels)
    sizes = [int(np.prod(kernels[n])) for n in names]
    if count > sum(sizes):
        raise ConfigError(f"random_count={count} exceeds the {sum(sizes)} conv weights")
    flat = np.zeros(sum(sizes), dtype=np.float32)
    flat[np.random.default_rng(seed).choice(sum(sizes), size=count, replace=False)] = 1.0
    pieces = np.split(flat, np.cumsum(sizes)[:-1])
    return {n: p.reshape(kernels[n]) for n, p in zip(names, pieces)}


def trainable_subset(
    setting: str, roles: dict[str, str], shapes: dict[str, tuple], *, k: int = 2, seed: int = 0
) -> TrainableSubset:
    """Resolves a `optim.trainable` setting against a model's parameter roles."""
    if setting not in TRAINABLE_SUBSETS:
        raise ConfigError(
            f"unknown optim.trainable={setting!r}; valid: {', '.join(TRAINABLE_SUBSETS)}"
        )
    names = sorted(roles)
    if setting in _NEEDS_BATCHNORM and not {"bn_scale", "bn_bias"} & set(roles.values()):
        raise ConfigError(
            f"optim.trainable={setting!r} is defined by BatchNorm parameters and the model has "
            "no BatchNorm (LayerNorm is not counted); use all, output_only or none")
    if setting == "all":
        return TrainableSubset(tuple(names), {})
    if setting == "all_no_affine":
        return TrainableSubset(
            tuple(n for n in names if roles[n] not in ("bn_scale", "bn_bias")), {}
        )
    if setting in _ROLES_OF_SUBSET:
        wanted = _ROLES_OF_SUBSET[setting]
        return TrainableSubset(tuple(n for n in names if roles[n] in wanted), {})
    kernels = {n: shapes[n] for n in names if roles[n] == "conv_kernel"}
    if not kernels:
        raise ConfigError(f"optim.trainable={setting!r} needs conv layers; the model has none")
    if setting == "random_k_per_channel":
        masks = _random_k_per_channel_masks(kernels, k, seed)
    else:  # random_count: as many weights as the BN parameters, spread over all convs
        n_bn = sum(int(np.prod(shapes[n])) for n in names if roles[n] in ("bn_scale", "bn_bias"))
        masks = _random_count_masks(kernels, n_bn, seed)
    return TrainableSubset(tuple(sorted(kernels)), masks)


SCHEDULES = ("constant", "step", "cosine", "inverse_sqrt", "linear")


def frozen_by_pattern(subset: TrainableSubset, pattern: str, names: list[str]
                      ) -> TrainableSubset:
    """`subset` less the parameters whose path matches the regex `pattern` (optim.freeze): a
    pattern that matches none of the model's parameter paths `names` is refused."""
    regex = re.compile(pattern)
    if not any(regex.search(n) for n in names):
        raise ConfigError(f"optim.freeze={pattern!r} matches no parameter path; the model's "
                          f"paths look like {', '.join(sorted(names)[:4])}")
    return without(subset, [n for n in subset.names if regex.search(n)])


def without(subset: TrainableSubset, names) -> TrainableSubset:
    """`subset` less the parameters `names` (frozen by pattern, or by their layer type)."""
    dropped = set(names)
    kept = tuple(n for n in subset.names if n not in dropped)
    return TrainableSubset(kept, {k: m for k, m in subset.element_masks.items() if k in kept})


def learning_rate_schedule(cfg, total_steps: int) -> optax.Schedule:
    """lr_t = lr · decay^(#milestones ≤ t) · min(1, t / warmup) (step), or after a linear
    warmup: cosine to cosine_final_fraction·lr, linear decay to 0 at total_steps (linear);
    inverse_sqrt is lr · min((t+1)/warmup, √(warmup/(t+1))), fairseq's warmup then 1/√t decay."""
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"unknown optim.schedule={cfg.schedule!r}; valid: "
                          f"{', '.join(SCHEDULES)}")
    warmup = cfg.warmup_steps
    if cfg.schedule == "inverse_sqrt":
        if warmup <= 0:
            raise ConfigError("optim.schedule='inverse_sqrt' needs optim.warmup_steps > 0")
        return lambda t: cfg.lr * jnp.minimum((t + 1) / warmup, jnp.sqrt(warmup / (t + 1)))
    if cfg.schedule == "constant":
        base = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "step":
        milestones = sorted(int(m) for m in cfg.milestones if int(m) > 0)
        base = optax.piecewise_constant_schedule(cfg.lr, {m: cfg.decay_factor for m in milestones})
    elif cfg.schedule == "cosine":
        base = optax.cosine_decay_schedule(
            cfg.lr, max(1, total_steps - warmup), alpha=cfg.cosine_final_fraction
        )
    else:  # linear
        base = optax.linear_schedule(cfg.lr, 0.0, max(1, total_steps - warmup))
    if warmup <= 0:
        return base
    if cfg.schedule in ("cosine", "linear"):
        return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup), base], [warmup])
    return lambda t: base(t) * jnp.minimum(1.0, t / warmup)


class ElementMaskState(NamedTuple):
    inner: Any
    masks: dict[str, Any]  # in the state, not the closure: no large jit constants, checkpointed


def element_masked(
    inner: optax.GradientTransformation, masks: dict[str, Any]
) -> optax.GradientTransformation:
    """Zeroes masked elements' gradients before `inner` and their updates after it."""

    def apply(tree, masks):
        return {k: (v * masks[k].astype(v.dtype) if k in masks else v) for k, v in tree.items()}

    def init(params):
        return ElementMaskState(inner.init(params), {k: jnp.asarray(v) for k, v in masks.items()})

    def update(updates, state, params=None):
        updates, inner_state = inner.update(apply(updates, state.masks), state.inner, params)
        return apply(updates, state.masks), ElementMaskState(inner_state, state.masks)

    return optax.GradientTransformation(init, update)


def _decay_mask(cfg):
    if not cfg.weight_decay_exclude:
        return None
    pattern = re.compile(cfg.weight_decay_exclude)
    return lambda params: {k: not pattern.search(k) for k in params}


def _lars_mask(cfg):
    """Parameters that get LARS's weight decay and trust ratio: all but those matching
    optim.weight_decay_exclude and, with optim.lars_exclude_1d, biases and BatchNorm γ/β (the
    SimCLR / BYOL recipe)."""
    decay_mask = _decay_mask(cfg) or (lambda params: dict.fromkeys(params, True))
    return lambda params: {
        k: on and not (cfg.lars_exclude_1d and jnp.ndim(params[k]) <= 1)
        for k, on in decay_mask(params).items()}


def build(cfg, total_steps: int, masks: dict[str, Any] | None = None):
    """Returns (optax transformation, lr schedule) for the trainable flat parameter dict."""
    schedule = learning_rate_schedule(cfg, total_steps)
    decay_mask = _decay_mask(cfg)
    parts = []
    if cfg.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
    if cfg.name == "sgd":
        if cfg.weight_decay > 0:
            parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask))
        parts.append(optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=cfg.nesterov))
    elif cfg.name == "adam":
        if cfg.weight_decay > 0:
            parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask))
        parts.append(optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
    elif cfg.name == "adamw":
        parts.append(optax.adamw(
            schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
            weight_decay=cfg.weight_decay, mask=decay_mask,
        ))
    elif cfg.name == "lars":
        lars_mask = _lars_mask(cfg)
        parts.append(optax.lars(
            schedule, weight_decay=cfg.weight_decay, weight_decay_mask=lars_mask,
            trust_coefficient=cfg.trust_coefficient, trust_ratio_mask=lars_mask,
            momentum=cfg.momentum, nesterov=cfg.nesterov))
    else:
        raise ConfigError(f"unknown optim.name={cfg.name!r}; valid: sgd, adam, adamw, lars")
    tx = optax.chain(*parts)
    if masks:
        tx = element_masked(tx, masks)
    return tx, schedule


def check_trainable_config(optim_cfg, model_cfg) -> None:
    """`all_no_affine` means BN affine fixed at γ=1, β=0: the model must start there."""
    if optim_cfg.trainable == "all_no_affine" and model_cfg.bn_init != "fixed":
        raise ConfigError(
            "optim.trainable='all_no_affine' freezes BN at γ=1, β=0, so it needs "
            f"model.bn_init='fixed' (got {model_cfg.bn_init!r}); add --config.model.bn_init=fixed"
        )

