"""Plan2vec on the user's data (plan2vec.md §2–§3): robot rope manipulation (Nair et al.
2017) or StreetLearn Manhattan panoramas as 64×64 "omni-gray" frames, in the array format of
experiments/plan2vec/samples.py (an .npz with 'images', 'trajectory', 'step', and for
StreetLearn 'position': (longitude × 0.75, latitude), the spec's correction of longitude, or
any planar coordinates). The radii are in the unit of 'position': arg `radius` is the success
radius (the spec does not give StreetLearn's), the ground-truth graph's 0.9 × and a shortcut
1.5 × it (the mazes' 0.036 and 0.06 against 0.04).

Local metric: binary, label 0 = the frame itself or the next one (the spec's rope uses
|Δt| ≤ 2: ours is 1), 1 = a random frame; BCE with logits; Adam lr 1e-4, betas (0.9, 0.999),
weight decay 0.01 (PyTorch's coupled L2; it applies to every stage), batch 16, 100 epochs of
the transitions. Rope: the conv_large metric; StreetLearn: conv_deep. The VAE's rate: 3e-5
for StreetLearn (spec §3). The rest as configs/pointmass.py with frames.

Command:
    python -m lib.main --config=experiments/plan2vec/configs/user_data.py:data=streetlearn \\
      --config.plan2vec.data_file=/data/streetlearn_small.npz --workdir=/tmp/p2v_streetlearn
Args: data (rope | streetlearn), latent, seed, radius (success radius in the unit of
'position'; default the mazes' 0.04), quick (tiny steps and MLPs, for a first look; it reads
the open-room maze's frames, an offline stand-in, unless given --config.plan2vec.env=file),
steps (local-metric steps: the spec's 100 epochs are 100·T/16 for T transitions; the default
62,500 is 100 epochs of 10,000).
Hardware: one GPU. Expected wall time: not measured (no data and no GPU here).
Paper: StreetLearn small & medium, oracle planner success 73 ± 5 % (P5); search cost on
StreetLearn, nodes queried Dijkstra 1,470, A* 342, greedy Φ 123 ≈ the path length (P6).
Rope: frames without positions; success = reaching the goal frame or one of its neighbours.
"""

from experiments.plan2vec import config as paper_config
from lib.config import parse_arg


def get_config(arg=None):
    a = parse_arg(arg, data="streetlearn", latent=3, seed=0, steps=62_500, radius=0.04,
                  quick=False)
    c = paper_config.procedure_config(a.seed)
    c.plan2vec.env = "file"
    c.plan2vec.metric_net = "conv_deep" if a.data == "streetlearn" else "conv_large"
    c.plan2vec.metric_loss, c.plan2vec.self_pair_probability = "bce", 0.5
    c.plan2vec.metric_lr, c.plan2vec.metric_batch = 1e-4, 16
    c.plan2vec.metric_steps = a.steps
    c.plan2vec.neighbours = 30
    c.plan2vec.encoder, c.plan2vec.latent = "resnet18_coord", a.latent
    c.plan2vec.embedding_lr, c.plan2vec.embedding_batch = 1e-4, 64
    c.plan2vec.embedding_steps = 20_000
    c.plan2vec.chunk = 200
    c.plan2vec.success_radius = a.radius
    c.plan2vec.gt_radius, c.plan2vec.long_edge = 0.9 * a.radius, 1.5 * a.radius
    if a.data == "streetlearn":
        c.plan2vec.vae_lr = 3e-5
    c.optim.b1, c.optim.b2, c.optim.weight_decay = 0.9, 0.999, 0.01
    if a.quick:  # a smoke run; without a data file, on offline stand-in frames
        paper_config.smoke(c)
        c.plan2vec.env, c.plan2vec.trajectories, c.plan2vec.image_size = "open_room", 30, 16
    c.total_steps = c.plan2vec.metric_steps  # the procedure sets each stage's own
    return c
