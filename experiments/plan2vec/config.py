"""plan2vec's own config section: the data (a procedural maze or the user's arrays), the local
metric, the graph, the embedding and the planning evaluation (experiments.plan2vec.procedure).
Experiment configs start from `get_config()` here; the procedure derives each training
stage's model, task, data and optimizer keys from this section."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import at_least, each, finite, greater_than, in_range


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's section, with its defaults, in `c`."""
    c.plan2vec = ml_collections.ConfigDict()  # plan2vec (experiments.plan2vec.procedure)
    c.plan2vec.env = "c_maze"        # open_room | c_maze | hui_maze (procedural, spec §6) | point_goal_mass | point_c_maze | point_hui_maze (MuJoCo, spec §3; the [mujoco] extra) | file (the user's arrays in plan2vec.data_file)
    c.plan2vec.data_file = ""        # env=file: an .npz in experiments/plan2vec/samples.py's format (rope, StreetLearn, MuJoCo renders)
    c.plan2vec.extra_walls = ()      # procedural mazes: more walls, x_min, x_max, y_min, y_max each, one flat list
    c.plan2vec.trajectories = 150    # procedural mazes: random-walk trajectories
    c.plan2vec.trajectory_steps = 10  # frames per trajectory
    c.plan2vec.step_size = 0.025     # length of a move along each axis (arena units)
    c.plan2vec.image_size = 32       # rendered frames are image_size × image_size grey
    c.plan2vec.inputs = "frames"     # what the nets see: frames (images) | state (the true (x, y) as a 1×1×2 input: the paper's state-input runs, P2–P4; needs positions)
    c.plan2vec.renderer = "auto"     # point-mass frames: auto (MuJoCo's renderer where OpenGL works, else ours) | mujoco | ours (mazes.render of the simulated positions)
    c.plan2vec.metric_net = "mlp"    # local metric φ: mlp (spec §6) | conv_large (the code's mazes) | conv_deep (StreetLearn)
    c.plan2vec.metric_loss = "bce"   # bce (near 0 / random 1; φ = the far probability) | smooth_l1 (regression on 0 same, 1 next, 2 random: the code's image mazes)
    c.plan2vec.self_pair_probability = 0.625  # a near pair is (x_t, x_t) with this probability, else (x_t, x_t+1) (spec §6: 5/8)
    c.plan2vec.metric_steps = 1500   # local metric: Adam steps
    c.plan2vec.metric_batch = 128    # pairs per step: the first half near, the rest random
    c.plan2vec.metric_lr = 1e-3      # local metric: Adam learning rate
    c.plan2vec.neighbours = 15       # graph: each frame's k nearest by φ (0: use plan2vec.threshold)
    c.plan2vec.threshold = 0.0       # graph: with neighbours=0 the edges where φ ≤ this (φ units); with neighbours > 0 a cap, of the k nearest only those with φ ≤ this (0: no cap)
    c.plan2vec.trajectory_edges = True  # graph: also connect consecutive frames of a trajectory
    c.plan2vec.edge_weight = "one"   # one (hop counts: binary mode) | phi (the edge's φ; trajectory edges get plan2vec.threshold, or without one the mean φ of the k-th nearest)
    c.plan2vec.chunk = 300           # frames per block of the all-pairs φ
    c.plan2vec.objective = "distill"  # distill (a: regress planned path lengths) | value_iteration (b: the imagined planning game, experiments.plan2vec.value_iteration; the spec's maze rate is embedding_lr=3e-4, which configs/maze.py:objective=value_iteration sets)
    c.plan2vec.encoder = "mlp"       # f: mlp | resnet18 | resnet18_coord (CoordConv channels)
    c.plan2vec.encoder_widths = (256, 256)  # encoder=mlp: hidden widths
    c.plan2vec.latent = 10           # size of f(x)
    c.plan2vec.embedding_steps = 3000  # embedding: Adam steps
    c.plan2vec.embedding_batch = 256  # embedding: frames per step, paired with a permutation of themselves
    c.plan2vec.embedding_lr = 1e-3   # embedding: Adam learning rate
    c.plan2vec.centre_weight = 1e-3  # weight of ‖mean f(x)‖² over the first centre_nodes frames of a batch
    c.plan2vec.centre_nodes = 20
    c.plan2vec.vi_rollouts = 20      # objective (b): parallel imagined rollouts
    c.plan2vec.vi_horizon = 50       # objective (b): moves per rollout before a fresh (x, g); also the moves of one round
    c.plan2vec.vi_epsilon = 0.05     # objective (b): probability of a random neighbour instead of the greedy one
    c.plan2vec.vi_relabel = 5        # objective (b): hindsight relabelling every this many moves
    c.plan2vec.vi_updates = 6        # objective (b): optimizer steps per round of the game
    c.plan2vec.vi_batch = 32         # objective (b): transitions per minibatch
    c.plan2vec.vi_gamma = 1.0        # objective (b): discount γ
    c.plan2vec.vi_reward_scale = 0.2  # objective (b): r_scale (spec: 0.2 for mazes; the code's default 1/20)
    c.plan2vec.vi_target_rate = 0.1  # objective (b): θ_target ← (1 − rate)·θ_target + rate·θ after every step
    c.plan2vec.vae = True            # train the VAE baseline too (planning with its latent mean)
    c.plan2vec.vae_latent = 2        # VAE latent size (spec §3: 2)
    c.plan2vec.vae_widths = (512, 256)  # VAE encoder hidden widths (the decoder mirrors them; ours: of (256,), (512, 256) and (1024, 512, 256) its latent followed the true distances best)
    c.plan2vec.vae_steps = 3000      # VAE: Adam steps
    c.plan2vec.vae_batch = 128       # VAE: frames per step
    c.plan2vec.vae_sigma = 0.1       # VAE likelihood: > 0 = Gaussian with this σ, 0 = Bernoulli (BCE; the spec is silent: ours, as the Bernoulli VAE ignores its latent (KL 0.02) on spec §6's mazes)
    c.plan2vec.vae_warmup = 0        # VAE: steps over which the KL weight rises from 0 to 1 (0: always 1)
    c.plan2vec.vae_lr = 1e-3         # VAE: Adam learning rate (spec §3, paper scale: 1e-3 GoalMass, 3e-4 回-Maze, 1e-4 C-Maze, 3e-5 StreetLearn)
    c.plan2vec.metric_workdir = ""   # reuse this run's frames and trained local metric (its φ): the graph and the embedding are made here (graph or latent sweeps)
    c.plan2vec.eval_pairs = 200      # evaluation: random (start, goal) frame pairs
    c.plan2vec.eval_seed = 0         # evaluation: seed of those pairs
    c.plan2vec.horizon = 50          # greedy planning: at most this many moves
    c.plan2vec.success_radius = 0.04  # success: true distance to the goal below this (arena units)
    c.plan2vec.gt_radius = 0.036     # ground-truth graph: frames closer than this are neighbours
    c.plan2vec.long_edge = 0.06      # a learned edge longer than this (true distance) counts as a shortcut
    c.plan2vec.h_scale = 3.0         # A* heuristic: h_scale · Φ


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's section."""
    return config_lib.add_sections(base.get_config(), __name__)


def procedure_config(seed: int) -> ml_collections.ConfigDict:
    """What every plan2vec config shares: the procedure (which sets each stage's task, data,
    batch, steps and rate), raw frames, PyTorch-style biases, constant-rate Adam."""
    c = get_config()
    c.seed = seed
    c.procedure = "experiments.plan2vec.procedure:run"
    c.task = "experiments.plan2vec.tasks:LocalMetric"  # per stage: set by the procedure
    c.data.name = "experiments.plan2vec.samples:transitions"
    c.data.normalization, c.data.augment = "none", "none"
    c.data.eval_batch_size = 256
    c.model.bias_init = "torch"
    c.optim.name, c.optim.weight_decay, c.optim.schedule = "adam", 0.0, "constant"
    c.log_every, c.eval_every, c.checkpoint_every = 500, 0, 2000
    c.eval.top_k = 0
    return c


def smoke(c: ml_collections.ConfigDict) -> None:
    """A config's `quick` mode at paper scale: MLP nets, 10 steps per stage, 10 pairs."""
    c.plan2vec.metric_net, c.plan2vec.encoder, c.plan2vec.neighbours = "mlp", "mlp", 5
    c.plan2vec.metric_steps = c.plan2vec.embedding_steps = c.plan2vec.vae_steps = 10
    c.plan2vec.eval_pairs, c.plan2vec.horizon = 10, 10
    c.log_every, c.checkpoint_every, c.progress = 5, 0, False


RULES = {
    "plan2vec.extra_walls": each(finite),
    "plan2vec.trajectories": at_least(1),
    "plan2vec.trajectory_steps": at_least(2),
    "plan2vec.step_size": greater_than(0),
    "plan2vec.image_size": at_least(4),
    "plan2vec.self_pair_probability": in_range(0, 1),
    "plan2vec.metric_steps": at_least(1),
    "plan2vec.metric_batch": at_least(2),
    "plan2vec.metric_lr": greater_than(0),
    "plan2vec.neighbours": at_least(0),
    "plan2vec.threshold": at_least(0),
    "plan2vec.chunk": at_least(1),
    "plan2vec.encoder_widths": each(at_least(1)),
    "plan2vec.latent": at_least(1),
    "plan2vec.embedding_steps": at_least(1),
    "plan2vec.embedding_batch": at_least(2),
    "plan2vec.embedding_lr": greater_than(0),
    "plan2vec.centre_weight": at_least(0),
    "plan2vec.centre_nodes": at_least(1),
    "plan2vec.vi_rollouts": at_least(1),
    "plan2vec.vi_horizon": at_least(1),
    "plan2vec.vi_epsilon": in_range(0, 1),
    "plan2vec.vi_relabel": at_least(1),
    "plan2vec.vi_updates": at_least(1),
    "plan2vec.vi_batch": at_least(1),
    "plan2vec.vi_gamma": in_range(0, 1),
    "plan2vec.vi_reward_scale": greater_than(0),
    "plan2vec.vi_target_rate": in_range(0, 1, low_open=True),
    "plan2vec.vae_latent": at_least(1),
    "plan2vec.vae_widths": each(at_least(1)),
    "plan2vec.vae_steps": at_least(1),
    "plan2vec.vae_batch": at_least(1),
    "plan2vec.vae_lr": greater_than(0),
    "plan2vec.vae_warmup": at_least(0),
    "plan2vec.vae_sigma": at_least(0),
    "plan2vec.eval_pairs": at_least(1),
    "plan2vec.eval_seed": at_least(0),
    "plan2vec.horizon": at_least(1),
    "plan2vec.success_radius": greater_than(0),
    "plan2vec.gt_radius": greater_than(0),
    "plan2vec.long_edge": greater_than(0),
    "plan2vec.h_scale": at_least(0),
}
