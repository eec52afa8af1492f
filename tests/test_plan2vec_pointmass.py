"""The MuJoCo point-mass environments (experiments/plan2vec/pointmass.py): spec §3's dynamics
against the semi-implicit Euler sum by hand, walls stopping the agent, MuJoCo's frames against
our renderer, and a quick run of configs/pointmass.py. Skipped where `mujoco` is absent."""

import importlib.util

import numpy as np
import pytest

from experiments.plan2vec import mazes, pointmass, procedure
from lib import config as config_lib
from tests.helpers import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mujoco") is None,
                                reason="the [mujoco] extra is not installed")

CONFIG = REPO / "experiments/plan2vec/configs/pointmass.py"
# from rest, a force F for 10 steps of dt: v_k = k·(F/m)·dt, x_10 = (F/m)·dt²·(1 + … + 10)
STEP = pointmass.FORCE / pointmass.MASS * pointmass.DT**2 * 55


@pytest.fixture(scope="module")
def c_maze():
    sim = pointmass.PointMass("point_c_maze", 64, renderer="ours")
    yield sim
    sim.close()


def test_spec_constants_and_actions():
    assert (pointmass.DT, pointmass.FRAME_SKIP) == (0.01, 10)
    assert sorted(map(tuple, pointmass.ACTIONS)) == sorted(
        (x, y) for x in (-0.5, 0.0, 0.5) for y in (-0.5, 0.0, 0.5) if (x, y) != (0.0, 0.0))


def test_free_step_matches_the_euler_sum_and_velocity_is_reset(c_maze):
    assert c_maze.model.opt.timestep == 0.01
    start = c_maze.reset([0.15, 0.15])
    first = c_maze.step([0.5, 0.0])
    second = c_maze.step([0.5, 0.0])  # the velocity reset: the same displacement again
    np.testing.assert_allclose(first - start, [STEP, 0.0], atol=1e-12)
    np.testing.assert_allclose(second - first, [STEP, 0.0], atol=1e-12)
    diagonal = c_maze.step([-0.5, -0.5]) - second
    np.testing.assert_allclose(diagonal, [-STEP, -STEP], atol=1e-12)
    assert STEP == pytest.approx(0.0275)


def test_walls_stop_the_agent(c_maze):
    c_maze.reset([0.2, 0.15])
    for _ in range(10):  # pushing east into the border wall (inner face 0.29)
        position = c_maze.step([0.5, 0.0])
    assert 0.245 <= position[0] <= 0.29 - mazes.AGENT + 0.002
    assert position[1] == pytest.approx(0.15, abs=1e-9)
    c_maze.reset([0.2, 0.0])
    for _ in range(10):  # pushing west into the C-maze's bar (east end 0.08)
        position = c_maze.step([-0.5, 0.0])
    assert 0.08 + mazes.AGENT - 0.002 <= position[0] <= 0.125


def test_mujoco_frames_match_our_renderer():
    problem = pointmass.rendering_problem()
    if problem is not None:
        pytest.skip(f"MuJoCo's renderer does not start here: {problem}")
    sim = pointmass.PointMass("point_c_maze", 64, renderer="mujoco")
    try:
        for xy in ([0.18, 0.0], [-0.2, 0.2], [0.1, -0.2]):
            sim.reset(xy)
            ours = mazes.render(sim.maze, np.array([xy]), 64)[0]
            frame = sim.render()
            assert frame.shape == (64, 64, 1) and 0 <= frame.min() and frame.max() <= 1
            # equal but for anti-aliased edge pixels
            assert np.mean(np.abs(frame - ours) > 0.1) < 0.06
            assert np.abs(frame - ours).mean() < 0.02
    finally:
        sim.close()


def test_rollouts_are_seeded_and_stay_in_free_space():
    a = pointmass.rollouts("point_hui_maze", trajectories=3, steps=5, size=16, seed=1,
                           renderer="ours")
    b = pointmass.rollouts("point_hui_maze", trajectories=3, steps=5, size=16, seed=1,
                           renderer="ours")
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].shape == (15, 16, 16, 1) and a[2] == "ours"
    m = mazes.maze("hui_maze")
    # contacts are soft: the centre may sink a little into the inflated wall
    inflated = mazes.Maze("shrunk", tuple((x0 + 0.003, x1 - 0.003, y0 + 0.003, y1 - 0.003)
                                          for x0, x1, y0, y1 in m.walls))
    assert inflated.free(a[0]).all()


def test_quick_pointmass_run_from_state(tmp_path):
    config = config_lib.updated(
        config_lib.load_file(CONFIG, "env=goal_mass,inputs=state,quick=True"),
        {"async_checkpointing": False})
    results = procedure.run(config, tmp_path / "run")
    assert results["graph/nodes"] == 200
    assert results["data/renderer"] in ("mujoco", "ours")
    assert 0 <= results["plan/success/plan2vec"] <= 1
