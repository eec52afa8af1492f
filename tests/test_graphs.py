"""lib.graphs and lib.pairwise: edges, weights and shortest paths on graphs small enough to
check by hand, search costs against worked examples, chunked all-pairs values against a
direct computation."""

import jax.numpy as jnp
import numpy as np
import pytest

from lib import graphs, pairwise

# five points on a line at 0, 1, 2, 4, 7: distances |x_i − x_j|
LINE = np.array([0.0, 1.0, 2.0, 4.0, 7.0])
D = np.abs(LINE[:, None] - LINE[None, :])


def dense(graph):
    return graph.toarray()


def test_nearest_excludes_the_diagonal_and_breaks_ties_by_index():
    np.testing.assert_array_equal(graphs.nearest(D, 2), [[1, 2], [0, 2], [1, 0], [2, 1],
                                                         [3, 2]])
    with pytest.raises(graphs.GraphError, match="k = 5 nearest neighbours, but the graph has "
                                                "5 nodes"):
        graphs.nearest(D, 5)


def test_top1_graph_is_symmetrised_with_unit_or_phi_weights():
    # 1-NN: 0→1, 1→0 (tie 0/2: lower index), 2→1, 3→2, 4→3
    expected = np.zeros((5, 5))
    for a, b in ((0, 1), (1, 2), (2, 3), (3, 4)):
        expected[a, b] = expected[b, a] = 1
    np.testing.assert_array_equal(dense(graphs.build(D, k=1)), expected)
    weighted = dense(graphs.build(D, k=1, weight="phi"))
    np.testing.assert_array_equal(weighted, expected * D)


def test_threshold_edges_and_forced_edges():
    g = dense(graphs.build(D, threshold=1.0, forced=np.array([[3, 4]]), forced_weight=0.5,
                           weight="phi"))
    expected = np.zeros((5, 5))
    expected[0, 1] = expected[1, 0] = expected[1, 2] = expected[2, 1] = 1.0
    expected[3, 4] = expected[4, 3] = 0.5
    with pytest.raises(graphs.GraphError, match="1 node\\(s\\) have no edges \\(first: \\[3"):
        graphs.build(D, threshold=1.0, forced=np.array([[2, 4]]))
    np.testing.assert_array_equal(g[:3, :3], expected[:3, :3])
    # forced edge 3–4 at 0.5; 3 and 4 have no threshold edge (2 and 3 apart) → two components
    assert g[3, 4] == 0.5 and g[4, 3] == 0.5
    assert graphs.components(graphs.build(D, threshold=1.0, forced=np.array([[3, 4]]))
                             ).tolist() == [0, 0, 0, 1, 1]


def test_top_k_capped_by_a_threshold():
    # 2-NN of each node, then only edges of length ≤ 2: 0–1, 0–2, 1–2, 2–3 (3–4 is 3 long)
    g = dense(graphs.build(D, k=2, threshold=2.0, forced=np.array([[3, 4]])))
    edges = {(a, b) for a, b in zip(*np.nonzero(g)) if a < b}
    assert edges == {(0, 1), (0, 2), (1, 2), (2, 3), (3, 4)}


def test_a_node_without_edges_is_an_error():
    with pytest.raises(graphs.GraphError, match="no edges"):
        graphs.build(D, threshold=1.5)  # node 4 is 3 from its nearest


def test_build_refuses_bad_settings():
    with pytest.raises(graphs.GraphError, match="give k > 0"):
        graphs.build(D)
    with pytest.raises(graphs.GraphError, match="edge weight 'two'"):
        graphs.build(D, k=2, weight="two")


def test_trajectory_pairs_follow_steps_within_a_trajectory():
    trajectory = np.array([1, 0, 0, 1, 0])
    step = np.array([0, 1, 0, 1, 2])
    # trajectory 0: node 2 (t0) → 1 (t1) → 4 (t2); trajectory 1: node 0 (t0) → 3 (t1)
    assert sorted(map(tuple, graphs.trajectory_pairs(trajectory, step))) == [(0, 3), (1, 4),
                                                                            (2, 1)]


def test_shortest_paths_by_hand_and_unweighted_hops():
    g = graphs.build(D, k=1, weight="phi")  # the path 0–1–2–3–4 with lengths 1, 1, 2, 3
    np.testing.assert_allclose(graphs.shortest_paths(g), D)
    hops = graphs.shortest_paths(g, unweighted=True)
    np.testing.assert_array_equal(hops, np.abs(np.arange(5)[:, None] - np.arange(5)[None]))


def test_random_graph_distances_symmetric_and_triangle_inequality():
    rng = np.random.default_rng(0)
    points = rng.uniform(size=(60, 2))
    g = graphs.build(pairwise.euclidean(points), k=4, weight="phi")
    d = graphs.shortest_paths(g)
    np.testing.assert_allclose(d, d.T, rtol=0, atol=1e-12)  # sums in another order
    hops = graphs.shortest_paths(graphs.build(pairwise.euclidean(points), k=4))
    np.testing.assert_array_equal(hops, hops.T)
    finite = np.isfinite(d)
    for i, j, k in rng.integers(60, size=(2000, 3)):
        if finite[i, j] and finite[j, k]:
            assert d[i, k] <= d[i, j] + d[j, k] + 1e-12


def test_radius_graph_weights_are_euclidean():
    points = np.array([[0.0, 0.0], [0.03, 0.0], [0.03, 0.015], [0.2, 0.2], [0.23, 0.22]])
    g = dense(graphs.radius_graph(points, 0.036))
    assert g[0, 1] == pytest.approx(0.03) and g[1, 2] == pytest.approx(0.015)
    assert g[0, 2] == pytest.approx(np.hypot(0.03, 0.015))  # 0.0335 < 0.036
    assert g[3, 4] == 0 and g[3].sum() == 0  # hypot(0.03, 0.02) = 0.0361 is not < 0.036


def test_uniform_search_cost_counts_nodes_closer_than_the_goal():
    # from node 0 on the line: d = 0, 1, 2, 4, 7; the goal 3 is popped after 0, 1, 2
    d = np.array([0.0, 1.0, 2.0, 4.0, 7.0])
    assert graphs.uniform_expanded(d, 3) == 4
    assert graphs.uniform_expanded(d, 0) == 1
    with pytest.raises(graphs.GraphError, match="cannot be reached"):
        graphs.uniform_expanded(np.array([0.0, np.inf]), 1)


def test_astar_on_a_grid_expands_fewer_nodes_with_a_good_heuristic():
    # a 5×5 grid with unit edges, from (0, 0) to (4, 0): Manhattan distance is exact, and only
    # the 5 nodes of the bottom row have f = 4
    side = 5
    xy = np.array([(i % side, i // side) for i in range(side * side)], float)
    g = graphs.build(pairwise.euclidean(xy), threshold=1.0)
    goal = 4
    manhattan = lambda v: float(np.abs(xy[v] - xy[goal]).sum())  # noqa: E731
    assert graphs.astar(g, 0, goal, manhattan) == (4.0, 5)
    zero_length, zero_expanded = graphs.astar(g, 0, goal, lambda v: 0.0)
    # Dijkstra pops every node with x + y < 4 (10 of them) before the goal
    assert zero_length == 4 and zero_expanded >= 11
    assert graphs.uniform_expanded(graphs.shortest_paths(g, indices=0), goal) == 11


def test_chunked_pairwise_matches_direct_values_with_padding():
    items = np.random.default_rng(1).normal(size=(23, 3)).astype(np.float32)

    def score(a, b, scale):
        return scale * jnp.sum((a[:, None] - b[None]) ** 2, -1)

    direct = 2.0 * ((items[:, None] - items[None]) ** 2).sum(-1)
    seen = []
    full = pairwise.chunked(score, items, 5, args=(2.0,), progress=lambda d, t: seen.append(t))
    half = pairwise.chunked(score, items, 5, args=(2.0,), symmetric=True)
    np.testing.assert_allclose(full, direct, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(half, direct, rtol=1e-5, atol=1e-5)
    assert seen == [25] * 25  # 5 × 5 blocks of 5 (23 padded to 25)


def test_euclidean_against_a_loop():
    a = np.random.default_rng(2).normal(size=(7, 2, 2))
    b = np.random.default_rng(3).normal(size=(4, 2, 2))
    loop = np.array([[np.linalg.norm(x - y) for y in b] for x in a])
    np.testing.assert_allclose(pairwise.euclidean(a, b), loop, rtol=1e-12)
    assert np.all(np.diag(pairwise.euclidean(a)) >= 0)
