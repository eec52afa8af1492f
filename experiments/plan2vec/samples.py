"""plan2vec's data: frames of trajectories, from a procedural maze or the user's arrays, and the
lib.data sources the training stages read them through.

The array format (an .npz file; the user's rope or StreetLearn data, or a maze dataset written
by the procedure as `samples.npz`):

    images      [N, H, W] or [N, H, W, C] frames, uint8 (0–255) or float in [0, 1]; or
                [T, S, H, W(, C)]: T trajectories of S frames each
    trajectory  [N] int, the trajectory of each frame (not needed with [T, S, …] images)
    step        [N] int, the frame's index in its trajectory (likewise)
    position    [N, 2] float, optional: the true position (x, y) of each frame, for
                evaluation only (the success radius, the true geodesic); never trained on

Sources (data.name), reading data.data_dir/samples.npz:
    experiments.plan2vec.samples:transitions  records {image: x_t, next: x_t+1} per transition
    experiments.plan2vec.samples:frames       records {image, node}: every frame
    experiments.plan2vec.samples:nodes        records {image, node, distances}: every frame
        with its row of the graph's shortest-path lengths (data.data_dir/distances.npy,
        −1 where unreachable)
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from experiments.plan2vec import mazes
from lib import graphs
from lib.config import ConfigError
from lib.data.records import ArrayRecords, Split

SAMPLES, DISTANCES = "samples.npz", "distances.npy"
UNREACHABLE = -1.0


class SamplesError(ConfigError):
    """User data that does not have the documented format."""


@dataclasses.dataclass(frozen=True)
class Samples:
    images: np.ndarray  # [N, H, W, C] float32 in [0, 1]
    trajectory: np.ndarray  # [N] int32
    step: np.ndarray  # [N] int32
    position: np.ndarray | None  # [N, 2] float64, or None where unknown
    renderer: str = ""  # how the frames were drawn: ours | mujoco ('' for the user's)
    state: bool = False  # images are the true positions as [N, 1, 1, 2] (inputs='state')

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path) -> None:
        arrays = {"images": self.images, "trajectory": self.trajectory, "step": self.step}
        if self.position is not None:
            arrays["position"] = self.position
        if self.renderer:
            arrays["renderer"] = np.array(self.renderer)
        if self.state:
            arrays["state"] = np.array(True)
        tmp = pathlib.Path(str(path) + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)


def _walks(positions: np.ndarray, images: np.ndarray, renderer: str) -> Samples:
    trajectories, steps = positions.shape[:2]
    return Samples(images, np.repeat(np.arange(trajectories, dtype=np.int32), steps),
                   np.tile(np.arange(steps, dtype=np.int32), trajectories),
                   positions.reshape(-1, 2), renderer)


def from_maze(m: mazes.Maze, *, trajectories: int, steps: int, step_size: float, size: int,
              seed: int) -> Samples:
    """Spec §6's random-walk data set of maze `m`, rendered at `size`×`size`."""
    walks = mazes.random_walks(m, trajectories, steps, step_size, seed)
    return _walks(walks, mazes.render(m, walks.reshape(-1, 2), size), "ours")


def from_pointmass(env: str, *, trajectories: int, steps: int, size: int, seed: int,
                   renderer: str) -> Samples:
    """Random-policy rollouts of a MuJoCo point-mass environment (pointmass.py)."""
    from experiments.plan2vec import pointmass

    positions, images, used = pointmass.rollouts(env, trajectories=trajectories, steps=steps,
                                                 size=size, seed=seed, renderer=renderer)
    return _walks(positions, images, used)


def load(path) -> Samples:
    """Reads and checks the array format above; SamplesError says what is wrong."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise SamplesError(f"plan2vec data file {str(path)!r} does not exist; give an .npz "
                           "with 'images' (and 'trajectory', 'step'), see "
                           "experiments/plan2vec/README.md")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise SamplesError(f"{path} is not a readable .npz file ({e})") from e
    return checked(arrays, str(path))


def checked(arrays: dict, where: str) -> Samples:
    if "state" in arrays and bool(arrays["state"]):  # written by the procedure, not the user
        frames = checked({**arrays, "state": False, "images": np.zeros(
            (len(arrays["images"]), 4, 4), np.uint8)}, where)
        return dataclasses.replace(frames, images=arrays["images"].astype(np.float32),
                                   state=True)
    if "images" not in arrays:
        raise SamplesError(f"{where}: no 'images' array (found {', '.join(arrays) or 'none'})")
    images = arrays["images"]
    if images.ndim in (5, 4) and "trajectory" not in arrays and (
            images.ndim == 5 or images.shape[-1] > 4):  # [T, S, H, W(, C)]
        t, s = images.shape[:2]
        images = images.reshape(t * s, *images.shape[2:])
        arrays = {**arrays, "trajectory": np.repeat(np.arange(t), s),
                  "step": np.tile(np.arange(s), t)}
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or min(images.shape[1:3]) < 4:
        raise SamplesError(f"{where}: 'images' has shape {arrays['images'].shape}; expected "
                           "[N, H, W], [N, H, W, C] or [T, S, H, W(, C)] with C = 1 or 3 and "
                           "H, W ≥ 4")
    n = len(images)
    for key in ("trajectory", "step"):
        if key not in arrays:
            raise SamplesError(f"{where}: no {key!r} array; [N, …] images need 'trajectory' "
                               "and 'step' ([N] ints), or give images as [T, S, H, W(, C)]")
        if arrays[key].shape != (n,) or not np.issubdtype(arrays[key].dtype, np.integer):
            raise SamplesError(f"{where}: {key!r} must be [N] = [{n}] integers, got shape "
                               f"{arrays[key].shape} ({arrays[key].dtype})")
    position = arrays.get("position")
    if position is not None and (position.shape != (n, 2) or not np.all(np.isfinite(position))):
        raise SamplesError(f"{where}: 'position' must be [N, 2] = [{n}, 2] finite numbers, got "
                           f"shape {position.shape}")
    if np.issubdtype(images.dtype, np.integer):
        if images.min() < 0 or images.max() > 255:
            raise SamplesError(f"{where}: integer images must lie in 0…255")
        images = images.astype(np.float32) / 255.0
    else:
        if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
            raise SamplesError(f"{where}: float images must lie in [0, 1] (and be finite)")
        images = images.astype(np.float32)
    trajectory = arrays["trajectory"].astype(np.int32)
    step = arrays["step"].astype(np.int32)
    if len(graphs.trajectory_pairs(trajectory, step)) == 0:
        raise SamplesError(f"{where}: no two frames follow each other in a trajectory (same "
                           "'trajectory', 'step' + 1): the local metric learns from such pairs")
    renderer = str(arrays["renderer"]) if "renderer" in arrays else ""
    return Samples(images, trajectory, step,
                   None if position is None else position.astype(np.float64), renderer)


def read(data_dir: str) -> Samples:
    if not data_dir:
        raise ConfigError("the plan2vec sources read data.data_dir/samples.npz: set "
                          "data.data_dir (the plan2vec procedure sets it)")
    return load(pathlib.Path(data_dir) / SAMPLES)


def _split(records, samples: Samples, what: str) -> Split:
    return Split("", records, samples.images.shape[1:], 0, 1.0, what, spatial=())


def transitions(data_cfg, split: str) -> Split:
    """Every (x_t, x_t+1) of a trajectory, in both splits (the local metric's eval measures
    how it separates the data set it builds the graph of)."""
    samples = read(data_cfg.data_dir)
    pairs = graphs.trajectory_pairs(samples.trajectory, samples.step)
    records = ArrayRecords(samples.images[pairs[:, 0]], None,
                           next=samples.images[pairs[:, 1]])
    return _split(records, samples, f"{data_cfg.data_dir}/{SAMPLES} transitions ({split})")


def nodes(data_cfg, split: str) -> Split:
    """Every frame with its node index and its row of graph distances."""
    samples = read(data_cfg.data_dir)
    path = pathlib.Path(data_cfg.data_dir) / DISTANCES
    if not path.is_file():
        raise ConfigError(f"{path} is missing: the graph stage of the plan2vec procedure "
                          "writes it")
    distances = np.load(path).astype(np.float32)
    if distances.shape != (len(samples), len(samples)):
        raise ConfigError(f"{path} has shape {distances.shape}, but there are {len(samples)} "
                          "frames: it belongs to another data set; delete it and rerun")
    records = ArrayRecords(samples.images, None, node=np.arange(len(samples), dtype=np.int32),
                           distances=distances)
    return _split(records, samples, f"{data_cfg.data_dir} nodes ({split})")


def frames(data_cfg, split: str) -> Split:
    """Every frame with its node index."""
    samples = read(data_cfg.data_dir)
    records = ArrayRecords(samples.images, None,
                           node=np.arange(len(samples), dtype=np.int32))
    return _split(records, samples, f"{data_cfg.data_dir} frames ({split})")
