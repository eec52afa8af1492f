"""Graphs over a data set's samples and shortest paths on them (plan2vec): edges from a pairwise
"distance" matrix (top-k or threshold), forced edges between consecutive frames of a
trajectory, binary or distance weights; shortest paths with scipy.sparse.csgraph; and the
search costs (nodes expanded) of BFS, Dijkstra and A* between two nodes.

Graphs are symmetric scipy CSR matrices whose stored entries are the edges (weights > 0);
nodes are the rows of the pairwise matrix.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

WEIGHTS = ("one", "phi")
MIN_WEIGHT = 1e-6  # a φ of 0 (a duplicate sample) is stored as this: CSR drops zero entries


class GraphError(ValueError):
    """A graph that cannot be planned on (isolated nodes), or settings it cannot be built
    with."""


def nearest(distances: np.ndarray, k: int) -> np.ndarray:
    """[N, k] indices of each row's k smallest entries, the diagonal excluded (ties: lower
    index first)."""
    n = len(distances)
    if not 1 <= k <= n - 1:
        raise GraphError(f"k = {k} nearest neighbours, but the graph has {n} nodes: k must lie "
                         f"in [1, {n - 1}]")
    d = np.array(distances, np.float64)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def trajectory_pairs(trajectory: np.ndarray, step: np.ndarray) -> np.ndarray:
    """[E, 2] node pairs (i, j) where j is the frame after i in the same trajectory."""
    trajectory, step = np.asarray(trajectory), np.asarray(step)
    order = np.lexsort((step, trajectory))
    a, b = order[:-1], order[1:]
    keep = (trajectory[a] == trajectory[b]) & (step[b] == step[a] + 1)
    return np.stack([a[keep], b[keep]], axis=1)


def build(distances: np.ndarray, *, k: int = 0, threshold: float | None = None,
          forced: np.ndarray | None = None, forced_weight: float = 1.0,
          weight: str = "one") -> sparse.csr_matrix:
    """The symmetric graph of `distances` ([N, N], small = near; the diagonal is ignored).

    Edges: each node's k nearest (k > 0), or every pair with distance ≤ threshold, or with
    both, each node's k nearest among those within the threshold; plus the
    `forced` pairs ([E, 2], e.g. trajectory_pairs) with weight `forced_weight`. An edge found
    from either end is kept (symmetrised). Weights: 1 ('one', hop counts) or the distance
    ('phi'; of the two directions, the smaller). Raises GraphError for a node without edges.
    """
    if weight not in WEIGHTS:
        raise GraphError(f"edge weight {weight!r}; valid choices: {', '.join(WEIGHTS)}")
    if k <= 0 and threshold is None:
        raise GraphError("give k > 0 (top-k edges), a threshold, or both")
    d = np.asarray(distances, np.float64)
    n = len(d)
    if d.shape != (n, n):
        raise GraphError(f"distances must be square [N, N], got {d.shape}")
    if k > 0:
        rows = np.repeat(np.arange(n), k)
        cols = nearest(d, k).ravel()
        if threshold is not None:
            keep = d[rows, cols] <= threshold
            rows, cols = rows[keep], cols[keep]
    else:
        mask = d <= threshold
        np.fill_diagonal(mask, False)
        rows, cols = np.nonzero(mask)
    values = np.ones(len(rows)) if weight == "one" else np.maximum(d[rows, cols], MIN_WEIGHT)
    if forced is not None and len(forced):
        forced = np.asarray(forced)
        rows, cols = np.concatenate([rows, forced[:, 0]]), np.concatenate([cols, forced[:, 1]])
        fixed = 1.0 if weight == "one" else max(forced_weight, MIN_WEIGHT)
        values = np.concatenate([values, np.full(len(forced), fixed)])
    # symmetrise, keeping the smaller weight where both directions (or duplicates) exist
    r, c = np.concatenate([rows, cols]), np.concatenate([cols, rows])
    v = np.concatenate([values, values])
    keep = r != c
    r, c, v = r[keep], c[keep], v[keep]
    order = np.lexsort((v, c, r))
    r, c, v = r[order], c[order], v[order]
    first = np.ones(len(r), bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    graph = sparse.csr_matrix((v[first], (r[first], c[first])), shape=(n, n))
    check_no_isolated(graph)
    return graph


def radius_graph(positions: np.ndarray, radius: float) -> sparse.csr_matrix:
    """Edges between positions closer than `radius`, weighted by their Euclidean distance
    (plan2vec's ground-truth "GT-neighbour" graph)."""
    from lib.pairwise import euclidean

    d = euclidean(positions)
    mask = d < radius
    np.fill_diagonal(mask, False)
    rows, cols = np.nonzero(mask)
    return sparse.csr_matrix((np.maximum(d[rows, cols], MIN_WEIGHT), (rows, cols)),
                             shape=(len(d), len(d)))


def check_no_isolated(graph: sparse.csr_matrix) -> None:
    degree = np.diff(graph.indptr)
    isolated = np.flatnonzero(degree == 0)
    if len(isolated):
        raise GraphError(f"{len(isolated)} node(s) have no edges (first: {isolated[:5].tolist()})"
                         ": nothing can be planned from or to them; raise k or the threshold, "
                         "or keep the trajectory edges")


def components(graph: sparse.csr_matrix) -> np.ndarray:
    """Component label of every node (0 … C − 1)."""
    return csgraph.connected_components(graph, directed=False)[1]


def shortest_paths(graph: sparse.csr_matrix, indices=None, unweighted: bool = False
                   ) -> np.ndarray:
    """Shortest-path lengths ([len(indices), N], or [N, N]); np.inf between components."""
    return csgraph.dijkstra(graph, directed=False, indices=indices, unweighted=unweighted)


def neighbours(graph: sparse.csr_matrix) -> list[np.ndarray]:
    """Each node's neighbours (sorted indices)."""
    graph = graph.tocsr()
    graph.sort_indices()
    return [graph.indices[graph.indptr[i]:graph.indptr[i + 1]] for i in range(graph.shape[0])]


def uniform_expanded(distances_from_start: np.ndarray, goal: int) -> int:
    """Nodes a uniform-cost search (Dijkstra; BFS on hop counts) expands before it pops the
    goal, the goal included, with the most favourable tie-breaking: 1 + #{v: d(s, v) < d(s, g)}.
    `distances_from_start` is the start's row of shortest_paths (unweighted for BFS)."""
    d = np.asarray(distances_from_start)
    if not np.isfinite(d[goal]):
        raise GraphError(f"node {goal} cannot be reached from the start")
    return int(np.sum(d < d[goal])) + 1


def astar(graph: sparse.csr_matrix, start: int, goal: int,
          heuristic: Callable[[int], float]) -> tuple[float, int]:
    """(path length, nodes expanded) of A* from start to goal with `heuristic(node)`, an
    estimate of the distance to the goal (not necessarily admissible: plan2vec's h_scale·Φ).
    Counts each node expanded once (no re-expansion)."""
    nbrs = neighbours(graph)
    weights = graph.tocsr()
    weights.sort_indices()
    g = {start: 0.0}
    frontier = [(heuristic(start), 0, start)]
    closed: set[int] = set()
    tie = 0
    while frontier:
        _, _, node = heapq.heappop(frontier)
        if node in closed:
            continue
        closed.add(node)
        if node == goal:
            return g[node], len(closed)
        row = weights.data[weights.indptr[node]:weights.indptr[node + 1]]
        for nxt, w in zip(nbrs[node], row):
            cost = g[node] + float(w)
            if nxt not in closed and cost < g.get(nxt, np.inf):
                g[nxt] = cost
                tie += 1
                heapq.heappush(frontier, (cost + heuristic(int(nxt)), tie, int(nxt)))
    raise GraphError(f"node {goal} cannot be reached from node {start}")
