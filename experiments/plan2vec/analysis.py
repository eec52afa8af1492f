"""plan2vec's exact checks and plots, on finished runs of experiments.plan2vec.procedure.

    python -m experiments.plan2vec.analysis WORKDIR [--out FILE.png]

plots a run: the maze with frames coloured by their true position, the embedding coloured the
same way, and planned paths on the maze.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from experiments.plan2vec import mazes, pointmass, procedure, samples

PATHS_SHOWN = 6


def distance_checks(run_dir: pathlib.Path, triples: int, seed: int) -> dict:
    """Symmetry (max |D − Dᵀ|) and triangle-inequality violations of a run's graph
    distances."""
    d = np.load(run_dir / samples.DISTANCES).astype(np.float64)
    violations, checked = triangle_violations(d, triples, seed)
    return {"asymmetry": float(np.max(np.abs(d - d.T))), "triangle_violations": violations,
            "triples": checked}


def triangle_violations(distances: np.ndarray, triples: int, seed: int) -> tuple[int, int]:
    """(violations of D[i,k] ≤ (D[i,j] + D[j,k])·(1 + 1e-6) + 1e-9 (float32 files) over
    random triples of nodes connected to each other, triples checked)."""
    rng = np.random.default_rng(seed)
    i, j, k = rng.integers(len(distances), size=(3, triples))
    d_ik, d_ij, d_jk = distances[i, k], distances[i, j], distances[j, k]
    valid = (d_ik >= 0) & (d_ij >= 0) & (d_jk >= 0)
    bound = (d_ij[valid] + d_jk[valid]) * (1 + 1e-6) + 1e-9
    return int(np.sum(d_ik[valid] > bound)), int(valid.sum())


def gradient_check(data_dir: pathlib.Path, lr: float = 0.05) -> dict:
    """Two plain-SGD steps of the embedding stage from its initialisation: the second step's
    update must be −lr·∇L(θ₁; batch₂), the gradient of its own batch at its own parameters
    (computed here by jax.grad of the task's loss, outside the trainer's step), not
    −lr·(∇L(θ₀; batch₁) + ∇L(θ₁; batch₂)) as in the original code's loop, which never zeroed
    the gradients."""
    import jax

    from lib import config as config_lib
    from lib import data, train

    config = config_lib.load_file(procedure_config(), "quick=True")
    config = config_lib.updated(procedure.stage(config, "embedding", data_dir), {
        "optim.name": "sgd", "optim.momentum": 0.0, "optim.lr": lr, "optim.schedule": "constant",
        "optim.weight_decay": 0.0})
    setup = train.build(config)
    batches = data.train_iterator(config.data, seed=config.seed)
    first, second = next(batches), next(batches)
    state0 = setup.init_state
    state1, _ = train.train_step(setup, state0, first)
    state2, _ = train.train_step(setup, state1, second)
    names = setup.trainable.names

    def loss_at(params, state, batch, rng_state):
        rng = jax.random.fold_in(jax.random.wrap_key_data(rng_state["rng"]), rng_state["step"])
        model = setup.merge({**state["params"], **params}, state["batch_stats"],
                            state.get("model_state"))
        return setup.task.train_loss(model, batch, rng, rng_state["step"])[0]

    def grads(state, batch):
        return jax.grad(loss_at)({k: state["params"][k] for k in names}, state, batch, state)

    g0, g1 = grads(state0, first), grads(state1, second)
    update = {k: np.asarray(state2["params"][k]) - np.asarray(state1["params"][k])
              for k in names}
    fresh = max(float(np.max(np.abs(update[k] + lr * np.asarray(g1[k])))) for k in names)
    accumulated = max(float(np.max(np.abs(lr * np.asarray(g0[k])))) for k in names)
    norm = float(np.sqrt(sum(np.sum(np.square(u)) for u in update.values())))
    return {"fresh_error": fresh, "accumulated_gap": accumulated, "update_norm": norm}


def procedure_config() -> pathlib.Path:
    return pathlib.Path(__file__).parent / "configs" / "maze.py"


def _colours(positions: np.ndarray) -> np.ndarray:
    """RGB per frame from its true position: red follows x, blue follows y."""
    scaled = np.clip((positions + mazes.REACH) / (2 * mazes.REACH), 0, 1)
    return np.stack([scaled[:, 0], 0.35 * np.ones(len(scaled)), scaled[:, 1]], 1)


def _maze_of(run_dir: pathlib.Path) -> mazes.Maze | None:
    cfg = json.loads((run_dir / "config.json").read_text())["plan2vec"]
    if cfg["env"] == "file":
        return None
    if cfg["env"] in pointmass.ENVS:
        return mazes.maze(pointmass.ENVS[cfg["env"]][0])
    return mazes.maze(cfg["env"], cfg["extra_walls"])


def plot_run(run_dir: pathlib.Path, out: pathlib.Path) -> None:
    """Three panels: frames on the maze coloured by position; the embedding (its first two
    principal components) coloured the same; plan2vec's first planned paths on the maze
    (dotted where the plan never came within the success radius of its goal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = samples.load(run_dir / samples.SAMPLES)
    if frames.position is None:
        raise ValueError(f"{run_dir}: the frames have no true positions to plot")
    codes = np.load(run_dir / procedure.EMBEDDING)
    planning = json.loads((run_dir / "planning.json").read_text())["values"]
    m = _maze_of(run_dir)
    colours = _colours(frames.position)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    extent = (-mazes.ARENA, mazes.ARENA, -mazes.ARENA, mazes.ARENA)
    for ax in (axes[0], axes[2]):
        if m is not None:
            ax.imshow(mazes.background(m, 240), cmap="gray", vmin=0, vmax=1, origin="lower",
                      extent=extent)
        ax.set_xlim(extent[:2])
        ax.set_ylim(extent[2:])
        ax.set_aspect("equal")
    axes[0].scatter(*frames.position.T, c=colours, s=4)
    axes[0].set_title("frames, coloured by true position")
    centred = codes - codes.mean(0)
    components = np.linalg.svd(centred, full_matrices=False)[2][:2] if codes.shape[1] > 1 else \
        np.eye(1)
    projected = centred @ components.T
    if projected.shape[1] == 1:
        projected = np.concatenate([projected, np.zeros_like(projected)], 1)
    axes[1].scatter(*projected.T, c=colours, s=4)
    axes[1].set_title(f"embedding f(x) (latent {codes.shape[1]}; first 2 PCs)")
    radius = json.loads((run_dir / "config.json").read_text())["plan2vec"]["success_radius"]
    for path, (start, goal) in list(zip(planning["paths"], planning["pairs"]))[:PATHS_SHOWN]:
        xy = frames.position[path]
        reached = np.linalg.norm(xy - frames.position[goal], axis=1).min() < radius
        line, = axes[2].plot(*xy.T, "-" if reached else ":", lw=1.5)
        axes[2].plot(*frames.position[start], "o", color=line.get_color())
        axes[2].plot(*frames.position[goal], "*", ms=12, color=line.get_color())
    axes[2].set_title(f"greedy plans (o start, * goal, dotted: failed); success "
                      f"{planning['plan/success/plan2vec']:.2f}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_latents(success: dict, out: pathlib.Path) -> None:
    """Planning success against the latent size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(success)
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    ax.plot(sizes, [success[s] for s in sizes], "o-")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_ylim(0, 1)
    ax.set_xlabel("latent size")
    ax.set_ylabel("greedy planning success")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args(argv)
    if not (args.workdir / "planning.json").is_file():
        print(f"{args.workdir} is not a finished plan2vec run (no planning.json)",
              file=sys.stderr)
        return 2
    out = args.out or args.workdir / "plan2vec.png"
    try:
        plot_run(args.workdir, out)
    except (ValueError, OSError) as e:
        print(str(e), file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
