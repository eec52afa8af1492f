"""Planning on the data graph with a cost-to-goal Φ, and the evaluation of spec §4/§6.

Greedy planning (the code's 1-step planner): from the start, move to the graph neighbour n
(the current frame excluded, revisits allowed) with the smallest Φ(n, goal), at most `horizon`
moves; success when the goal is reached, checked before every move and after the last one.
Reached: the true distance to the goal's position is below the success radius, or, for data
without positions, the goal is the current frame or one of its neighbours. Planning cost: the
number of distinct frames whose neighbours were queried.

Cost-to-goal Φ of each method, all planned the same way:
    plan2vec   ‖f(n) − f(g)‖ of the learned embedding
    pixel_l2   ‖x_n − x_g‖ over raw pixels (over the state with inputs='state')
    vae        ‖μ(x_n) − μ(x_g)‖ of the VAE baseline's latent mean (where it was trained)
    sptm       the local metric φ(n, g) itself (SPTM-style greedy, 1-step lookahead)
    geodesic   the true geodesic (shortest path on the ground-truth neighbour graph): the oracle
    random     uniform noise, fresh for every goal
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy import stats

from lib import graphs, pairwise

METHODS = ("plan2vec", "pixel_l2", "vae", "sptm", "geodesic", "random")


@dataclasses.dataclass(frozen=True)
class Plan:
    success: bool
    path: tuple  # the frames visited, start first
    expanded: int  # distinct frames whose neighbours were queried


def greedy(nbrs: list[np.ndarray], cost_to_goal: np.ndarray, start: int,
           reached: Callable[[int], bool], horizon: int) -> Plan:
    node, path, queried = start, [start], set()
    for _ in range(horizon):
        if reached(node):
            return Plan(True, tuple(path), len(queried))
        queried.add(node)
        candidates = nbrs[node]
        node = int(candidates[np.argmin(cost_to_goal[candidates])])
        path.append(node)
    return Plan(bool(reached(node)), tuple(path), len(queried))


def reached_fn(goal: int, positions: np.ndarray | None, radius: float,
               nbrs: list[np.ndarray]) -> Callable[[int], bool]:
    if positions is None:
        return lambda node: node == goal or goal in nbrs[node]
    target = positions[goal]
    return lambda node: float(np.linalg.norm(positions[node] - target)) < radius


def eval_pairs(count: int, nodes: int, seed: int) -> np.ndarray:
    """[count, 2] (start, goal) frame pairs, uniform with start ≠ goal."""
    rng = np.random.default_rng(seed)
    start = rng.integers(nodes, size=count)
    goal = (start + rng.integers(1, nodes, size=count)) % nodes
    return np.stack([start, goal], 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Everything the evaluation reads: frames, positions (or None), the learned graph and
    φ, the embedding."""

    images: np.ndarray  # [N, H, W, C]
    positions: np.ndarray | None
    graph: object  # scipy CSR
    phi: np.ndarray  # [N, N] symmetrised local metric
    embedding: np.ndarray  # [N, latent]
    vae: np.ndarray | None = None  # [N, vae latent]: the VAE's means, where trained


def costs_to(method: str, inputs: Inputs, goals: np.ndarray, geodesic: np.ndarray | None,
             seed: int) -> np.ndarray:
    """[len(goals), N] cost-to-goal of `method` for each goal."""
    if method == "plan2vec":
        return pairwise.euclidean(inputs.embedding[goals], inputs.embedding)
    if method == "vae":
        return pairwise.euclidean(inputs.vae[goals], inputs.vae)
    if method == "pixel_l2":
        return pairwise.euclidean(inputs.images[goals], inputs.images)
    if method == "sptm":
        return inputs.phi[goals]
    if method == "geodesic":
        return geodesic
    if method == "random":
        return np.random.default_rng(seed).uniform(size=(len(goals), len(inputs.images)))
    raise ValueError(f"unknown planning method {method!r}; valid: {', '.join(METHODS)}")


def evaluate(inputs: Inputs, *, pairs: np.ndarray, horizon: int, radius: float,
             gt_radius: float, long_edge: float, h_scale: float, seed: int) -> dict:
    """Success rates of every method, Spearman(Φ, true geodesic), graph quality and search
    costs, as flat results keys; and the plans of plan2vec (for the plots) under 'paths'."""
    nbrs = graphs.neighbours(inputs.graph)
    n = len(inputs.images)
    starts, goals = pairs[:, 0], pairs[:, 1]
    labels = graphs.components(inputs.graph)
    out = {"graph/nodes": n, "graph/edges": int(inputs.graph.nnz // 2),
           "graph/components": int(labels.max() + 1),
           "graph/mean_degree": float(np.mean([len(x) for x in nbrs]))}
    geodesic = None
    if inputs.positions is not None:
        truth = graphs.radius_graph(inputs.positions, gt_radius)
        out["truth/components"] = int(graphs.components(truth).max() + 1)
        geodesic = graphs.shortest_paths(truth, indices=goals)  # [G, N]
        rows, cols = inputs.graph.nonzero()
        lengths = np.linalg.norm(inputs.positions[rows] - inputs.positions[cols], axis=1)
        out["graph/long_edge_fraction"] = float(np.mean(lengths > long_edge))
    methods = [m for m in METHODS if (m != "geodesic" or geodesic is not None)
               and (m != "vae" or inputs.vae is not None)]
    paths = {}
    for method in methods:
        cost = costs_to(method, inputs, goals, geodesic, seed)
        plans = [greedy(nbrs, cost[i], int(s), reached_fn(int(g), inputs.positions, radius,
                                                           nbrs), horizon)
                 for i, (s, g) in enumerate(pairs)]
        out[f"plan/success/{method}"] = float(np.mean([p.success for p in plans]))
        if method == "plan2vec":
            paths = [list(p.path) for p in plans]
            solved = np.array([p.success for p in plans])
            greedy_plans = [p for p in plans if p.success]
            phi_pairs = cost[np.arange(len(pairs)), starts]
    if geodesic is not None:
        true_pairs = geodesic[np.arange(len(pairs)), starts]
        finite = np.isfinite(true_pairs)
        out["plan/spearman"] = spearman(phi_pairs[finite], true_pairs[finite])
    if greedy_plans:
        out.update({"cost/pairs": len(greedy_plans),
                    "cost/greedy_expanded": float(np.mean([p.expanded for p in greedy_plans])),
                    "cost/greedy_moves": float(np.mean([len(p.path) - 1
                                                        for p in greedy_plans])),
                    **search_costs(inputs, pairs[solved], h_scale)})
    return {**out, "paths": paths}


def search_costs(inputs: Inputs, pairs: np.ndarray, h_scale: float) -> dict:
    """Mean nodes expanded between `pairs` by BFS, Dijkstra and A* (heuristic
    h_scale·Φ_plan2vec) to the goal node itself, and the shortest path lengths (hops; graph
    weights), over the pairs the graph connects. evaluate() passes the pairs greedy planning
    solved, which it stops within the success radius of the goal, so its moves can be fewer
    than the shortest path's hops."""
    hops = graphs.shortest_paths(inputs.graph, indices=pairs[:, 0], unweighted=True)
    weighted = graphs.shortest_paths(inputs.graph, indices=pairs[:, 0])
    bfs, dijkstra, astar, astar_length, lengths, shortest = [], [], [], [], [], []
    for i, (s, g) in enumerate(pairs):
        if not np.isfinite(hops[i, g]):
            continue
        bfs.append(graphs.uniform_expanded(hops[i], int(g)))
        dijkstra.append(graphs.uniform_expanded(weighted[i], int(g)))
        shortest.append(weighted[i, g])
        lengths.append(hops[i, g])
        goal_code = inputs.embedding[g]
        length, expanded = graphs.astar(
            inputs.graph, int(s), int(g),
            lambda v, goal_code=goal_code: h_scale * float(
                np.linalg.norm(inputs.embedding[v] - goal_code)))
        astar.append(expanded)
        astar_length.append(length)
    if not bfs:
        return {}
    return {"cost/bfs_expanded": float(np.mean(bfs)),
            "cost/dijkstra_expanded": float(np.mean(dijkstra)),
            "cost/astar_expanded": float(np.mean(astar)),
            "cost/shortest_hops": float(np.mean(lengths)),
            "cost/shortest_length": float(np.mean(shortest)),
            "cost/astar_length": float(np.mean(astar_length))}
