"""Train (or not), then measure invariance to translation on a fixed set of images.

    workdir/train/             lib.train.run (absent for invariance.untrained)
    workdir/invariance.json    the measurement, with the settings it used
    workdir/config.json, results.json   the config; eval top-1 and the measurement

The measurement (invariance.md §6): the images of data.name's split invariance.split, each
shifted right by every k of invariance.shifts pixels (zero fill, no interpolation); the
embedding is the model's features=True output invariance.feature (the GAP 'pool'); per k the
per-sample scores of metric.scores against the seeded baseline permutation. Results:
inv/median_k<k> per k; inv/min_k0, inv/max_k0 (the identity's extremes) and
inv/baseline_min_k0 (the smallest b_i there, which bounds how near 1 they can be). The untrained
model is the seeded initialisation, the same for every variant of one seed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments.invariance import metric
from lib import config as config_lib
from lib import features, files, procedure, train
from lib.data import sources


def check(config: ml_collections.ConfigDict) -> None:
    cfg = config.invariance
    if cfg.distance not in metric.DISTANCES:
        raise config_lib.ConfigError(f"invariance.distance={cfg.distance!r}; valid choices: "
                                     f"{', '.join(metric.DISTANCES)}")
    image_shape = sources.open_split(config.data, "eval", cfg.split).image_shape
    if max(cfg.shifts) >= image_shape[1]:
        raise config_lib.ConfigError(f"invariance.shifts={tuple(cfg.shifts)} reach past the "
                                     f"images' width {image_shape[1]}")


def translate(images: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """[N, H, W, C] images shifted by whole pixels, right by dx and down by dy (negative: left,
    up), zero fill where nothing comes in."""
    out = np.zeros_like(images)
    h, w = images.shape[1:3]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def check_feature(trainer, name: str) -> None:
    """The model has a features=True output `name` (traced, no compute)."""
    shape = (1, *trainer.setup.info.image_shape)
    names = jax.eval_shape(lambda state: trainer.setup.model(state)(
        jnp.zeros(shape), train=False, features=True)[1], trainer.setup.init_state)
    if name not in names:
        raise config_lib.ConfigError(f"invariance.feature={name!r}: the model has the "
                                     f"features {', '.join(names)}")


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    check(config)
    workdir = files.as_path(workdir)
    trainer = train.Trainer(config)
    check_feature(trainer, config.invariance.feature)
    workdir.mkdir(parents=True, exist_ok=True)
    if config.invariance.untrained:
        state, results = trainer.starting_state()[0], {}
    else:
        results = train.run(config, workdir / "train")
        _, _, state = train.load_final(workdir / "train")
    state = trainer.place(state)
    values = procedure.evaluation(workdir / "invariance.json", config.invariance,
                                  lambda: measure(trainer, state, config))
    return procedure.finish(workdir, config, {**results, **values})


def measure(trainer, state, config) -> dict:
    cfg = config.invariance
    images = sources.open_split(config.data, "eval", cfg.split).records.images
    feature = cfg.feature
    size = config.data.eval_batch_size

    def embed(x):
        return features.extract(trainer, state, lambda model, batch: model(
            batch["image"], train=False, features=True)[1][feature], _batches(x, size))["features"]

    perm = metric.permutation(len(images), cfg.perm_seed)
    z = embed(images)
    values = {}
    for k in cfg.shifts:
        inv = metric.scores(z, embed(translate(images, k)), perm, cfg.distance)
        values[f"inv/median_k{k}"] = metric.summary(inv)["median"]
        if k == 0:  # inv_i = b_i / (b_i + 1e-8) here: within 1e-6 of 1 only where b_i ≳ 0.01
            values["inv/min_k0"], values["inv/max_k0"] = float(inv.min()), float(inv.max())
            values["inv/baseline_min_k0"] = float(metric.distance(
                z, z[perm], cfg.distance).min())
    return {k: float(np.round(v, 8)) for k, v in values.items()}


def _batches(images: np.ndarray, size: int):
    """Eval-style batches of `size` (the last padded, 'mask' marking the real images)."""
    for start in range(0, len(images), size):
        chunk = images[start:start + size]
        mask = np.zeros(size, np.float32)
        mask[:len(chunk)] = 1
        padded = np.zeros((size, *images.shape[1:]), images.dtype)
        padded[:len(chunk)] = chunk
        yield {"image": padded, "mask": mask}
