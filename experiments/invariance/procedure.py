"""Train (or not), then measure the model's invariance (invariance.md §2.2) on a fixed set of
images.

    workdir/train/                  lib.train.run (absent where invariance.train is False)
    workdir/invariance.json         the measurement with the settings it used: per transform
                                    and distance the median, min, max, 0–99 percentiles
    workdir/invariance_samples.npz  the per-sample scores, by 'inv/<transform>' (float32)
    workdir/invariance_vs_magnitude.png   medians and percentile bands per lib.perturb kind
    workdir/config.json, results.json   the config; eval top-1, the medians, min, max and
                                    smallest baseline distance per transform, the gaps

The images: invariance.split of data.name at the eval preprocessing (ImageNet: resize 256 →
centre crop 224), unnormalised, invariance.examples of them (seeded, stratified); the
transforms (measure.py) act on them on device, then they are normalised as in training. The
embedding is the model's features=True output invariance.feature. With
invariance.untrained_reference the model at its seeded init (invariance.untrained_seed) is
measured too ('untrained/' keys) and gap/<kind> = mean over k = 3..7 of median(trained) −
median(untrained). With invariance.equivariance_examples > 0 the first that many images also
give the equivariance alignment of §2.5 per transform (equi/ keys). A finished measurement is
read back unless its settings changed.
"""

from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments.invariance import alignment, analysis, measure, metric
from lib import config as config_lib
from lib import data, files, perturb, procedure, sharding, train
from lib.data import pipeline, sources


def measurement_data(config) -> ml_collections.ConfigDict:
    """The data config of the measured images: invariance.split as the eval split,
    unnormalised (the transforms act in [0, 1] or normalise first, as invariance.space says)."""
    cfg = config.invariance
    return config_lib.updated(config.data, {
        "eval_split": cfg.split, "eval_examples": cfg.examples, "subset_mode": "uniform",
        "normalization": "none", "eval_batch_size": cfg.batch_size or config.data.eval_batch_size})


def check(config: ml_collections.ConfigDict) -> list[str]:
    """Every setting checked before anything runs; returns the transform names."""
    cfg = config.invariance
    unknown = [d for d in cfg.distances if d not in metric.DISTANCES]
    if unknown or not cfg.distances:
        raise config_lib.ConfigError(f"invariance.distances={tuple(cfg.distances)}; valid "
                                     f"choices: {', '.join(metric.DISTANCES)}")
    if cfg.space not in perturb.SPACES:
        raise config_lib.ConfigError(f"invariance.space={cfg.space!r}; valid choices: "
                                     f"{', '.join(perturb.SPACES)}")
    try:
        names = measure.transform_names(cfg)
    except ValueError as e:
        raise config_lib.ConfigError(f"invariance.kinds / magnitudes: {e}") from e
    if not names:
        raise config_lib.ConfigError("nothing to measure: set invariance.shifts or "
                                     "invariance.kinds")
    measured = sources.open_split(measurement_data(config), "eval")
    width = config.data.image_size or measured.image_shape[1]
    if cfg.shifts and max(cfg.shifts) >= width:
        raise config_lib.ConfigError(f"invariance.shifts={tuple(cfg.shifts)} reach past the "
                                     f"images' width {width}")
    if len(measured.records) < 2:
        raise config_lib.ConfigError(f"invariance.split={cfg.split!r} gives "
                                     f"{len(measured.records)} image(s); the baseline "
                                     "permutation needs at least 2")
    if (not cfg.train and not config.init.workdir and cfg.untrained_reference
            and config.seed == cfg.untrained_seed):
        raise config_lib.ConfigError(
            "invariance.train=False measures the starting state, here the seeded init, which "
            "is also the untrained reference (seed == invariance.untrained_seed): every gap "
            "would be 0. Give weights with --config.init.workdir=DIR (a run, or weights "
            "converted with python -m lib.convert), or another seed")
    return names


def check_feature(trainer, name: str, key: str = "invariance.feature") -> None:
    """The model has a features=True output `name` (traced, no compute); `key` is the config
    key that named it."""
    shape = (1, *trainer.setup.info.image_shape)
    names = jax.eval_shape(lambda state: trainer.setup.model(state)(
        jnp.zeros(shape), train=False, features=True)[1], trainer.setup.init_state)
    if name not in names:
        raise config_lib.ConfigError(f"{key}={name!r}: the model has the features "
                                     f"{', '.join(names)}")


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    names = check(config)
    workdir = files.as_path(workdir)
    trainer = train.Trainer(config)
    check_feature(trainer, config.invariance.feature)
    sharding.check_batch_divides(trainer.mesh, measurement_data(config).eval_batch_size,
                                 what="invariance.batch_size")
    workdir.mkdir(parents=True, exist_ok=True)
    if not config.invariance.train:  # its top-1 checks that given weights loaded right
        state = trainer.starting_state()[0]
        results = trainer.evaluate(state)
    else:
        results = train.run(config, workdir / "train")
        _, _, state = train.load_final(workdir / "train")
    states = {"": trainer.place(state)}
    if config.invariance.untrained_reference:
        seeded = train.Trainer(config_lib.updated(config, {
            "seed": config.invariance.untrained_seed, "init.workdir": ""}))
        states["untrained/"] = seeded.initial_state()
    values = procedure.evaluation(workdir / "invariance.json", settings(config),
                                  lambda: measure_states(trainer, states, names, config, workdir))
    scalars = {k: v for k, v in values.items() if "/percentiles/" not in k}
    if jax.process_index() == 0 and any(k for k in config.invariance.kinds):
        analysis.plot([(config.model.name, values)], workdir / "invariance_vs_magnitude.png")
    return procedure.finish(workdir, config, {**results, **scalars})


def settings(config) -> ml_collections.ConfigDict:
    """What a measurement depends on: invariance.json is read back only while these hold (the
    weights measured come from the model, seed and init keys where nothing is trained here)."""
    return ml_collections.ConfigDict({
        "invariance": config.invariance.to_dict(), "model": config.model.to_dict(),
        "init": config.init.to_dict(), "seed": config.seed,
        "data": {k: config.data[k] for k in ("name", "data_dir", "normalization", "image_size",
                                             "pool", "subset_seed")}})


def measure_states(trainer, states: dict, names: list[str], config, workdir) -> dict:
    """The measurement of every state (prefix: state), the gaps, the per-sample scores."""
    cfg = config.invariance
    batches = data.eval_batches(measurement_data(config), process_index=jax.process_index(),
                                process_count=jax.process_count())
    normalise = measure.normaliser(*pipeline.normalization_stats(config.data))
    transforms = measure.device_transforms(names, cfg.space, normalise)
    count = len(sources.open_split(measurement_data(config), "eval").records)
    perm = metric.permutation(count, cfg.perm_seed)
    feature = cfg.feature

    def embed(model, batch):
        return model(batch["image"], train=False, features=True)[1][feature]

    full, samples = {}, {}
    for prefix, state in states.items():
        dists, kept = measure.distances(trainer, state, embed, normalise, transforms, batches,
                                        perm, cfg.distances, cfg.chunk,
                                        cfg.equivariance_examples)
        _, values, per_sample = measure.summaries(names, dists, cfg.distances[0])
        if kept is not None:
            values.update(equivariance(names, *kept, cfg.perm_seed))
        full.update({prefix + k: v for k, v in values.items()})
        samples.update({prefix + k: v for k, v in per_sample.items()})
    if "untrained/" in states:
        full.update(gaps(full, names))
    if jax.process_index() == 0:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **samples)
        files.write_bytes_atomic(workdir / "invariance_samples.npz", buffer.getvalue())
    return {k: v if isinstance(v, list) else float(np.round(v, 8)) for k, v in full.items()}


def equivariance(names: list[str], z: np.ndarray, z_t: np.ndarray, seed: int) -> dict:
    """equi/median/<transform> and equi/percentiles/<transform>: the equivariance alignment
    (spec §2.5) of the kept images under each transform (alignment.equivariance)."""
    out = {}
    for name, moved in zip(names, z_t):
        summary = metric.summary(alignment.equivariance(z, moved, seed))
        out[f"equi/median/{name}"] = summary["median"]
        out[f"equi/percentiles/{name}"] = summary["percentiles"]
    return out


def gaps(values: dict, names: list[str]) -> dict:
    """gap/<kind> (primary distance) for every kind measured at all of k = 3..7."""
    out = {}
    kinds = {n.rpartition("_k")[0] for n in names if "_k" in n}
    for kind in sorted(kinds):
        medians = [{int(n.rpartition("_k")[2]): values[f"{p}inv/median/{n}"]
                    for n in names if n.rpartition("_k")[0] == kind} for p in ("", "untrained/")]
        if all(k in medians[0] for k in metric.GAP_MAGNITUDES):
            out[f"gap/{kind}"] = metric.invariance_gap(*medians)
    return out

