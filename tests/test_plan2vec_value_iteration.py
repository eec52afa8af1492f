"""Plan2vec's objective (b), the imagined planning game (experiments/plan2vec/value_iteration.py
and tasks.ValueIteration): moves, rewards, success and hindsight on a path graph by hand, the
replay ring buffer, the target network's soft update, the regression target, and a quick run."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.plan2vec import procedure, tasks, value_iteration
from lib import config as config_lib
from lib import graphs
from lib.models.layers import DEFAULT_LAYERS
from tests.helpers import REPO

MAZE = REPO / "experiments/plan2vec/configs/maze.py"
LINE = np.arange(5.0)


def path_game(epsilon=0.0, relabel=100, horizon=10):
    """The path 0–1–2–3–4; f(i) = i, so Φ(n, g) = |n − g|."""
    g = graphs.build(np.abs(LINE[:, None] - LINE[None]), k=1)
    table, valid = value_iteration.neighbour_table(graphs.neighbours(g))
    return value_iteration.Game(table, valid, horizon, epsilon, relabel), LINE[:, None]


def test_neighbour_table_pads_with_the_first_neighbour():
    table, valid = value_iteration.neighbour_table([np.array([1]), np.array([0, 2])])
    np.testing.assert_array_equal(table, [[1, 1], [0, 2]])
    np.testing.assert_array_equal(valid, [[True, False], [True, True]])


def test_moves_rewards_and_success_by_hand():
    game, codes = path_game()
    rng = np.random.default_rng(0)
    x, goal = np.array([0, 3, 2, 4]), np.array([4, 4, 0, 4])
    x_star = game.moves(x, goal, codes, rng)
    np.testing.assert_array_equal(x_star, [1, 4, 1, 3])  # from 4 toward 4: its only neighbour
    step = game.transitions(x, x_star, goal)
    # 0 where the goal is adjacent; at the goal itself (never a rollout's start) 4 ∉ N(4)
    np.testing.assert_array_equal(step["reward"], [1, 0, 1, 1])
    np.testing.assert_array_equal(step["success"], [0, 1, 1, 1])  # x* = g or g ∈ N(x*)


def test_epsilon_one_moves_to_random_neighbours():
    game, codes = path_game(epsilon=1.0)
    moves = game.moves(np.full(400, 2), np.full(400, 4), codes, np.random.default_rng(1))
    assert set(moves.tolist()) == {1, 3} and 0.4 < np.mean(moves == 1) < 0.6


def test_play_restarts_on_success_and_relabels_in_hindsight():
    game, codes = path_game(relabel=2, horizon=3)
    rng = np.random.default_rng(2)
    rollout = {"x": np.array([0]), "goal": np.array([4]), "t": np.array([0])}
    state, made = game.play(rollout, codes, rng)
    # moves 0→1, 1→2, then both relabelled with the node reached, 2, as their goal: both
    # succeed (2 ∈ N(1); x* = 2), reward 0 where 2 ∈ N(x) (x = 1); then 2→3 succeeds toward
    # 4 (4 ∈ N(3)) → a fresh start
    np.testing.assert_array_equal(made["x"][:4], [0, 1, 0, 1])
    np.testing.assert_array_equal(made["x_star"][:4], [1, 2, 1, 2])
    np.testing.assert_array_equal(made["goal"][:4], [4, 4, 2, 2])
    np.testing.assert_array_equal(made["reward"][:4], [1, 1, 1, 0])
    np.testing.assert_array_equal(made["success"][:4], [0, 0, 1, 1])
    assert made["x"][4] == 2 and made["x_star"][4] == 3 and made["success"][4] == 1
    assert len(made["x"]) == 5 and state["t"][0] == 0  # restarted after the success


def test_hindsight_stays_within_an_episode():
    game, codes = path_game(relabel=2, horizon=4)
    rng = np.random.default_rng(3)
    # from 2 toward 4: the first move 2→3 succeeds (4 ∈ N(3)) and the rollout restarts, so at
    # the relabelling after move 2 only move 2's transition (of the new episode) is relabelled
    rollout = {"x": np.array([2]), "goal": np.array([4]), "t": np.array([0])}
    _, made = game.play(rollout, codes, rng)
    assert made["x"][0] == 2 and made["x_star"][0] == 3 and made["success"][0] == 1
    relabelled = made["goal"][2]  # after moves 1 and 2: one hindsight copy, of move 2
    assert made["x"][2] == made["x"][1] and made["x_star"][2] == made["x_star"][1]
    assert relabelled == made["x_star"][1] and made["success"][2] == 1
    # 4 moves, one copy after move 2 (not 2: move 1 ended the previous episode), then 1 or 2
    # after move 4 (2 unless move 3 ended an episode)
    assert len(made["x"]) in (6, 7)


def test_replay_ring_buffer_overwrites_the_oldest():
    replay = {k: np.zeros(4) for k in value_iteration.FIELDS}
    new = {k: np.arange(1, 4, dtype=float) for k in value_iteration.FIELDS}
    replay, position, filled = value_iteration.push(replay, 0, 0, new)
    assert (position, filled) == (3, 3)
    replay, position, filled = value_iteration.push(replay, position, filled,
                                                    {k: v + 10 for k, v in new.items()})
    np.testing.assert_array_equal(replay["x"], [12, 13, 3, 11])
    assert (position, filled) == (2, 4)


def test_target_soft_update_and_regression_target():
    config = config_lib.updated(config_lib.load_file(MAZE, "quick=True"), {
        "plan2vec.objective": "value_iteration", "plan2vec.vi_updates": 2,
        "plan2vec.vi_batch": 3, "plan2vec.encoder_widths": (4,), "plan2vec.latent": 2})
    task = tasks.ValueIteration(config)
    from experiments.plan2vec import models

    online = models.encoder("mlp", (1, 1, 2), 2, (4,), DEFAULT_LAYERS, nnx.Rngs(0))
    net = tasks.ValueNet(online, (1, 1, 2), 2, 3)
    before = np.asarray(net.target.head.kernel[...])
    net.online.head.kernel[...] = net.online.head.kernel[...] + 1.0
    task.update_state(net, 0)
    np.testing.assert_allclose(net.target.head.kernel[...], before + 0.1, rtol=1e-6)
    # the step's target: r_scale·r + γ·(1 − success)·Φ_target(x*, g)
    x = jnp.array([[[[0.1, 0.2]]], [[[0.3, 0.1]]], [[[0.0, 0.0]]]])
    net.replayed_x[...] = jnp.stack([x, x])
    net.replayed_x_star[...] = jnp.stack([x[::-1], x[::-1]])
    net.replayed_goal[...] = jnp.stack([x[::-1], x])
    net.replayed_reward[...] = jnp.array([[1.0, 0.0, 1.0]] * 2)
    net.replayed_success[...] = jnp.array([[0.0, 1.0, 0.0]] * 2)
    loss, metrics = task.train_loss(net, None, None, jnp.asarray(3))  # minibatch 3 % 2 = 1
    f = np.asarray(net.online(x.reshape(3, 1, 1, 2), train=False))
    t = np.asarray(net.target(x.reshape(3, 1, 1, 2), train=False))
    phi = np.linalg.norm(f - f, axis=1)  # goal = x in minibatch 1
    bootstrap = np.linalg.norm(t[::-1] - t, axis=1)
    target = 0.2 * np.array([1, 0, 1]) + np.array([1, 0, 1]) * bootstrap
    assert float(metrics["target"]) == pytest.approx(target.mean(), rel=1e-5)
    assert float(loss) == pytest.approx(np.mean((np.sqrt(np.maximum(phi**2, 1e-12)) - target)
                                                ** 2), rel=1e-5)


class Normed(nnx.Module):
    def __init__(self):
        self.bn = nnx.BatchNorm(2, rngs=nnx.Rngs(0))
        self.head = nnx.Linear(2, 2, rngs=nnx.Rngs(1))

    def __call__(self, x, *, train):
        return self.head(self.bn(x.reshape(len(x), -1), use_running_average=not train))


def test_target_takes_the_online_batch_statistics():
    config = config_lib.updated(config_lib.load_file(MAZE, "quick=True"),
                                {"plan2vec.objective": "value_iteration"})
    task = tasks.ValueIteration(config)
    net = tasks.ValueNet(Normed(), (1, 1, 2), 1, 1)
    net.online(jnp.array([[1.0, 2.0], [3.0, 8.0]]), train=True)  # moves the running mean
    task.update_state(net, 0)
    np.testing.assert_array_equal(net.target.bn.mean[...], net.online.bn.mean[...])
    assert float(jnp.abs(net.target.bn.mean[...]).sum()) > 0


def test_quick_value_iteration_run(tmp_path):
    config = config_lib.updated(config_lib.load_file(MAZE, "quick=True"), {
        "plan2vec.objective": "value_iteration", "plan2vec.vae": False,
        "plan2vec.vi_horizon": 5, "async_checkpointing": False})
    results = procedure.run(config, tmp_path / "run")
    assert 0 <= results["plan/success/plan2vec"] <= 1 and "plan/spearman" in results
    logged = (tmp_path / "run/embedding/metrics.jsonl").read_text()
    assert "vi/success_rate" in logged and '"vi/replay_filled": 200.0' in logged
