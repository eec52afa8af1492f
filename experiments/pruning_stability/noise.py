"""Noise-injection variants of pruning (pruning_stability.md §2, Figure 5 and Figure D.2).

Targets are chosen as Prune_L would choose them (filter_pruning.py here with the configured score,
among filters not targeted before), but nothing is masked. Then, with X = noise_steps:
- `zero`: the targeted kernels are set to 0 at the event and before each of the next X − 1
  training steps (the event's zeroing is the one before the first step: X applications, at
  least one); afterwards they train normally.
- `gauss`: N(0, σ²) is added in place to the targeted kernels at the same moments (noise
  accumulates); σ is the std of the first untargeted filter of the layer, recomputed each time.
- `zero_restore`: every filter targeted so far has its kernel, γ and β set to 0 at the event
  and before each of the next X − 1 steps; after step event + X its kernel, γ, β and BN
  running mean and variance get back their values at the event.
Windows are per layer: each follows that layer's own event (VGG-11's layers start at epochs
3, 4, 5, 6, so windows of different layers overlap; a window must end before the layer's next
event). Functions here are pure numpy on host copies of the affected tensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from experiments.pruning_stability.filter_pruning import Layer

VARIANTS = ("none", "zero", "gauss", "zero_restore")


def window(variant: str, noise_steps: int) -> tuple[int, int]:
    """(applications, restore offset): the hook perturbs after steps event + 0 … applications − 1,
    and zero_restore restores after step event + restore offset (−1: never)."""
    if variant not in VARIANTS:
        raise ValueError(f"filter_pruning.noise={variant!r}; valid choices: {', '.join(VARIANTS)}")
    if noise_steps < 0 or (variant == "zero_restore" and noise_steps < 1):
        raise ValueError(f"filter_pruning.noise_steps={noise_steps}: must be ≥ 0 (≥ 1 for "
                         "zero_restore, which restores after that many steps)")
    applications = max(noise_steps, 1)
    return applications, (noise_steps if variant == "zero_restore" else -1)


def bn_stat_path(layer: Layer, stat: str) -> tuple[str, ...]:
    """Path of the BN running statistic ('mean' or 'var') in the nested batch_stats dict."""
    return (*layer.scale.split("/")[:-1], stat)


def _where(flags: np.ndarray, value, tensor: np.ndarray) -> np.ndarray:
    """`tensor` with its filters (last axis) where `flags` is set replaced by `value`."""
    return np.where(flags, value, tensor).astype(tensor.dtype)


def zero(params: Mapping[str, np.ndarray], layers: list[Layer], flags: Mapping[str, np.ndarray],
         with_bn: bool) -> dict[str, np.ndarray]:
    """Targeted kernels (and with_bn: γ, β) set to 0."""
    out = dict(params)
    for layer in layers:
        f = flags[layer.kernel] > 0
        names = (layer.kernel, layer.scale, layer.bias) if with_bn else (layer.kernel,)
        for name in names:
            out[name] = _where(f, 0.0, out[name])
    return out


def add_gaussian(params: Mapping[str, np.ndarray], layers: list[Layer],
                 flags: Mapping[str, np.ndarray], ever: Mapping[str, np.ndarray],
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """N(0, σ²) added to the targeted kernels; σ = std of the layer's first filter that was
    never targeted."""
    out = dict(params)
    for layer in layers:
        kernel = np.asarray(out[layer.kernel])
        untargeted = np.flatnonzero(ever[layer.kernel] == 0)
        if untargeted.size == 0:
            raise ValueError(f"{layer.kernel}: every filter is targeted, so no reference std")
        sigma = float(kernel[..., untargeted[0]].std())
        noise = rng.normal(0.0, sigma, size=kernel.shape)
        out[layer.kernel] = (kernel + np.where(flags[layer.kernel] > 0, noise, 0.0)).astype(
            kernel.dtype)
    return out


def restore(params: Mapping[str, np.ndarray], stats: Mapping[tuple, np.ndarray],
            snapshot: Mapping[str, np.ndarray], layers: list[Layer],
            flags: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    """Targeted filters' kernel, γ, β (params) and running mean, var (stats, keyed by path)
    back to the snapshot's values."""
    params, stats = dict(params), dict(stats)
    for layer in layers:
        f = flags[layer.kernel] > 0
        for name in (layer.kernel, layer.scale, layer.bias):
            params[name] = _where(f, snapshot[name], params[name])
        for stat in ("mean", "var"):
            path = bn_stat_path(layer, stat)
            stats[path] = _where(f, snapshot["/".join(path)], stats[path])
    return params, stats
