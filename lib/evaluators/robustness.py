"""Robustness and representation evaluation of a trained classifier on an eval split
(class_selectivity.md §2, §4): clean accuracy; accuracy under Gaussian noise, the common
corruptions at each severity (lib.evaluators.corruptions, on the fly), FGSM and PGD;
class selectivity per layer over the whole split; PCA dimensionality per layer of the clean
activations and of the changes that noise and attacks cause.

Inputs are pixel-space images in [0, 1] (data.normalization = none), so noise and ε are in
pixel units as the paper states them. Accuracies count the real (unpadded) examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from lib import losses
from lib.evaluators import adversarial, corruptions, dimensionality, selectivity


def _correct(logits, labels, mask):
    return jnp.sum((jnp.argmax(logits, -1) == labels) * mask)


def evaluate(apply: Callable, batches: Iterable[dict], cfg, layers, num_classes: int,
             si_eps: float = selectivity.DEFAULT_EPS) -> dict:
    """`apply(images) -> (logits, {layer: activations})` in eval mode; `cfg` (config
    robustness) holds noise_sigmas, corruptions ('' ignored), severities, corruption_table,
    fgsm_eps, pgd_eps (0s ignored), pgd_steps, pca_threshold and seed; SI and dimensionality
    are measured at `layers`."""
    layers = [name for name in layers if name]
    pgd_eps = [e for e in cfg.pgd_eps if e]
    for name in cfg.corruptions:  # bad names and severities fail before any work
        for s in cfg.severities if name else ():
            corruptions.corrupt(np.zeros((2, 2, 1), np.float32), name, s,
                                np.random.default_rng(0), cfg.corruption_table)
    for eps in (*cfg.fgsm_eps, *pgd_eps):
        adversarial.check(eps)

    def loss(x, y):
        return losses.softmax_cross_entropy(apply(x)[0], y).mean()

    @jax.jit
    def one_batch(batch, key):
        x, y, mask = batch["image"], batch["label"], batch["mask"]
        logits, feats = apply(x)
        feats = selectivity.select_layers(feats, layers)
        acts = {k: selectivity.unit_activations(v) for k, v in feats.items()}
        out = {"clean": _correct(logits, y, mask), "count": jnp.sum(mask),
               "class_sums": {k: selectivity.class_sums(a * mask[:, None], y, num_classes)[0]
                              for k, a in acts.items()},
               "class_counts": jax.nn.one_hot(y, num_classes).T @ mask}
        perturbed = {}
        for i, sigma in enumerate(cfg.noise_sigmas):
            noise = sigma * jax.random.normal(jax.random.fold_in(key, i), x.shape)
            perturbed[f"noise_{sigma:g}"] = jnp.clip(x + noise, 0.0, 1.0)
        for eps in cfg.fgsm_eps:
            perturbed[f"fgsm_{eps:g}"] = adversarial.fgsm(loss, x, y, eps)
        for eps in pgd_eps:
            perturbed[f"pgd_{eps:g}"] = adversarial.pgd(loss, x, y, eps, cfg.pgd_steps,
                                                        2.5 * eps / cfg.pgd_steps,
                                                        key=jax.random.fold_in(key, 1000))
        out["correct"], out["delta"] = {}, {}
        for name, xp in perturbed.items():
            lp, fp = apply(xp)
            out["correct"][name] = _correct(lp, y, mask)
            out["delta"][name] = {k: selectivity.unit_activations(fp[k]) - acts[k]
                                  for k in layers}
        out["acts"] = acts
        return out

    @jax.jit
    def correct(x, y, mask):
        return _correct(apply(x)[0], y, mask)

    corrupted = [(name, s) for name in cfg.corruptions if name for s in cfg.severities]
    key = jax.random.key(cfg.seed)
    totals, acts, deltas, masks = None, [], [], []
    for i, batch in enumerate(batches):
        out = jax.device_get(one_batch(batch, jax.random.fold_in(key, i)))
        out["corrupted"] = {
            f"{name}_{s}": correct(corruptions.corrupt_batch(
                batch["image"], name, s, (cfg.seed, i, j, s), cfg.corruption_table),
                batch["label"], batch["mask"])
            for j, (name, s) in enumerate(corrupted)}
        masks.append(np.asarray(batch["mask"]) > 0)
        acts.append(out.pop("acts"))
        deltas.append(out.pop("delta"))
        totals = out if totals is None else jax.tree.map(np.add, totals, out)
    count = float(totals["count"])
    clean = float(totals["clean"]) / count
    result = {"clean_accuracy": clean}
    for name, correct in totals["correct"].items():
        result[f"accuracy/{name}"] = float(correct) / count
        result[f"relative_accuracy/{name}"] = float(correct) / count / clean if clean else 0.0
    if corrupted:
        by_name = {k: float(v) / count for k, v in totals["corrupted"].items()}
        result.update({f"accuracy/corruption/{k}": v for k, v in by_name.items()})
        for s in cfg.severities:
            result[f"corruption_accuracy/severity_{s}"] = float(np.mean(
                [v for k, v in by_name.items() if k.endswith(f"_{s}")]))
        result["corruption_accuracy/mean"] = float(np.mean(list(by_name.values())))
        result["relative_corruption_accuracy"] = (
            result["corruption_accuracy/mean"] / clean if clean else 0.0)
    keep = np.concatenate(masks)
    for layer in layers:
        si = selectivity.from_class_sums(jnp.asarray(totals["class_sums"][layer]),
                                         jnp.asarray(totals["class_counts"]), si_eps)
        result[f"selectivity/{layer}"] = float(jnp.mean(si))
        matrix = np.concatenate([a[layer] for a in acts])[keep]
        result[f"pca_dim/{layer}"] = dimensionality.pca_dimension(matrix, cfg.pca_threshold)
        for name in totals["correct"]:
            change = np.concatenate([d[name][layer] for d in deltas])[keep]
            result[f"pca_dim_change/{name}/{layer}"] = dimensionality.pca_dimension(
                change, cfg.pca_threshold)
    result["selectivity/mean"] = float(np.mean([result[f"selectivity/{k}"] for k in layers]))
    return result
