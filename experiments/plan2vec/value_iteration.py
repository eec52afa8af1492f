"""Plan2vec's objective (b), the value-iteration "imagined planning game" (plan2vec.md §2), on
the host: parallel rollouts on the data graph, greedy in the current Φ with ε-exploration,
binary rewards, hindsight relabelling and a replay buffer. The Task (tasks.ValueIteration)
regresses Φ(x, g) on r_scale·r + γ·(1 − success)·Φ_target(x*, g) from its minibatches.

In the graph's binary mode: from x toward g the move goes to x* = argmin over the neighbours
N(x) of Φ(n, g) (a uniformly random neighbour with probability ε); r = 0 if g ∈ N(x), else 1;
success when x* = g or g ∈ N(x*). A rollout starts again from a fresh (x, g) on success or
after `horizon` moves. Every `relabel` moves, each rollout's last `relabel` transitions of
its current episode are stored again with the node reached as their goal (hindsight).
"""

from __future__ import annotations

import dataclasses

import numpy as np

FIELDS = ("x", "x_star", "goal", "reward", "success")


def neighbour_table(nbrs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """([N, K] neighbours padded with each row's first, [N, K] validity) for vectorised moves."""
    width = max(len(n) for n in nbrs)
    table = np.stack([np.concatenate([n, np.full(width - len(n), n[0])]) for n in nbrs])
    valid = np.stack([np.arange(width) < len(n) for n in nbrs])
    return table.astype(np.int64), valid


@dataclasses.dataclass
class Game:
    """The rollouts' positions and the replay buffer, as plain arrays (checkpointed by the
    task in the train state's 'extra')."""

    table: np.ndarray  # [N, K] neighbours
    valid: np.ndarray  # [N, K]
    horizon: int
    epsilon: float
    relabel: int

    def adjacent(self, nodes: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """Whether goal ∈ N(node), elementwise."""
        return np.any((self.table[nodes] == goals[:, None]) & self.valid[nodes], axis=1)

    def reached(self, nodes: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return (nodes == goals) | self.adjacent(nodes, goals)

    def moves(self, x: np.ndarray, goal: np.ndarray, codes: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        """x* for each rollout: the neighbour of least Φ(n, goal) = ‖f(n) − f(goal)‖, or with
        probability ε a uniformly random neighbour."""
        candidates = self.table[x]  # [R, K]
        phi = np.linalg.norm(codes[candidates] - codes[goal][:, None], axis=-1)
        phi = np.where(self.valid[x], phi, np.inf)
        greedy = candidates[np.arange(len(x)), np.argmin(phi, axis=1)]
        counts = self.valid[x].sum(1)
        random = candidates[np.arange(len(x)), (rng.random(len(x)) * counts).astype(int)]
        return np.where(rng.random(len(x)) < self.epsilon, random, greedy)

    def transitions(self, x, x_star, goal) -> dict[str, np.ndarray]:
        return {"x": x, "x_star": x_star, "goal": goal,
                "reward": np.where(self.adjacent(x, goal), 0.0, 1.0).astype(np.float32),
                "success": self.reached(x_star, goal).astype(np.float32)}

    def play(self, rollout: dict, codes: np.ndarray, rng: np.random.Generator
             ) -> tuple[dict, dict]:
        """`horizon` moves of every rollout ({x, goal, t}: [R] each); returns the rollouts'
        new state and the transitions made (hindsight copies included)."""
        x, goal, t = (rollout[k].copy() for k in ("x", "goal", "t"))
        n = len(self.table)
        episode = np.zeros(len(x), np.int64)  # counts restarts: hindsight stays in an episode
        made, recent = [], []
        for move in range(1, self.horizon + 1):
            x_star = self.moves(x, goal, codes, rng)
            step = self.transitions(x, x_star, goal)
            made.append(step)
            recent.append((x.copy(), x_star.copy(), episode.copy()))
            if move % self.relabel == 0:  # hindsight: the node reached as the goal
                for before, after, when in recent:
                    same = when == episode
                    made.append(self.transitions(before[same], after[same], x_star[same]))
                recent = []
            t += 1
            done = (step["success"] > 0) | (t >= self.horizon)
            fresh = start(len(x), n, rng)
            x = np.where(done, fresh["x"], x_star)
            goal = np.where(done, fresh["goal"], goal)
            t = np.where(done, 0, t)
            episode += done
        joined = {k: np.concatenate([m[k] for m in made]) for k in FIELDS}
        return {"x": x, "goal": goal, "t": t}, joined


def start(rollouts: int, nodes: int, rng: np.random.Generator) -> dict:
    """Fresh rollouts: uniform starts and goals, a goal never its start."""
    x = rng.integers(nodes, size=rollouts)
    return {"x": x, "goal": (x + rng.integers(1, nodes, size=rollouts)) % nodes,
            "t": np.zeros(rollouts, np.int64)}


def push(replay: dict, position: int, filled: int, new: dict) -> tuple[dict, int, int]:
    """Writes `new` transitions into the ring buffer `replay` (oldest overwritten first)."""
    size = len(replay["x"])
    count = len(new["x"])
    if count > size:  # only the newest fit
        new = {k: v[-size:] for k, v in new.items()}
        count = size
    index = (position + np.arange(count)) % size
    for k in FIELDS:
        replay[k][index] = new[k]
    return replay, int((position + count) % size), int(min(filled + count, size))
