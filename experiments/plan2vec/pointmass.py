"""The paper's point-mass environments (plan2vec.md §3) simulated with MuJoCo (the [mujoco]
extra): GoalMass (open room), C-Maze and 回-Maze.

A box agent of half-size 0.04 slides in x and y (two slide joints, no gravity) inside border
walls at ±0.29 (0.01 thick, inner faces at ±0.29) and the maze's walls (mazes.WALLS). An action
is one of the 8 forces {−0.5, 0, 0.5}² without (0, 0); each step resets the velocity, applies
the force and simulates frame_skip = 10 MuJoCo steps of dt = 0.01 (semi-implicit Euler), so
from rest an axis force F moves the agent 55·(F/m)·dt² = 0.0275 per step in free space with
the agent's mass m = 0.1 (ours: the spec gives no mass; this one makes a step about spec §6's
0.025). Walls stop the agent by contact.

Frames: top-down 64×64 grey images in [0, 1] (rows follow y, as mazes.render) from MuJoCo's
renderer through an orthographic camera, where an OpenGL backend works (MUJOCO_GL as set,
else egl, tried in a child process first); otherwise (or with renderer='ours') from
mazes.render of the simulated positions.
The goal marker is not drawn (the code moved it out of frame).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys

import numpy as np

from experiments.plan2vec import mazes
from lib.config import ConfigError

ENVS = {  # env name: (maze, start/goal box half-width, success radius)
    "point_goal_mass": ("open_room", 0.2, 0.04),
    "point_c_maze": ("c_maze", 0.24, 0.02),
    "point_hui_maze": ("hui_maze", 0.24, 0.02),
}
FORCE, MASS, DT, FRAME_SKIP = 0.5, 0.1, 0.01, 10
ACTIONS = FORCE * mazes.ACTIONS
RENDERERS = ("auto", "mujoco", "ours")
BORDER_THICKNESS = 0.01


def check(renderer: str) -> None:
    """The settings a point-mass run needs, before anything runs: MuJoCo, a known renderer."""
    if renderer not in RENDERERS:
        raise ConfigError(f"plan2vec.renderer={renderer!r}; valid choices: "
                          f"{', '.join(RENDERERS)}")
    _mujoco()


_PROBE = """
import mujoco
model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='.1'/></worldbody></mujoco>")
mujoco.Renderer(model, 8, 8).close()
"""


@functools.cache
def rendering_problem() -> str | None:
    """None where MuJoCo's offscreen renderer starts (with MUJOCO_GL as set, else egl), else
    why not. Tried in a child process: a missing OpenGL backend can abort the process that
    tries it, or fail `import mujoco` itself, not only raise."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    if env["MUJOCO_GL"].lower() in ("disable", "disabled", "off", "false", "0"):
        return f"MUJOCO_GL={env['MUJOCO_GL']} turns rendering off"
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              timeout=120, env=env)
    except subprocess.TimeoutExpired:
        return "starting it took over 120 s"
    if done.returncode == 0:
        return None
    lines = (done.stderr or f"exit code {done.returncode}").strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


def _mujoco():
    """The mujoco module. Unless the user set MUJOCO_GL, it is imported with egl where that
    renders, else with rendering off (the simulation needs no OpenGL)."""
    if "mujoco" not in sys.modules and "MUJOCO_GL" not in os.environ:
        if importlib.util.find_spec("mujoco") is not None:
            os.environ["MUJOCO_GL"] = "egl" if rendering_problem() is None else "disable"
    try:
        import mujoco
    except ImportError as e:
        raise ConfigError("the point-mass environments simulate with MuJoCo, which is not "
                          "installed: pip install -e '.[mujoco]'") from e
    except Exception as e:  # an OpenGL backend named by MUJOCO_GL that does not load
        raise ConfigError(f"import mujoco fails with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}"
                          f" ({type(e).__name__}: {e}); set MUJOCO_GL=egl, osmesa or disable "
                          "(rendering off: plan2vec.renderer='ours')") from e
    return mujoco


def _box(name, x0, x1, y0, y1, grey):
    return (f'<geom name="{name}" type="box" pos="{(x0 + x1) / 2} {(y0 + y1) / 2} 0.04" '
            f'size="{(x1 - x0) / 2} {(y1 - y0) / 2} 0.04" rgba="{grey} {grey} {grey} 1"/>')


def model_xml(m: mazes.Maze) -> str:
    """The MJCF of maze `m`: floor, border walls, the maze's walls, the agent, a top camera."""
    b, t = mazes.BORDER, BORDER_THICKNESS
    a = mazes.ARENA
    walls = [("north", -a, a, b, b + t), ("south", -a, a, -b - t, -b),
             ("east", b, b + t, -a, a), ("west", -b - t, -b, -a, a)]
    walls += [(f"wall{i}", *w) for i, w in enumerate(m.walls)]
    boxes = "\n    ".join(_box(n, x0, x1, y0, y1, mazes.WALL) for n, x0, x1, y0, y1 in walls)
    g, h = mazes.BACKGROUND, mazes.AGENT
    return f"""<mujoco model="point_mass_{m.name}">
  <option timestep="{DT}" gravity="0 0 0"/>
  <visual><headlight ambient="1 1 1" diffuse="0 0 0" specular="0 0 0"/>
    <quality shadowsize="0"/></visual>
  <worldbody>
    <geom name="floor" type="plane" size="{2 * a} {2 * a} 0.01" contype="0" conaffinity="0"
          rgba="{g} {g} {g} 1"/>
    {boxes}
    <body name="agent" pos="0 0 0.04">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <geom name="agent" type="box" size="{h} {h} {h}" mass="{MASS}"
            rgba="{mazes.AGENT_GREY} {mazes.AGENT_GREY} {mazes.AGENT_GREY} 1"/>
    </body>
    <camera name="top" pos="0 0 1" projection="orthographic" fovy="{2 * a}"/>
  </worldbody>
  <actuator>
    <motor name="fx" joint="x" gear="1"/>
    <motor name="fy" joint="y" gear="1"/>
  </actuator>
</mujoco>"""


class PointMass:
    """One point-mass environment: reset to a position, step with a force, render."""

    def __init__(self, env: str, size: int = 64, renderer: str = "auto"):
        if env not in ENVS:
            raise ConfigError(f"unknown point-mass environment {env!r}; valid: "
                              f"{', '.join(ENVS)}")
        check(renderer)
        self.mujoco = _mujoco()
        self.maze = mazes.maze(ENVS[env][0])
        self.size = size
        self.model = self.mujoco.MjModel.from_xml_string(model_xml(self.maze))
        self.data = self.mujoco.MjData(self.model)
        self.renderer, self.renderer_name = None, "ours"
        if renderer != "ours":
            problem = rendering_problem() if hasattr(self.mujoco, "Renderer") else (
                f"this mujoco has no renderer (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r})")
            if problem is None:
                self.renderer = self.mujoco.Renderer(self.model, size, size)
                self.renderer_name = "mujoco"
            elif renderer == "mujoco":
                raise ConfigError(f"MuJoCo's renderer cannot start here ({problem}); set "
                                  "plan2vec.renderer='ours' or another MUJOCO_GL")

    def reset(self, xy) -> np.ndarray:
        self.data.qpos[:] = xy
        self.data.qvel[:] = 0
        self.mujoco.mj_forward(self.model, self.data)
        return self.position()

    def position(self) -> np.ndarray:
        return self.data.qpos[:2].copy()

    def step(self, force) -> np.ndarray:
        """Velocity reset, then the force for FRAME_SKIP MuJoCo steps; the new position."""
        self.data.qvel[:] = 0
        self.data.ctrl[:] = force
        self.mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        return self.position()

    def render(self) -> np.ndarray:
        """[size, size, 1] grey frame of the current state."""
        if self.renderer is None:
            return mazes.render(self.maze, self.position()[None], self.size)[0]
        self.renderer.update_scene(self.data, camera="top")
        rgb = self.renderer.render().astype(np.float32) / 255.0
        return np.flipud(rgb.mean(-1))[..., None].copy()  # row 0 at the bottom (y = −0.3)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()


def rollouts(env: str, *, trajectories: int, steps: int, size: int, seed: int,
             renderer: str = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """Random-policy rollouts: (positions [T, steps, 2], frames [T·steps, size, size, 1],
    the renderer used). Starts uniform in the env's start box outside the walls."""
    sim = PointMass(env, size, renderer)
    half = ENVS[env][1]
    rng = np.random.default_rng(seed)
    positions = np.empty((trajectories, steps, 2))
    frames = np.empty((trajectories * steps, size, size, 1), np.float32)
    try:
        for t in range(trajectories):
            start = rng.uniform(-half, half, 2)
            while not sim.maze.free(start):
                start = rng.uniform(-half, half, 2)
            sim.reset(start)
            for s in range(steps):
                positions[t, s] = sim.position()
                frames[t * steps + s] = sim.render()
                sim.step(ACTIONS[rng.integers(len(ACTIONS))])
    finally:
        sim.close()
    return positions, frames, sim.renderer_name
