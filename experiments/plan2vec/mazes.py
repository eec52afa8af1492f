"""Procedural mazes of plan2vec.md §6: free space, seeded random walks, and 32×32 grey
top-down renderings, offline and without MuJoCo.

Coordinates: the arena is [−0.3, 0.3]²; the agent's centre moves in [−0.25, 0.25]² outside
every wall inflated by the agent's half-size 0.04. Image pixel (row i, column j) is centred at
(x, y) = (c(j), c(i)), c(i) = −0.3 + 0.6·(i + 0.5)/size: columns follow x, rows follow y
(row 0 at y = −0.3). Grey levels: background 0.85, border (|x| or |y| > 0.29) and walls 0.15,
agent (a square of half-size 0.04) 0.35, drawn last; a pixel is covered when its centre lies
in the shape (closed rectangles).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

ARENA = 0.3
BORDER = 0.29
REACH = 0.25  # the agent's centre stays in [−REACH, REACH]²
AGENT = 0.04  # agent half-size
BACKGROUND, WALL, AGENT_GREY = 0.85, 0.15, 0.35
ACTIONS = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)],
                   np.float64)
GRID = 0.0025  # spacing of the agent-centre grid on which connectivity is checked

# walls as (x_min, x_max, y_min, y_max)
WALLS = {
    "open_room": (),
    "c_maze": ((-0.28, 0.08, -0.05, 0.05),),  # a bar from the west wall to x = 0.08
    "hui_maze": ((-0.05, 0.05, -0.05, 0.05),),  # 回: a central block of half-size 0.05
}


class MazeError(ValueError):
    """A maze that cannot hold the experiment (disconnected or empty free space)."""


@dataclasses.dataclass(frozen=True)
class Maze:
    name: str
    walls: tuple  # ((x_min, x_max, y_min, y_max), …)

    def free(self, xy: np.ndarray) -> np.ndarray:
        """Whether agent centres `xy` [..., 2] are free: inside the reach, outside every wall
        inflated by the agent's half-size."""
        xy = np.asarray(xy, np.float64)
        x, y = xy[..., 0], xy[..., 1]
        ok = (np.abs(x) <= REACH) & (np.abs(y) <= REACH)
        for x0, x1, y0, y1 in self.walls:
            ok &= ~((x >= x0 - AGENT) & (x <= x1 + AGENT) & (y >= y0 - AGENT)
                    & (y <= y1 + AGENT))
        return ok


def maze(name: str, extra_walls=()) -> Maze:
    """A named maze (WALLS) with optional extra walls, a flat sequence of 4·k numbers; raises
    MazeError if its free space is empty or falls apart into several pieces."""
    if name not in WALLS:
        raise MazeError(f"unknown maze {name!r}; valid choices: {', '.join(WALLS)}")
    extra = tuple(float(v) for v in extra_walls)
    if len(extra) % 4:
        raise MazeError(f"extra walls are given as x_min, x_max, y_min, y_max per wall: "
                        f"{len(extra)} numbers is not a multiple of 4")
    walls = WALLS[name] + tuple(extra[i:i + 4] for i in range(0, len(extra), 4))
    for w in walls:
        if w[0] >= w[1] or w[2] >= w[3]:
            raise MazeError(f"wall {w}: needs x_min < x_max and y_min < y_max")
    result = Maze(name, walls)
    check_connected(result)
    return result


def free_grid(m: Maze) -> np.ndarray:
    """Free agent centres on a GRID-spaced lattice over [−REACH, REACH]² ([n, n] bool, rows
    follow y)."""
    axis = np.linspace(-REACH, REACH, int(round(2 * REACH / GRID)) + 1)
    xx, yy = np.meshgrid(axis, axis)
    return m.free(np.stack([xx, yy], -1))


def check_connected(m: Maze) -> None:
    grid = free_grid(m)
    if not grid.any():
        raise MazeError(f"maze {m.name!r} with walls {m.walls} leaves no free space for the "
                        "agent")
    _, count = ndimage.label(grid, structure=np.ones((3, 3)))
    if count > 1:
        raise MazeError(f"maze {m.name!r} with walls {m.walls}: the free space falls into "
                        f"{count} disconnected parts, so some goals cannot be reached; remove "
                        "or shorten the walls that cut it")


def random_walks(m: Maze, trajectories: int, steps: int, step_size: float, seed: int
                 ) -> np.ndarray:
    """[trajectories, steps, 2] agent centres: starts uniform in free space, then uniform
    random actions of length step_size·(±1 or 0 per axis); a move into non-free space is
    rejected (the agent stays)."""
    rng = np.random.default_rng(seed)
    starts = np.empty((0, 2))
    while len(starts) < trajectories:
        draws = rng.uniform(-REACH, REACH, (4 * trajectories, 2))
        starts = np.concatenate([starts, draws[m.free(draws)]])
    position = starts[:trajectories]
    out = np.empty((trajectories, steps, 2))
    for t in range(steps):
        out[:, t] = position
        moved = position + step_size * ACTIONS[rng.integers(len(ACTIONS), size=trajectories)]
        position = np.where(m.free(moved)[:, None], moved, position)
    return out


def pixel_centres(size: int) -> np.ndarray:
    return -ARENA + 2 * ARENA * (np.arange(size) + 0.5) / size


def background(m: Maze, size: int) -> np.ndarray:
    """[size, size] float32: the maze without the agent."""
    c = pixel_centres(size)
    x, y = np.meshgrid(c, c)
    image = np.full((size, size), BACKGROUND, np.float32)
    image[(np.abs(x) > BORDER) | (np.abs(y) > BORDER)] = WALL
    for x0, x1, y0, y1 in m.walls:
        image[(x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)] = WALL
    return image


def render(m: Maze, positions: np.ndarray, size: int) -> np.ndarray:
    """[N, size, size, 1] float32 renderings of the agent at `positions` [N, 2]."""
    positions = np.asarray(positions, np.float64).reshape(-1, 2)
    c = pixel_centres(size)
    in_x = np.abs(c[None, :] - positions[:, :1]) <= AGENT + 1e-12  # [N, size] columns
    in_y = np.abs(c[None, :] - positions[:, 1:]) <= AGENT + 1e-12  # [N, size] rows
    agent = in_y[:, :, None] & in_x[:, None, :]
    images = np.where(agent, np.float32(AGENT_GREY), background(m, size)[None])
    return images[..., None].astype(np.float32)
