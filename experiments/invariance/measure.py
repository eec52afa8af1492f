"""Invariance scores of one model (invariance.md §2.2) over a fixed set of images, for every
transformation asked for, batched and jitted on device (lib.features.transformed).

Transformations, by name:
- `shift{p}`: translateX by p whole pixels, right, zero fill (the small-scale experiment, §6);
- `{kind}_k{k}`: the perturbation registry's kind at magnitude index k (lib.perturb, §2.3), in
  pixel space (transform, then normalise) or normalized space (the code's quirk).

Two passes over the images: the clean embeddings z first, then every transform's; on the
host, in float64, d_i = dist(z_i, z_i^t) and b_j = dist(z_j, z_π(j)^t) for each image i of a
batch, where j = π⁻¹(i). So a batch's transformed embeddings are scored as they come and only
[T, N] distances are kept, whatever the number of images.
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

from experiments.invariance import metric
from lib import features, perturb

SHIFT = "shift"


def transform_names(cfg) -> list[str]:
    """The names of the transformations invariance.shifts / kinds / magnitudes ask for."""
    names = [f"{SHIFT}{p}" for p in cfg.shifts]
    kinds = [k for k in cfg.kinds if k]
    for kind in kinds:
        for k in cfg.magnitudes:
            perturb.check(kind, k, cfg.space)
    return names + [f"{kind}_k{k}" for kind in kinds for k in cfg.magnitudes]


def _shift(x, pixels: int):
    """[N, H, W, C] moved right by whole pixels, zero fill (on device)."""
    if pixels == 0:
        return x
    return jnp.pad(x, ((0, 0), (0, 0), (pixels, 0), (0, 0)))[:, :, :x.shape[2]]


def normaliser(mean, std):
    """x -> (x − mean) / std on device, per channel."""
    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
    return lambda x: (x - mean) / std


def device_transforms(names: list[str], space: str, normalise) -> dict:
    """{name: x -> normalised transformed x} for unnormalised [0, 1] images x."""

    def one(name):
        if name.startswith(SHIFT):
            return lambda x: normalise(_shift(x, int(name.removeprefix(SHIFT))))
        kind, _, k = name.rpartition("_k")
        if space == "pixel":
            return lambda x: normalise(perturb.perturb(x, kind, int(k), "pixel"))
        return lambda x: perturb.perturb(normalise(x), kind, int(k), "normalized")

    return {name: one(name) for name in names}


def distances(trainer, state, embed, normalise, transforms: dict, batches, perm: np.ndarray,
              kinds=metric.DISTANCES, chunk: int = 1, keep: int = 0, log=print
              ) -> tuple[dict, tuple | None]:
    """({distance: (d, b)}, each [T, N]: d[t, i] = dist(z_i, z_i^t), b[t, i] = dist(z_i,
    z_π(i)^t), z_i the embedding of normalise(x_i); and with keep > 0 the embeddings of the
    first `keep` images, (z [keep, D], z^t [T, keep, D] float32), for the equivariance
    alignment). `embed(model, batch)` embeds normalised images; `batches` yields unnormalised
    ones (the real examples in a fixed order, the same in both passes)."""
    z = np.concatenate([f[0] for f in features.transformed(
        trainer, state, embed, {"clean": normalise}, batches)]).astype(np.float64)
    n, t = len(z), len(transforms)
    if sorted(perm.tolist()) != list(range(n)):
        raise ValueError(f"perm must be a permutation of the {n} images")
    inverse = np.argsort(perm)
    out = {kind: (np.empty((t, n)), np.empty((t, n))) for kind in kinds}
    keep = min(keep, n)
    kept = np.empty((t, keep, z.shape[1]), np.float32)
    start, t0 = 0, time.perf_counter()
    for z_t in features.transformed(trainer, state, embed, transforms, batches, chunk):
        rows = np.arange(start, start + z_t.shape[1])
        partners = inverse[rows]  # the images whose baseline partner is in this batch
        if start < keep:
            stop = min(keep, start + len(rows))
            kept[:, start:stop] = z_t[:, :stop - start]
        for kind, (d, b) in out.items():
            for i in range(t):
                d[i, rows] = metric.distance(z[rows], z_t[i], kind)
                b[i, partners] = metric.distance(z[partners], z_t[i], kind)
        start += len(rows)
        elapsed = time.perf_counter() - t0
        log(f"invariance: {start}/{n} images × {t} transforms, {start / elapsed:.1f} images/s, "
            f"ETA {elapsed / start * (n - start):.0f} s")
    return out, ((z[:keep], kept) if keep else None)


def summaries(names: list[str], dists: dict, primary: str) -> tuple[dict, dict, dict]:
    """(scalars for results.json, everything for invariance.json, per-sample scores) from
    distances(): per transform and distance the median, min, max and the 0–99 percentiles
    of inv, and the smallest baseline distance (which bounds how near 1 inv can get)."""
    scalars, full, samples = {}, {}, {}
    for kind, (d, b) in dists.items():
        prefix = "inv" if kind == primary else f"inv_{kind}"
        for i, name in enumerate(names):
            inv = metric.from_distances(d[i], b[i])
            samples[f"{prefix}/{name}"] = inv.astype(np.float32)
            stats = {"median": float(np.median(inv)), "min": float(inv.min()),
                     "max": float(inv.max()), "baseline_min": float(b[i].min())}
            scalars.update({f"{prefix}/{s}/{name}": v for s, v in stats.items()})
            full.update({f"{prefix}/{s}/{name}": v for s, v in stats.items()})
            full[f"{prefix}/percentiles/{name}"] = metric.summary(inv)["percentiles"]
    return scalars, full, samples
