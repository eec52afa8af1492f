"""The paper's point-mass mazes (plan2vec.md §2–§4): GoalMass, C-Maze and 回-Maze simulated
with MuJoCo (the [mujoco] extra), from frames or from the true state.

Data: 1,000 random-policy rollouts × 10 steps (10,000 frames, 64×64 grey). Frames: the code's
LocalMetricConvLarge, smooth-L1 regression on labels 0 (same) / 1 (next) / 2 (random), Adam
1e-4, batch 32, 17,000 steps (≈ 20 epochs of the code's three pairs per transition); a graph
of each frame's 30 nearest by φ plus the trajectory edges, unit weights; the ResNet-18
CoordConv encoder to the latent, distilled from all-pairs graph distances (Adam 1e-4: ours,
the code's 1e-5 belongs to its sampled-plan loop), 20,000 steps of 64 frames. State
(inputs=state, the paper's P2–P4): the (x, y) position in place of the frame, the spec §6
MLPs for φ and f. Evaluation: 200 random (start, goal) pairs, greedy over the graph, horizon
50, success within 0.04 (GoalMass) or 0.02 (C-Maze, 回-Maze). The VAE baseline's rate per
maze as spec §3 (1e-3, 1e-4, 3e-4). With frames, the smooth-L1 labels come as 5/16 same,
3/16 next and 1/2 random (half of each batch near): the code drew the three equally.

Command (one GPU host; the all-pairs φ and shortest paths over 10,000 frames need ~2 GB):
    pip install -e '.[mujoco,cuda]'
    python -m lib.main \\
      --config=experiments/plan2vec/configs/pointmass.py:env=c_maze,inputs=state,latent=10 \\
      --workdir=/tmp/plan2vec_point_c_maze_state_10
Args: env (goal_mass | c_maze | hui_maze), inputs (frames | state), latent, seed, quick
(a tiny CPU smoke run).
Hardware: one GPU. Expected wall time: not measured (no GPU here); the all-pairs φ of 10⁸
pairs dominates with frames.
Paper (state input, code: analysis/latent-dimension/results.csv), success % at latent 2 / 3
/ 10 / 30 / 100: GoalMass 6.1 / 40.5 / 99.9 / 99.8 / 99.8; 回-Maze 6.1 / 70.5 / 95.8 / 95.6 /
94.6; C-Maze 6.4 / 82.7 / 78.8 / 80.0 / 82.2.
"""

from experiments.plan2vec import config as paper_config
from lib.config import parse_arg

RADIUS = {"goal_mass": 0.04, "c_maze": 0.02, "hui_maze": 0.02}
VAE_LR = {"goal_mass": 1e-3, "c_maze": 1e-4, "hui_maze": 3e-4}  # spec §3


def get_config(arg=None):
    a = parse_arg(arg, env="c_maze", inputs="frames", latent=3, seed=0, quick=False)
    c = paper_config.procedure_config(a.seed)
    c.plan2vec.env = f"point_{a.env}"
    c.plan2vec.inputs = a.inputs
    c.plan2vec.trajectories, c.plan2vec.trajectory_steps = 1000, 10
    c.plan2vec.image_size = 64
    c.plan2vec.success_radius = RADIUS.get(a.env, 0.04)
    c.plan2vec.vae_lr = VAE_LR.get(a.env, 1e-3)
    c.plan2vec.latent = a.latent
    c.plan2vec.chunk = 200
    if a.inputs == "frames":
        c.plan2vec.metric_net, c.plan2vec.metric_loss = "conv_large", "smooth_l1"
        c.plan2vec.metric_lr, c.plan2vec.metric_batch, c.plan2vec.metric_steps = 1e-4, 32, 17_000
        c.plan2vec.neighbours = 30
        c.plan2vec.encoder = "resnet18_coord"
        c.plan2vec.embedding_lr, c.plan2vec.embedding_batch = 1e-4, 64
        c.plan2vec.embedding_steps = 20_000
    if a.quick:
        paper_config.smoke(c)
        c.plan2vec.trajectories, c.plan2vec.image_size = 20, 16
        c.plan2vec.metric_batch, c.plan2vec.embedding_batch = 32, 32
    c.total_steps = c.plan2vec.metric_steps  # the procedure sets each stage's own
    return c


def get_sweep(arg=None):
    """P2–P4: the three mazes from the state, latent 2, 3, 10, 30, 100, × seeds."""
    a = parse_arg(arg, seeds=3)
    return [dict(env=e, inputs="state", latent=z, seed=s)
            for e in ("goal_mass", "hui_maze", "c_maze") for z in (2, 3, 10, 30, 100)
            for s in range(a.seeds)]
