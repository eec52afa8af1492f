"""The small-scale experiment of plan2vec.md §6: procedural mazes on a 2-core CPU.

1,500 frames (150 random walks × 10 frames, 32×32 grey) of the open room or the C-maze; an
MLP local metric on [a, b, |a − b|] (BCE, 1,500 Adam steps, lr 1e-3, 64 near + 64 random pairs
per step); a graph of each frame's 15 nearest by φ plus the trajectory edges, unit weights;
all-pairs shortest paths; an MLP embedding (1,024 → 256 → 256 → latent 10) distilled from
them (3,000 Adam steps, lr 1e-3, 256 frames per step); greedy planning over 200 random
(start, goal) pairs, horizon 50, success within 0.04 of the goal; pixel-L2, SPTM-style φ,
true-geodesic and random baselines on the same graph.

Command:
    python -m lib.main --config=experiments/plan2vec/configs/maze.py:env=c_maze \\
      --workdir=/tmp/plan2vec_c_maze
Args: env (open_room | c_maze | hui_maze), seed, latent, objective (distill | value_iteration:
objective (b), Adam 3e-4), quick (tiny steps for smoke tests).
Hardware: a 2-core CPU. Expected wall time: about a minute per maze and seed.
"""

from experiments.plan2vec import config as paper_config
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, env="c_maze", seed=0, latent=10, objective="distill", quick=False)
    c = paper_config.procedure_config(a.seed)
    c.plan2vec.env = a.env
    c.plan2vec.latent = a.latent
    c.plan2vec.objective = a.objective
    if a.objective == "value_iteration":
        c.plan2vec.embedding_lr = 3e-4  # spec §2: the mazes' rate for objective (b)
    c.checkpoint_every, c.progress = 0, False
    if a.quick:
        c.plan2vec.trajectories, c.plan2vec.metric_steps, c.plan2vec.embedding_steps = 30, 20, 20
        c.plan2vec.vae_steps = 20
        c.plan2vec.neighbours, c.plan2vec.eval_pairs, c.plan2vec.horizon = 5, 20, 10
        c.plan2vec.embedding_batch, c.plan2vec.metric_batch = 64, 64
        c.log_every = 10
    c.total_steps = c.plan2vec.metric_steps  # the procedure sets each stage's own
    return c


def get_sweep(arg=None):
    """Both mazes of spec §6 × seeds, and latent 2 on the C-maze."""
    a = parse_arg(arg, seeds=2)
    runs = [dict(env=e, seed=s) for e in ("open_room", "c_maze") for s in range(a.seeds)]
    return runs + [dict(env="c_maze", seed=s, latent=2) for s in range(a.seeds)]
