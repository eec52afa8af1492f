"""Width transfer end to end (width_transfer.md §4, §6): optimise the widths on the target
and on a cheap proxy, project the proxy's onto the target, and train the uniform, direct and
transferred widths from scratch at equal FLOPs.

    workdir/optimise_target/   the optimiser's training run on the target at w0 (MorphNet's
                               shrink, AutoSlim's supernet, or DMCP's training)
    workdir/optimise_proxy/    the same on the proxy (narrower, shallower, coarser, less data)
    workdir/final_{uniform,direct,transferred}/   from-scratch training of each width set
    workdir/widths.json        each set's channel counts and multipliers, FLOPs, the overhead
    workdir/multipliers.png    per-dim multipliers: direct against projected proxy
    workdir/config.json, results.json

Results: each stage's eval metrics under `stages`, final/<arm>/top1 (test),
final/transfer_gap (transferred minus direct), flops/<arm>,
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

from experiments.width_transfer import autoslim, dmcp, morphnet, nets, overhead, transfer
from lib import config as config_lib
from lib import data, files, procedure, train
from lib.slim import sandwich
from lib.train import CLOCK_KEY

ARMS = ("uniform", "direct", "transferred")
TASKS = {"morphnet": "experiments.width_transfer.task:MorphNetShrink",
         "autoslim": "experiments.width_transfer.task:AutoSlimSupernet",
         "dmcp": "experiments.width_transfer.task:DMCPTraining"}


def check(config) -> None:
    """ConfigError for settings a later stage would refuse."""
    wt = config.width_transfer
    for key, value, valid in (("optimizer", wt.optimizer, tuple(TASKS)),
                              ("prune_rule", wt.prune_rule, morphnet.PRUNE_RULES),
                              ("group_reduce", wt.group_reduce, morphnet.GROUP_REDUCE),
                              ("supernet_sampling", wt.supernet_sampling, autoslim.SAMPLING),
                              ("stacking", wt.stacking, transfer.STACKING)):
        if value not in valid:
            raise config_lib.ConfigError(f"width_transfer.{key}={value!r}; valid choices: "
                                         f"{', '.join(valid)}")
    try:
        target = nets.family_of(config.model, 1)
        proxy = target.proxy(wt.proxy_width, wt.proxy_depth)
        built = nets.family_of(config_lib.updated(config, proxy.model_keys()).model, 1)
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from None
    if built != proxy:
        raise config_lib.ConfigError(
            f"width_transfer.proxy_width={wt.proxy_width} makes the proxy {proxy}, which its "
            f"model config cannot build (it builds {built}); choose a factor that keeps the "
            "stages' width ratios (e.g. 0.5 or 0.25 of an even width)")
    try:
        target.arch, proxy.arch  # noqa: B018 (layouts the width space refuses)
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from None
    if config.data.image_size:
        if round(wt.proxy_resolution * config.data.image_size) < 1:
            raise config_lib.ConfigError(
                f"width_transfer.proxy_resolution={wt.proxy_resolution} crops the proxy's "
                f"inputs of data.image_size={config.data.image_size} to nothing")
    else:
        pool = config.data.pool / wt.proxy_resolution
        if abs(pool - round(pool)) > 1e-9 or round(pool) % config.data.pool:
            raise config_lib.ConfigError(
                f"width_transfer.proxy_resolution={wt.proxy_resolution} with data.pool="
                f"{config.data.pool}: the proxy's inputs come from data.pool={pool:g}, which "
                "must be a whole multiple of data.pool (e.g. proxy_resolution 0.5 or 0.25)")
    if wt.optimizer == "autoslim" and not config.data.validation_examples:
        raise config_lib.ConfigError("AutoSlim's greedy cuts score on the validation split; "
                                     "set data.validation_examples (e.g. 2000)")


def preflight(config, info) -> dict[str, tuple[nets.Family, overhead.OptimiserRun]]:
    """check(), then planned(), refusing what only the data's sizes reveal: AutoSlim cuts
    that the supernet's smallest widths cannot reach."""
    check(config)
    plan = planned(config, info)
    wt = config.width_transfer
    if wt.optimizer == "autoslim":
        for family, _ in plan.values():
            try:
                autoslim.reachable(family, wt.supernet_low, wt.ratio * family.flops(family.base))
            except ValueError as e:
                raise config_lib.ConfigError(str(e)) from None
    return plan


def _shrink_steps(examples: int, config, epochs_share: float = 1.0) -> int:
    return max(1, math.ceil(config.width_transfer.shrink_epochs * epochs_share * examples
                            / config.data.batch_size))


def stages(config, info) -> dict:
    """{name: stage config} of the optimiser's two training runs; the proxy's family follows
    from it. MorphNet's shrink trains at a constant learning rate without weight decay (the
    penalty is its only regulariser); AutoSlim's supernet with the config's optimiser, its
    warm-up shortened in proportion to the run's steps against the final training's."""
    wt = config.width_transfer
    proxy_examples = max(1, round(wt.proxy_data * info.num_train))
    common = {"task": TASKS[wt.optimizer], "model.widths": ()}
    if wt.optimizer == "morphnet":
        common.update({"optim.schedule": "constant", "optim.weight_decay": 0.0})
    if wt.optimizer == "dmcp":  # no weight decay on the transition logits
        exclude = config.optim.weight_decay_exclude
        common["optim.weight_decay_exclude"] = f"({exclude})|dmcp_logits" if exclude else \
            "dmcp_logits"
    steps = {"target": _shrink_steps(info.num_train, config),
             "proxy": _shrink_steps(proxy_examples, config, wt.proxy_epochs)}
    # MorphNet: no warm-up; AutoSlim, DMCP: the final training's, shortened with the run
    warmup = {k: 0 if wt.optimizer == "morphnet" else
              min(n, round(config.optim.warmup_steps * n / wt.final_steps))
              for k, n in steps.items()}
    target = procedure.stage_config(config, **common, total_steps=steps["target"],
                                    **{"optim.warmup_steps": warmup["target"]})
    family = nets.family_of(config.model, 1).proxy(wt.proxy_width, wt.proxy_depth)
    resolution = ({"data.image_size": round(wt.proxy_resolution * config.data.image_size)}
                  if config.data.image_size else
                  {"data.pool": round(config.data.pool / wt.proxy_resolution)})
    proxy = procedure.stage_config(
        config, **common, total_steps=steps["proxy"], **family.model_keys(), **resolution,
        **{"data.train_examples": proxy_examples, "optim.warmup_steps": warmup["proxy"]})
    return {"optimise_target": target, "optimise_proxy": proxy}


def optimised(stage_dir, config) -> tuple[nets.Family, dict[str, int], dict, list]:
    """(family, the optimiser's channel counts, its training run's results, AutoSlim's cuts
    or []) of a finished training run."""
    wt = config.width_transfer
    stage, setup, state = train.load_final(stage_dir)
    family = setup.task.family
    trace = []
    if wt.optimizer == "morphnet":
        scores = morphnet.channel_scores(setup.model(state), family, wt.group_reduce, xp=np)
        counts = morphnet.optimise(scores, family, wt.prune_rule, wt.threshold, wt.ratio)
    elif wt.optimizer == "dmcp":
        logits = np.asarray(setup.model(state).dmcp_logits.value)
        counts = dmcp.optimise(logits, family, wt.dmcp_groups)
    else:
        trainer = train.Trainer(stage)
        state = trainer.place(state)
        evaluator = sandwich.SubnetEvaluator(trainer, stage, wt.recalibration_batches)

        def score(channels: dict) -> float:
            row = [channels[d] for d in family.dims]
            calibrated = evaluator.recalibrated(state, row)
            return evaluator.accuracy(calibrated, row, evaluator.validation)[0]

        counts, trace = autoslim.optimise(family, score, wt.supernet_low, wt.ratio)
    results = json.loads((files.as_path(stage_dir) / "results.json").read_text())
    return family, counts, results, trace


def optimiser_run(family: nets.Family, stage, config) -> overhead.OptimiserRun:
    """What the optimiser's training run cost: MorphNet and DMCP train the network at w0
    (DMCP's masks scale channels, they skip none), AutoSlim's supernet the full width, its
    samples and the smallest every step (their expected MACs)."""
    wt = config.width_transfer
    macs = (family.flops(family.base) if wt.optimizer in ("morphnet", "dmcp") else
            autoslim.training_macs(family, wt.supernet_samples, wt.supernet_low,
                                   wt.supernet_sampling))
    return overhead.OptimiserRun(macs, stage.total_steps * stage.data.batch_size)


def planned(config, info) -> dict[str, tuple[nets.Family, overhead.OptimiserRun]]:
    """{stage: (family at its input side, what its training run costs)} of the optimiser's
    two runs, before they train."""
    side, _, channels = info.image_shape
    out = {}
    for name, stage in stages(config, info).items():
        stage_side = stage.data.image_size or side * config.data.pool // stage.data.pool
        family = nets.family_of(stage.model, stage_side, channels, info.num_classes)
        out[name] = (family, optimiser_run(family, stage, config))
    return out


def spearman(a: dict, b: dict, dims) -> float | None:
    """Spearman's ρ of two multiplier sets over `dims`; None where either is constant."""
    x, y = [a[d] for d in dims], [b[d] for d in dims]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(stats.spearmanr(x, y).statistic)


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    info = data.get_info(config.data)
    plan = preflight(config, info)
    workdir = files.as_path(workdir)
    shrink = stages(config, info)
    optimised_runs, summaries = {}, {}
    for name, stage in shrink.items():
        summaries[name] = procedure.summary(train.run(stage, workdir / name))
        optimised_runs[name] = optimised(workdir / name, config)
    target, direct, target_results, target_trace = optimised_runs["optimise_target"]
    proxy, proxy_counts, proxy_results, proxy_trace = optimised_runs["optimise_proxy"]
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
    results["final/transfer_gap"] = (results["final/transferred/top1"]
                                     - results["final/direct/top1"])
    direct_m = transfer.multipliers(direct, target.base)
    results["spearman"] = spearman(projected, direct_m, target.dims)
    for stage_name in sorted({d.split("/")[0] for d in target.dims if "/" in d}):
        rho = spearman(projected, direct_m, [d for d in target.dims
                                             if d.startswith(f"{stage_name}/")])
        if rho is not None:  # a stage whose projected multipliers are all equal has none
            results[f"spearman/{stage_name}"] = rho
    runs = {"target": plan["optimise_target"][1], "proxy": plan["optimise_proxy"][1]}
    results["overhead/factor"] = overhead.reduction(runs["target"], runs["proxy"])
    results["overhead/clock_factor"] = (target_results[CLOCK_KEY]
                                        / proxy_results[CLOCK_KEY])
    record = {"target_dims": list(target.dims), "proxy_dims": list(proxy.dims),
              "widths": widths, "proxy": proxy_counts, "projected": projected,
              "direct_multipliers": direct_m, "optimizer": config.width_transfer.optimizer,
              "cuts": {"target": target_trace, "proxy": proxy_trace},
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
