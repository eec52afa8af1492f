"""Robustness and representation evaluation of a trained classifier on an eval split
(class_selectivity.md §2, §4): clean accuracy; accuracy under Gaussian noise, the common
corruptions at each severity, FGSM and PGD, and lib.perturb's transformations (the invariance
paper's registry, robustness.perturbations); class selectivity per layer over the whole split;
PCA dimensionality per layer of the clean activations and of the changes Δ = f(x̃) − f(x) that
noise, corruptions and attacks cause; optionally the variability of the units' input gradients
(lib.evaluators.gradients).

Inputs are pixel-space images in [0, 1], so noise and ε are in pixel units as the paper states
them; a model trained on normalised inputs normalises inside `apply`. Corruptions are applied
on the fly (lib.evaluators.corruptions) or read from the released corrupted copies of the split
(TFDS cifar10_corrupted, Tiny ImageNet-C files), which pair up with the clean split image by
image. Accuracies count the real (unpadded) examples; the dimensionalities come from summed
moments, so no N×U matrix is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from lib import losses, perturb
from lib.evaluators import adversarial, corruptions, dimensionality, gradients, selectivity

SOURCES = ("on_the_fly", "released")


def _correct(logits, labels, mask):
    return jnp.sum((jnp.argmax(logits, -1) == labels) * mask)


def _add(totals, out):
    out = jax.device_get(out)
    return out if totals is None else jax.tree.map(np.add, totals, out)


def _corruption_sets(cfg, released) -> list:
    """[(name, severity, released batches or None)], every name and severity checked first."""
    sets = [(name, s) for name in cfg.corruptions if name for s in cfg.severities]
    if cfg.corruption_source not in SOURCES:
        raise ValueError(f"corruption_source {cfg.corruption_source!r}; valid: "
                         f"{', '.join(SOURCES)}")
    if cfg.corruption_source == "released":
        return [(name, s, released(name, s)) for name, s in sets]
    for name, s in sets:
        corruptions.corrupt(np.zeros((2, 2, 1), np.float32), name, s,
                            np.random.default_rng(0), cfg.corruption_table)
    return [(name, s, None) for name, s in sets]


def check(cfg, released: Callable | None = None) -> None:
    """Raises ValueError for settings `evaluate` would refuse: an unknown corruption source or
    name, a severity or ε out of range, a released corrupted set that cannot be opened, a
    perturbation that lib.perturb does not have."""
    _corruption_sets(cfg, released)
    for eps in (*cfg.fgsm_eps, *(e for e in cfg.pgd_eps if e)):
        adversarial.check(eps)
    perturbations(cfg.perturbations)


def perturbations(entries) -> list[tuple[str, int]]:
    """(kind, magnitude index) of each 'kind:k' entry of robustness.perturbations ('' ignored):
    lib.perturb's transformations (invariance.md §2.3) on [0, 1] pixels."""
    out = []
    for entry in (e for e in entries if e):
        kind, _, k = entry.partition(":")
        if not k.isdigit():
            raise ValueError(f"robustness.perturbations entry {entry!r}: write 'kind:k', e.g. "
                             f"'rotate:3' (kinds: {', '.join(perturb.KINDS)}; k in 0–9)")
        perturb.check(kind, int(k))
        out.append((kind, int(k)))
    return out


def evaluate(apply: Callable, batches: Iterable[dict], cfg, layers, num_classes: int,
             si_eps: float = selectivity.DEFAULT_EPS,
             released: Callable | None = None) -> dict:
    """`apply(images) -> (logits, {layer: activations})` in eval mode; `cfg` (config
    robustness) holds noise_sigmas, corruptions ('' ignored), severities, corruption_source,
    corruption_table, fgsm_eps, pgd_eps (0s ignored), pgd_steps, pca_threshold,
    gradient_units (0: no gradient variability) and seed; SI, dimensionality and gradient
    variability are measured at `layers`. With corruption_source='released',
    `released(name, severity)` gives the batches of that corrupted copy of the split."""
    layers = [name for name in layers if name]
    pgd_eps = [e for e in cfg.pgd_eps if e]
    corrupted = _corruption_sets(cfg, released)  # bad names fail before any work
    for name, s, source in corrupted:
        if source is not None and len(source) != len(batches):
            raise ValueError(f"the released {name}_{s} has {len(source)} batches, the clean "
                             f"split {len(batches)}: it must be a corrupted copy of the split")
    for eps in (*cfg.fgsm_eps, *pgd_eps):
        adversarial.check(eps)
    transforms = perturbations(cfg.perturbations)

    def loss(x, y):
        return losses.softmax_cross_entropy(apply(x)[0], y).mean()

    def features(x):
        logits, feats = apply(x)
        feats = selectivity.select_layers(feats, layers)
        return logits, {k: selectivity.unit_activations(v) for k, v in feats.items()}

    def compare(acts, perturbed, y, mask):
        logits, changed = features(perturbed)
        return {"correct": _correct(logits, y, mask),
                "change": {k: dimensionality.moments(changed[k] - acts[k], mask)
                           for k in layers}}

    @jax.jit
    def clean_pass(batch, key):
        x, y, mask = batch["image"], batch["label"], batch["mask"]
        logits, acts = features(x)
        perturbed = {}
        for i, sigma in enumerate(cfg.noise_sigmas):
            noise = sigma * jax.random.normal(jax.random.fold_in(key, i), x.shape)
            perturbed[f"noise_{sigma:g}"] = jnp.clip(x + noise, 0.0, 1.0)
        for kind, k in transforms:
            perturbed[f"{kind}_k{k}"] = perturb.perturb(x, kind, k, "pixel")
        for eps in cfg.fgsm_eps:
            perturbed[f"fgsm_{eps:g}"] = adversarial.fgsm(loss, x, y, eps)
        for eps in pgd_eps:
            perturbed[f"pgd_{eps:g}"] = adversarial.pgd(loss, x, y, eps, cfg.pgd_steps,
                                                        2.5 * eps / cfg.pgd_steps,
                                                        key=jax.random.fold_in(key, 1000))
        out = {}
        if cfg.gradient_units:
            out["gradients"] = {k: gradients.moments(gradients.unit_gradient_norms(
                lambda v, k=k: features(v)[1][k], x,
                gradients.chosen_units(a.shape[-1], cfg.gradient_units)), mask)
                for k, a in acts.items()}
        return out | {"clean": _correct(logits, y, mask), "count": jnp.sum(mask),
                "class_sums": {k: selectivity.class_sums(a * mask[:, None], y, num_classes)[0]
                               for k, a in acts.items()},
                "class_counts": jax.nn.one_hot(y, num_classes).T @ mask,
                "moments": {k: dimensionality.moments(a, mask) for k, a in acts.items()},
                "perturbed": {name: compare(acts, xp, y, mask)
                              for name, xp in perturbed.items()}}

    @jax.jit
    def corrupted_pass(clean, perturbed, y, mask):
        return compare(features(clean)[1], perturbed, y, mask)

    @jax.jit
    def correct_only(perturbed, y, mask):
        return {"correct": _correct(apply(perturbed)[0], y, mask)}

    key = jax.random.key(cfg.seed)
    totals = None
    for i, batch in enumerate(batches):
        totals = _add(totals, clean_pass(batch, jax.random.fold_in(key, i)))
    perturbed = totals.pop("perturbed")
    for j, (name, s, source) in enumerate(corrupted):
        total, aligned = None, True
        if source is None:
            pairs = ((b, {**b, "image": corruptions.corrupt_batch(
                b["image"], name, s, (cfg.seed, i, j, s), cfg.corruption_table)})
                for i, b in enumerate(batches))
        else:
            pairs = zip(batches, source, strict=True)
        for clean, bad in pairs:
            if aligned and not np.array_equal(np.asarray(clean["label"]),
                                              np.asarray(bad["label"])):
                aligned = False  # from here on only accuracy; the change so far is dropped
                logging.warning("%s_%d: labels differ from the clean split's order, so its "
                                "images do not pair up; no dimensionality of its change",
                                name, s)
                if total is not None:
                    total.pop("change")
            total = _add(total, corrupted_pass(clean["image"], bad["image"], bad["label"],
                                               bad["mask"]) if aligned else
                         correct_only(bad["image"], bad["label"], bad["mask"]))
        perturbed[f"corruption_{name}_{s}"] = total
    return _summary(totals, perturbed, cfg, layers, si_eps)


def _summary(totals, perturbed, cfg, layers, si_eps) -> dict:
    count = float(totals["count"])
    clean = float(totals["clean"]) / count
    result = {"clean_accuracy": clean}
    by_corruption = {}
    for name, out in perturbed.items():
        accuracy = float(out["correct"]) / count
        if name.startswith("corruption_"):
            by_corruption[name.removeprefix("corruption_")] = accuracy
            result[f"accuracy/corruption/{name.removeprefix('corruption_')}"] = accuracy
        else:
            result[f"accuracy/{name}"] = accuracy
            result[f"relative_accuracy/{name}"] = accuracy / clean if clean else 0.0
    if by_corruption:
        for s in cfg.severities:
            result[f"corruption_accuracy/severity_{s}"] = float(np.mean(
                [v for k, v in by_corruption.items() if k.endswith(f"_{s}")]))
        result["corruption_accuracy/mean"] = float(np.mean(list(by_corruption.values())))
        result["relative_corruption_accuracy"] = (
            result["corruption_accuracy/mean"] / clean if clean else 0.0)
    for layer in layers:
        si = selectivity.from_class_sums(jnp.asarray(totals["class_sums"][layer]),
                                         jnp.asarray(totals["class_counts"]), si_eps)
        result[f"selectivity/{layer}"] = float(jnp.mean(si))
        result[f"pca_dim/{layer}"] = dimensionality.pca_dimension_of_moments(
            *totals["moments"][layer], cfg.pca_threshold)
        corrupted_dims = []
        for name, out in perturbed.items():
            if "change" in out:
                dim = dimensionality.pca_dimension_of_moments(*out["change"][layer],
                                                              cfg.pca_threshold)
                result[f"pca_dim_change/{name}/{layer}"] = dim
                if name.startswith("corruption_"):
                    corrupted_dims.append(dim)
        if corrupted_dims:
            result[f"pca_dim_change/corruption_mean/{layer}"] = float(np.mean(corrupted_dims))
        if "gradients" in totals:
            result[f"gradient_norm/{layer}"], result[f"gradient_cv/{layer}"] = (
                gradients.variability(*totals["gradients"][layer]))
    result["selectivity/mean"] = float(np.mean([result[f"selectivity/{k}"] for k in layers]))
    if "gradients" in totals:
        result["gradient_cv/mean"] = float(np.mean([result[f"gradient_cv/{k}"]
                                                    for k in layers]))
    return result
