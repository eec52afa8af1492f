"""Plan2vec end to end (plan2vec.md §2, §6), one stage after the other, resumable:

    workdir/samples.npz      the frames (a seeded procedural maze, or the user's arrays)
    workdir/local_metric/    lib.train.run of tasks.LocalMetric on the trajectories' transitions
    workdir/phi.npy          the symmetrised all-pairs local metric φ (lib.pairwise.chunked)
    workdir/graph.npz        the graph: top-k or threshold edges + trajectory edges (lib.graphs)
    workdir/distances.npy    its all-pairs shortest paths (scipy csgraph; −1: no path)
    workdir/embedding/       lib.train.run of tasks.Distillation on the frames and distances
    workdir/vae/             lib.train.run of tasks.VariationalAutoencoder (plan2vec.vae)
    workdir/embedding.npy    f(x) of every frame
    workdir/planning.json    planning.py's numbers, kept with the settings they were made with
    workdir/config.json, results.json

Running it again resumes: finished stages are read back, and the evaluation is redone only
when its settings change. A training stage refuses a workdir whose run it depends on changed
(lib.train), and graph.json keeps the graph's settings: other graph settings need a new
workdir. With plan2vec.metric_workdir the frames and φ of that run are reused, and only the
graph, the embedding and the evaluation are made here (graph and latent sweeps).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

import jax
import ml_collections
import numpy as np
from scipy import sparse

from experiments.plan2vec import config as paper_config
from experiments.plan2vec import mazes, models, planning, pointmass, samples
from lib import config as config_lib
from lib import features, files, graphs, pairwise, procedure, train

INPUTS = ("frames", "state")
EMBEDDING, PHI, GRAPH = "embedding.npy", "phi.npy", "graph.npz"
DATA_KEYS = ("env", "data_file", "extra_walls", "trajectories", "trajectory_steps",
             "step_size", "image_size", "renderer", "inputs")
METRIC_KEYS = ("metric_net", "metric_loss", "self_pair_probability", "metric_steps",
               "metric_batch", "metric_lr")
GRAPH_KEYS = ("neighbours", "threshold", "trajectory_edges", "edge_weight")
EMBEDDING_KEYS = ("objective", "encoder", "encoder_widths", "latent", "embedding_steps",
                  "embedding_batch", "embedding_lr", "centre_weight", "centre_nodes",
                  "vi_rollouts", "vi_horizon", "vi_epsilon", "vi_relabel", "vi_updates",
                  "vi_batch", "vi_gamma", "vi_reward_scale", "vi_target_rate")
OBJECTIVES = {"distill": "Distillation", "value_iteration": "ValueIteration"}
EVAL_KEYS = ("eval_pairs", "eval_seed", "horizon", "success_radius", "gt_radius",
             "long_edge", "h_scale")
VAE_KEYS = ("vae_latent", "vae_widths", "vae_steps", "vae_batch", "vae_lr", "vae_warmup",
            "vae_sigma")


@dataclasses.dataclass(frozen=True)
class Stage:
    """A training stage: its task and source, the plan2vec keys holding its batch size, steps
    and learning rate, and the plan2vec keys it depends on."""

    task: str
    source: str
    batch: str
    steps: str
    lr: str
    keys: tuple


STAGES = {
    "metric": Stage("LocalMetric", "transitions", "metric_batch", "metric_steps", "metric_lr",
                    DATA_KEYS + METRIC_KEYS),
    "embedding": Stage("Distillation", "nodes", "embedding_batch", "embedding_steps",
                       "embedding_lr", DATA_KEYS + METRIC_KEYS + GRAPH_KEYS + EMBEDDING_KEYS
                       + ("metric_workdir",)),
    "vae": Stage("VariationalAutoencoder", "frames", "vae_batch", "vae_steps", "vae_lr",
                 DATA_KEYS + VAE_KEYS),
}


def make_samples(cfg, seed: int) -> samples.Samples:
    """The frames (the user's file, maze random walks or point-mass rollouts seeded by
    `seed`), or with inputs='state' their true positions as 1×1×2 inputs."""
    frames = _frames(cfg, seed)
    if cfg.inputs == "frames":
        return frames
    if frames.position is None:
        raise config_lib.ConfigError("plan2vec.inputs='state' trains on the true positions, "
                                     "which these frames do not have ('position')")
    return dataclasses.replace(frames, images=frames.position.reshape(-1, 1, 1, 2).astype(
        np.float32), state=True)


def _frames(cfg, seed: int) -> samples.Samples:
    if cfg.env == "file":
        if not cfg.data_file:
            raise config_lib.ConfigError("plan2vec.env='file' reads plan2vec.data_file: give "
                                         "the .npz of your frames")
        return samples.load(cfg.data_file)
    if cfg.data_file:
        raise config_lib.ConfigError(f"plan2vec.data_file is set but plan2vec.env="
                                     f"{cfg.env!r} generates its frames; set env='file' to "
                                     "read it")
    if cfg.env in pointmass.ENVS:
        return samples.from_pointmass(cfg.env, trajectories=cfg.trajectories,
                                      steps=cfg.trajectory_steps, size=cfg.image_size,
                                      seed=seed, renderer=cfg.renderer)
    return samples.from_maze(the_maze(cfg), trajectories=cfg.trajectories,
                             steps=cfg.trajectory_steps, step_size=cfg.step_size,
                             size=cfg.image_size, seed=seed)


def the_maze(cfg) -> mazes.Maze:
    try:
        return mazes.maze(cfg.env, cfg.extra_walls)
    except mazes.MazeError as e:
        raise config_lib.ConfigError(f"plan2vec.env / extra_walls: {e}") from e


def check(config: ml_collections.ConfigDict) -> None:
    """Settings every stage needs, checked before anything runs."""
    cfg = config.plan2vec
    if cfg.env in pointmass.ENVS:
        pointmass.check(cfg.renderer)
    elif cfg.env != "file":
        the_maze(cfg)
    if cfg.neighbours == 0 and cfg.threshold <= 0:
        raise config_lib.ConfigError("plan2vec.neighbours=0 builds the graph from "
                                     "plan2vec.threshold, which must then be > 0")
    if cfg.objective not in OBJECTIVES:
        raise config_lib.ConfigError(f"plan2vec.objective={cfg.objective!r}; valid choices: "
                                     f"{', '.join(OBJECTIVES)}")
    if cfg.objective == "value_iteration" and cfg.vi_relabel > cfg.vi_horizon:
        raise config_lib.ConfigError(f"plan2vec.vi_relabel={cfg.vi_relabel} exceeds "
                                     f"plan2vec.vi_horizon={cfg.vi_horizon}: no transition "
                                     "would ever be relabelled")
    if cfg.inputs not in INPUTS:
        raise config_lib.ConfigError(f"plan2vec.inputs={cfg.inputs!r}; valid choices: "
                                     f"{', '.join(INPUTS)}")
    if cfg.edge_weight not in graphs.WEIGHTS:
        raise config_lib.ConfigError(f"plan2vec.edge_weight={cfg.edge_weight!r}; valid "
                                     f"choices: {', '.join(graphs.WEIGHTS)}")
    if cfg.metric_net not in models.METRIC_NETS:
        raise config_lib.ConfigError(f"plan2vec.metric_net={cfg.metric_net!r}; valid "
                                     f"choices: {', '.join(models.METRIC_NETS)}")
    if cfg.encoder not in models.ENCODERS:
        raise config_lib.ConfigError(f"plan2vec.encoder={cfg.encoder!r}; valid choices: "
                                     f"{', '.join(models.ENCODERS)}")


def check_sizes(config, count: int) -> None:
    """Settings that depend on the number of frames."""
    cfg = config.plan2vec
    if cfg.neighbours > count - 1:
        raise config_lib.ConfigError(f"plan2vec.neighbours={cfg.neighbours} nearest "
                                     f"neighbours, but the data has {count} frames: k must "
                                     f"be at most {count - 1}")
    if cfg.centre_nodes > cfg.embedding_batch:
        raise config_lib.ConfigError(f"plan2vec.centre_nodes={cfg.centre_nodes} exceeds "
                                     f"plan2vec.embedding_batch={cfg.embedding_batch}")


def stage(config, kind: str, data_dir) -> ml_collections.ConfigDict:
    """The training config of stage `kind` (STAGES). The plan2vec keys a stage does not
    depend on are set to their defaults, so that changing them (the evaluation's, or the
    embedding's for the local metric) never makes a finished stage refuse its workdir;
    changing one it depends on does (lib.train)."""
    cfg, spec = config.plan2vec, STAGES[kind]
    defaults = paper_config.get_config().plan2vec
    task = OBJECTIVES[cfg.objective] if kind == "embedding" else spec.task
    batch = cfg.vi_batch if task == "ValueIteration" else cfg[spec.batch]
    return procedure.stage_config(config, **{
        "task": f"experiments.plan2vec.tasks:{task}",
        "data.name": f"experiments.plan2vec.samples:{spec.source}",
        "data.data_dir": str(data_dir),
        "data.normalization": "none", "data.augment": "none",
        "data.batch_size": batch, "total_steps": cfg[spec.steps],
        "optim.lr": cfg[spec.lr],
        **{f"plan2vec.{k}": defaults[k] for k in cfg if k not in spec.keys},
    })


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    check(config)
    cfg = config.plan2vec
    workdir = files.as_path(workdir)
    source = files.as_path(cfg.metric_workdir) if cfg.metric_workdir else workdir
    if cfg.metric_workdir and not (source / PHI).exists():
        raise config_lib.ConfigError(f"plan2vec.metric_workdir={cfg.metric_workdir!r} holds no "
                                     f"finished local metric ({PHI}); run it first")
    if cfg.metric_workdir:
        _check_source(config, source)
    frames = _samples(config, source)
    check_sizes(config, len(frames))
    _check_graph_record(config, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0 and not (workdir / samples.SAMPLES).exists():
        frames.save(workdir / samples.SAMPLES)
    results = {}
    if not cfg.metric_workdir:
        results["local_metric"] = train.run(stage(config, "metric", workdir),
                                            workdir / "local_metric")
        if not (workdir / PHI).exists():
            _save(workdir / PHI, local_metric_matrix(workdir / "local_metric", frames.images,
                                                     cfg.chunk))
    phi = np.load(source / PHI)
    _graph(config, workdir, frames, phi)
    results["embedding"] = train.run(stage(config, "embedding", workdir),
                                     workdir / "embedding")
    if cfg.vae:
        results["vae"] = train.run(stage(config, "vae", workdir), workdir / "vae")
    values = procedure.evaluation(workdir / "planning.json", settings(config),
                                  lambda: _evaluate(config, workdir, frames, phi))
    summary = {k: v for k, v in values.items() if k not in ("paths", "pairs")}
    summary["data/renderer"] = frames.renderer or "(the user's frames)"
    for name, stage_results in results.items():
        summary[name] = {k: v for k, v in stage_results.items() if k.startswith("eval/")}
    return procedure.finish(workdir, config, summary)


def _samples(config, folder) -> samples.Samples:
    """The frames saved in `folder` by an earlier start (or by the metric_workdir run), else
    made now (saved by the caller once every check has passed)."""
    path = folder / samples.SAMPLES
    if path.exists():
        return samples.load(path)
    return make_samples(config.plan2vec, config.seed)


def _check_source(config, source) -> None:
    """metric_workdir must be a finished run of the same frames and local metric."""
    path = source / "config.json"
    if not (source / "results.json").exists() or not path.exists():
        raise config_lib.ConfigError(f"plan2vec.metric_workdir={str(source)!r} is not a "
                                     "finished plan2vec run; finish it first")
    saved = json.loads(path.read_text())
    keys = ("seed", *[f"plan2vec.{k}" for k in DATA_KEYS + METRIC_KEYS])

    def value(tree, key):
        for part in key.split("."):
            tree = tree.get(part) if isinstance(tree, dict) else None
        return tree

    mine = json.loads(config.to_json_best_effort())
    differ = [k for k in keys if value(saved, k) != value(mine, k)]
    if differ:
        listed = ", ".join(f"{k}: {value(saved, k)!r} there, {value(mine, k)!r} here"
                           for k in differ)
        raise config_lib.ConfigError(
            f"plan2vec.metric_workdir={str(source)!r} made its frames and local metric with "
            f"other settings ({listed}); use the same ones")


def _graph_settings(config) -> dict:
    return {k: config.plan2vec[k] for k in GRAPH_KEYS}


def _check_graph_record(config, workdir) -> None:
    """A workdir keeps the graph it was built with: its embedding was trained on it."""
    record = workdir / "graph.json"
    if record.exists() and json.loads(record.read_text()) != _graph_settings(config):
        raise config_lib.ConfigError(
            f"{workdir} holds a graph built with {record.read_text().strip()}, not "
            f"{json.dumps(_graph_settings(config))}; for other graph settings pass a new "
            f"--workdir with plan2vec.metric_workdir={str(workdir)!r} (the trained local "
            "metric is reused)")


def _graph(config, workdir, frames: samples.Samples, phi: np.ndarray) -> None:
    """The graph and its shortest paths, unless this workdir has them."""
    if (workdir / samples.DISTANCES).exists():
        return
    graph = build_graph(config.plan2vec, phi, frames)
    distances = graphs.shortest_paths(graph)
    distances = np.where(np.isfinite(distances), distances, samples.UNREACHABLE)
    if jax.process_index() == 0:
        path = workdir / GRAPH
        sparse.save_npz(str(path) + ".tmp.npz", graph)
        pathlib.Path(str(path) + ".tmp.npz").replace(path)
        files.write_text_atomic(workdir / "graph.json", json.dumps(_graph_settings(config)))
        _save(workdir / samples.DISTANCES, distances.astype(np.float32))


def _save(path, array: np.ndarray) -> None:
    if jax.process_index() == 0:
        tmp = pathlib.Path(str(path) + ".tmp.npy")
        np.save(tmp, array)
        tmp.replace(path)


def build_graph(cfg, phi: np.ndarray, frames: samples.Samples):
    """The graph of plan2vec.neighbours / threshold; trajectory edges get the threshold's
    weight in 'phi' mode, or without one the mean φ of the k-th nearest."""
    forced = graphs.trajectory_pairs(frames.trajectory, frames.step) if cfg.trajectory_edges \
        else None
    threshold = cfg.threshold if cfg.threshold > 0 else None
    forced_weight = threshold if threshold is not None else 1.0
    if threshold is None and cfg.edge_weight == "phi" and forced is not None:
        off_diagonal = np.where(np.eye(len(phi), dtype=bool), np.inf, phi)
        kth = np.partition(off_diagonal, cfg.neighbours - 1, axis=1)[:, cfg.neighbours - 1]
        forced_weight = float(np.mean(kth))
    try:
        return graphs.build(phi, k=cfg.neighbours, threshold=threshold, forced=forced,
                            forced_weight=forced_weight, weight=cfg.edge_weight)
    except graphs.GraphError as e:
        raise config_lib.ConfigError(f"plan2vec graph: {e}") from e


def local_metric_matrix(metric_dir, images: np.ndarray, chunk: int) -> np.ndarray:
    """The symmetrised φ of the trained local metric between all frames:
    (φ(a, b) + φ(b, a)) / 2, with progress on stderr."""
    config, setup, state = train.load_final(metric_dir)
    task = setup.task
    t0 = time.perf_counter()

    def score(a, b, state):
        ab, ba = models.pair_block(setup.model(state), a, b)
        return (task.phi(ab) + task.phi(ba)) / 2

    def progress(done, total):
        if done == total or done % 20 == 0:
            elapsed = time.perf_counter() - t0
            print(f"  φ blocks {done}/{total} | {elapsed:.0f} s | ETA "
                  f"{elapsed / done * (total - done):.0f} s", file=sys.stderr, flush=True)

    return pairwise.chunked(score, images, chunk, args=(state,), symmetric=True,
                            progress=progress)


def settings(config) -> ml_collections.ConfigDict:
    """What planning.json depends on besides the trained stages (which refuse a change of
    what they depend on)."""
    return ml_collections.ConfigDict({k: config.plan2vec[k] for k in (*EVAL_KEYS, "vae")})


def embed(run_dir) -> np.ndarray:
    """The codes of every frame, in order: f(x) of the embedding, the VAE's latent mean."""
    config, _, state = train.load_final(run_dir)
    trainer = train.Trainer(config)
    out = features.extract(trainer, trainer.place(state),
                           lambda model, batch: model(batch["image"], train=False))
    return out["features"][np.argsort(out["node"])]


def _evaluate(config, workdir, frames: samples.Samples, phi: np.ndarray) -> dict:
    cfg = config.plan2vec
    codes = embed(workdir / "embedding")
    _save(workdir / EMBEDDING, codes)
    vae = embed(workdir / "vae") if cfg.vae else None
    inputs = planning.Inputs(frames.images.reshape(len(frames), -1), frames.position,
                             sparse.load_npz(workdir / GRAPH), phi, codes, vae)
    pairs = planning.eval_pairs(cfg.eval_pairs, len(frames), cfg.eval_seed)
    values = planning.evaluate(inputs, pairs=pairs, horizon=cfg.horizon,
                               radius=cfg.success_radius, gt_radius=cfg.gt_radius,
                               long_edge=cfg.long_edge, h_scale=cfg.h_scale,
                               seed=cfg.eval_seed)
    values["pairs"] = pairs.tolist()
    return values
