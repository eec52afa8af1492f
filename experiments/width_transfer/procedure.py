"""Width transfer end to end (width_transfer.md §4, §6): optimise the widths on the target
and on a cheap proxy, project the proxy's onto the target, and train the uniform, direct and
transferred widths from scratch at equal FLOPs.

    workdir/optimise_target/   MorphNet's shrink run on the target at w0
    workdir/optimise_proxy/    the same on the proxy (narrower, shallower, coarser, less data)
    workdir/final_{uniform,direct,transferred}/   from-scratch training of each width set
    workdir/widths.json        each set's channel counts and multipliers, FLOPs, the overhead
    workdir/multipliers.png    per-dim multipliers: direct against projected proxy
    workdir/config.json, results.json

Results: each stage's eval metrics under `stages`, final/<arm>/top1 (test), flops/<arm>,
spearman (projected proxy multipliers against the direct ones over the target's dims, and per
stage), overhead/factor (the optimiser's training FLOPs on the target over on the proxy) and
overhead/clock_factor (the same ratio of the shrink runs' training clocks).
"""

from __future__ import annotations

import json
import math

import jax
import ml_collections
import numpy as np
from scipy import stats

from experiments.width_transfer import morphnet, nets, overhead, transfer
from lib import config as config_lib
from lib import data, files, procedure, train
from lib.train import CLOCK_KEY

ARMS = ("uniform", "direct", "transferred")
TASK = "experiments.width_transfer.task:MorphNetShrink"


def check(config) -> None:
    """ConfigError for settings a later stage would refuse."""
    wt = config.width_transfer
    for key, value, valid in (("optimizer", wt.optimizer, ("morphnet",)),
                              ("prune_rule", wt.prune_rule, morphnet.PRUNE_RULES),
                              ("group_reduce", wt.group_reduce, morphnet.GROUP_REDUCE),
                              ("stacking", wt.stacking, transfer.STACKING)):
        if value not in valid:
            raise config_lib.ConfigError(f"width_transfer.{key}={value!r}; valid choices: "
                                         f"{', '.join(valid)}")
    if config.model.name != nets.MODEL:
        raise config_lib.ConfigError(f"width transfer trains {nets.MODEL} (model.name="
                                     f"{config.model.name!r})")
    try:
        target = nets.family_of(config.model, 1)
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from None
    proxy = target.proxy(wt.proxy_width, wt.proxy_depth)
    if proxy.widths != tuple(proxy.widths[0] * 2**s for s in range(3)):
        raise config_lib.ConfigError(
            f"width_transfer.proxy_width={wt.proxy_width} rounds the stage widths "
            f"{target.widths} to {proxy.widths}, which is not w, 2w, 4w as the proxy net "
            "needs; choose a factor that keeps the ratios (e.g. 0.5 or 0.25 of an even width)")
    pool = config.data.pool / wt.proxy_resolution
    if abs(pool - round(pool)) > 1e-9:
        raise config_lib.ConfigError(
            f"width_transfer.proxy_resolution={wt.proxy_resolution} with data.pool="
            f"{config.data.pool}: the proxy's inputs come from data.pool={pool:g}, which must "
            "be a whole number")


def _shrink_steps(examples: int, config, epochs_share: float = 1.0) -> int:
    return max(1, math.ceil(config.width_transfer.shrink_epochs * epochs_share * examples
                            / config.data.batch_size))


def stages(config, info) -> dict:
    """{name: stage config} of the two shrink runs; the proxy's family follows from it."""
    wt = config.width_transfer
    proxy_examples = max(1, round(wt.proxy_data * info.num_train))
    common = {"task": TASK, "model.widths": (), "optim.schedule": "constant",
              "optim.weight_decay": 0.0, "optim.warmup_steps": 0}
    target = procedure.stage_config(config, **common, total_steps=_shrink_steps(
        info.num_train, config))
    family = nets.family_of(config.model, 1).proxy(wt.proxy_width, wt.proxy_depth)
    proxy = procedure.stage_config(
        config, **common, total_steps=_shrink_steps(proxy_examples, config, wt.proxy_epochs),
        **{"model.depth": family.depth, "model.width": family.widths[0],
           "data.pool": round(config.data.pool / wt.proxy_resolution),
           "data.train_examples": proxy_examples})
    return {"optimise_target": target, "optimise_proxy": proxy}


def optimised(stage_dir, config) -> tuple[nets.Family, dict[str, int], dict]:
    """(family, MorphNet's channel counts, the shrink run's results) of a finished shrink."""
    _, setup, state = train.load_final(stage_dir)
    model = setup.model(state)
    family = setup.task.family
    wt = config.width_transfer
    scores = morphnet.channel_scores(model, family, wt.group_reduce, xp=np)
    counts = morphnet.optimise(scores, family, wt.prune_rule, wt.threshold, wt.ratio)
    results = json.loads((files.as_path(stage_dir) / "results.json").read_text())
    return family, counts, results


def spearman(a: dict, b: dict, dims) -> float | None:
    """Spearman's ρ of two multiplier sets over `dims`; None where either is constant."""
    x, y = [a[d] for d in dims], [b[d] for d in dims]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(stats.spearmanr(x, y).statistic)


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    check(config)
    workdir = files.as_path(workdir)
    info = data.get_info(config.data)
    shrink = stages(config, info)
    optimised_runs, summaries = {}, {}
    for name, stage in shrink.items():
        summaries[name] = procedure.summary(train.run(stage, workdir / name))
        optimised_runs[name] = optimised(workdir / name, config)
    target, direct, target_results = optimised_runs["optimise_target"]
    proxy, proxy_counts, proxy_results = optimised_runs["optimise_proxy"]
    budget = target.flops(target.base)
    projected = transfer.project(transfer.multipliers(proxy_counts, proxy.base), target.dims,
                                 config.width_transfer.stacking)
    transferred = transfer.renormalise(transfer.widths(projected, target.base), target.flops,
                                       budget)
    widths = {"uniform": dict(target.base), "direct": direct, "transferred": transferred}
    results = {"budget": budget}
    for arm in ARMS:
        stage = procedure.stage_config(config, **{
            "model.widths": tuple(int(widths[arm][d]) for d in target.dims),
            "total_steps": config.width_transfer.final_steps})
        out = train.run(stage, workdir / f"final_{arm}")
        summaries[f"final_{arm}"] = procedure.summary(out)
        results[f"final/{arm}/top1"] = out["eval/accuracy"]
        results[f"flops/{arm}"] = target.flops(widths[arm])
    direct_m = transfer.multipliers(direct, target.base)
    results["spearman"] = spearman(projected, direct_m, target.dims)
    for s in (1, 2, 3):
        rho = spearman(projected, direct_m, [d for d in target.dims if d.startswith(f"stage{s}/")])
        if rho is not None:  # a stage whose projected multipliers are all equal has none
            results[f"spearman/stage{s}"] = rho
    runs = {name: overhead.OptimiserRun(family.flops(family.base),
                                        stage.total_steps * stage.data.batch_size)
            for name, family, stage in (("target", target, shrink["optimise_target"]),
                                        ("proxy", proxy, shrink["optimise_proxy"]))}
    results["overhead/factor"] = overhead.reduction(runs["target"], runs["proxy"])
    results["overhead/clock_factor"] = (target_results[CLOCK_KEY]
                                        / proxy_results[CLOCK_KEY])
    record = {"target_dims": list(target.dims), "proxy_dims": list(proxy.dims),
              "widths": widths, "proxy": proxy_counts, "projected": projected,
              "direct_multipliers": direct_m,
              "optimiser": {k: {"macs_per_image": r.macs_per_image, "images": r.images,
                                "train_flops": r.train_flops} for k, r in runs.items()}}
    if jax.process_index() == 0:
        files.write_text_atomic(workdir / "widths.json", json.dumps(record, indent=2) + "\n")
        plot(record, workdir / "multipliers.png")
    return procedure.finish(workdir, config, {**results, "stages": summaries})


def plot(record: dict, path) -> None:
    """Per-dim multipliers on the target: directly optimised against projected from the
    proxy (and the transferred widths after renormalisation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = record["target_dims"]
    base = record["widths"]["uniform"]
    x = np.arange(len(dims))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(dims)), 3.5))
    ax.bar(x - 0.27, [record["direct_multipliers"][d] for d in dims], 0.27, label="direct")
    ax.bar(x, [record["projected"][d] for d in dims], 0.27, label="proxy, projected")
    ax.bar(x + 0.27, [record["widths"]["transferred"][d] / base[d] for d in dims], 0.27,
           label="transferred (renormalised)")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(x, dims, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("multiplier of w0")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with files.as_path(path).open("wb") as f:
        fig.savefig(f, dpi=120)
    plt.close(fig)
