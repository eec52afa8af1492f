"""width_transfer's own config section: the width optimiser (MorphNet, AutoSlim or DMCP), the
proxy, the projection and the final trainings (experiments.width_transfer.task, .procedure).
Experiment configs start from `get_config()` here."""

import ml_collections

from configs import base
from lib import config as config_lib
from lib.config_rules import at_least, greater_than, in_range


def declare(c: ml_collections.ConfigDict) -> None:
    """This paper's section, with its defaults, in `c`."""
    c.width_transfer = ml_collections.ConfigDict()  # experiments.width_transfer (task, procedure)
    c.width_transfer.optimizer = "morphnet"  # the width optimiser: morphnet (shrink with the FLOPs-weighted γ penalty, prune, expand) | autoslim (slimmable supernet, greedy cuts, expand) | dmcp (Markov keep probabilities under an expected-FLOPs penalty, expand)
    c.width_transfer.penalty = 0.5   # MorphNet λ (spec §6; a sweep over 0.1 and 1 in the README)
    c.width_transfer.group_reduce = "sum"  # g_c of a fused channel over its BN layers' |γ|: sum | max
    c.width_transfer.prune_rule = "budget"  # budget (drop the smallest g_c until FLOPs ≤ ratio·B) | threshold (drop g_c < threshold)
    c.width_transfer.threshold = 0.01  # threshold rule: τ
    c.width_transfer.ratio = 0.5     # MorphNet's budget rule and AutoSlim's greedy cuts: down to ρ·B FLOPs before expanding
    c.width_transfer.shrink_epochs = 4.0  # epochs of the optimiser's training set in its training run (MorphNet's shrink, AutoSlim's supernet)
    c.width_transfer.supernet_samples = 2  # AutoSlim: random sub-networks per step besides the full and the smallest (the sandwich rule)
    c.width_transfer.supernet_low = 0.42  # AutoSlim: the smallest width multiplier the supernet trains (the greedy cuts stop there)
    c.width_transfer.supernet_sampling = "uniform"  # AutoSlim: uniform (f·1, f ~ U(low, 1): Slim's) | layerwise (α_d ~ U(low, 1) per dim)
    c.width_transfer.dmcp_groups = 10  # DMCP: channel groups per dim (at most its w0), the Markov chain's states
    c.width_transfer.dmcp_penalty = 2.0  # DMCP: λ of λ·max(0, E[FLOPs]/B − ratio) (our form; the spec names only an expected-FLOPs penalty)
    c.width_transfer.dmcp_init = 3.0  # DMCP: initial transition logits (σ(3) = 0.95 per group kept)
    c.width_transfer.recalibration_batches = 2  # AutoSlim: train batches (of data.eval_batch_size) recalibrating BN before a sub-network is scored; 0 = the whole split
    c.width_transfer.proxy_width = 0.5  # proxy w0 = round(this · target w0)
    c.width_transfer.proxy_depth = 0.5  # proxy blocks per stage = round(this · target's), at least 1
    c.width_transfer.proxy_resolution = 0.5  # proxy input side = this · target's (by a larger data.pool)
    c.width_transfer.proxy_data = 0.3  # proxy training set = this share of the target's (data.train_examples)
    c.width_transfer.proxy_epochs = 1.0  # proxy shrink epochs = this share of shrink_epochs (the data axis' "fewer epochs")
    c.width_transfer.stacking = "replicate"  # depth projection: replicate | tile | interpolate (transfer.STACKING)
    c.width_transfer.final_steps = 1500  # from-scratch training of the uniform, direct and transferred widths


def get_config() -> ml_collections.ConfigDict:
    """configs/base.py's keys plus this paper's section."""
    return config_lib.add_sections(base.get_config(), __name__)


RULES = {
    "width_transfer.penalty": at_least(0),
    "width_transfer.threshold": at_least(0),
    "width_transfer.ratio": in_range(0, 1, low_open=True),
    "width_transfer.shrink_epochs": greater_than(0),
    "width_transfer.supernet_samples": at_least(0),
    "width_transfer.supernet_low": in_range(0, 1, low_open=True),
    "width_transfer.recalibration_batches": at_least(0),
    "width_transfer.dmcp_groups": at_least(2),
    "width_transfer.dmcp_penalty": at_least(0),
    "width_transfer.proxy_width": in_range(0, 1, low_open=True),
    "width_transfer.proxy_depth": in_range(0, 1, low_open=True),
    "width_transfer.proxy_resolution": in_range(0, 1, low_open=True),
    "width_transfer.proxy_data": in_range(0, 1, low_open=True),
    "width_transfer.proxy_epochs": in_range(0, 1, low_open=True),
    "width_transfer.final_steps": at_least(1),
}
