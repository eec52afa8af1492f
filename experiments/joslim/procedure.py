"""Train a slimmable network with Joslim (or Slim), then evaluate its front (joslim.md §4).

    workdir/train/        lib.train.run with experiments.joslim.task:Joslim
    workdir/front.json    every evaluated sub-network (α, cost, validation and test top-1,
                          test top-5), the selected front, the area, with the settings
    workdir/front.png     test top-1 against cost, the evaluated points and the front
    workdir/config.json, results.json

The candidates: Joslim's history without its last 2 entries, peeled (lib.slim.pareto.peel)
on (calibrated loss, cost); TwoStage's: the same from a search after training
(`search_after_training`); Slim's: joslim.eval_grid uniform widths; each with the smallest
and the full width. Each is evaluated after BN recalibration on the train split (its first
joslim.recalibration_batches batches; 0 = all). The front is chosen on the validation split
(the paper's code chose it on the test set: it had no other), and reported on the test split:
its area under test top-1 over cost in [cost of l·1, 1] (lib.slim.pareto.area).

Also measured: the full and smallest nets' losses on one validation batch at the start and
the end (spec §6 hard 6), the smallest net's test top-1 with the shared training statistics
and after recalibration (hard 7), the history's cost coverage (hard 5) and how often MOBO's
samples land within 0.02 of their cost targets (soft).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments.joslim import task as task_lib
from lib import analysis, files, losses, procedure, sharding, train
from lib import config as config_lib
from lib.slim import cost as cost_lib
from lib.slim import pareto, sandwich

EXCLUDED_LAST = 2  # the paper's code leaves the history's last 2 entries out
COVERAGE_BINS = 5


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    workdir = files.as_path(workdir)
    trainer = train.Trainer(config)
    task = trainer.setup.task
    if not isinstance(task, task_lib.Joslim):
        raise config_lib.ConfigError("experiments.joslim.procedure needs task="
                                     "experiments.joslim.task:Joslim")
    evaluator = Evaluator(trainer, config)
    start = evaluator.losses(trainer.starting_state()[0])
    results = train.run(config, workdir / "train")
    state = trainer.place(train.load_final(workdir / "train")[2])
    values = procedure.evaluation(workdir / "front.json", config.joslim,
                                  lambda: front(evaluator, state, start, config))
    if jax.process_index() == 0:
        plot(values, workdir / "front.png")
    scalars = {k: v for k, v in values.items() if not isinstance(v, list | dict)}
    return procedure.finish(workdir, config, {**results, **scalars})


class Evaluator(sandwich.SubnetEvaluator):
    """Sub-networks of the trained state by their configuration α, and the losses of the
    full and the smallest net (hard 6)."""

    def __init__(self, trainer, config):
        super().__init__(trainer, config, config.joslim.recalibration_batches)
        self.task = trainer.setup.task
        self.arch = self.task.arch
        setup = trainer.setup

        def batch_losses(state, batch, row):
            model = setup.model(state)
            full = model(batch["image"], train=True)
            smallest = model(batch["image"], train=True, masks=sandwich.masks_of(model, row))
            mask = batch["mask"]
            return [jnp.sum(losses.softmax_cross_entropy(x, batch["label"]) * mask)
                    / jnp.sum(mask) for x in (full, smallest)]

        self._losses = jax.jit(batch_losses)

    def row(self, alpha) -> np.ndarray:
        return task_lib.counts(self.arch, [alpha])[0]

    def losses(self, state) -> tuple[float, float]:
        """Cross-entropy of the full and the smallest net on the first validation batch."""
        batch = sharding.global_batch(next(iter(self.validation)), self.trainer.batch_sharding)
        smallest = self.row(self.arch.space.smallest())
        return tuple(float(v) for v in self._losses(state, batch, smallest))

    def recalibrated(self, state, alpha) -> dict:
        return super().recalibrated(state, self.row(alpha))

    def accuracy(self, state, alpha, batches) -> tuple[float, float]:
        return super().accuracy(state, self.row(alpha), batches)


def candidates(task, extra: dict) -> list[np.ndarray]:
    """The configurations to evaluate: peeled history (joslim) or a uniform grid (slim), then
    the smallest and the full width."""
    space, cfg = task.arch.space, task.cfg
    size = int(extra["history/size"])
    out = []
    if cfg.method in ("joslim", "twostage"):
        keep = max(size - EXCLUDED_LAST, 0)
        alphas = task_lib.stored(task.arch, extra["history/alpha"][:keep])
        taken = pareto.peel(extra["history/loss"][:keep], extra["history/cost"][:keep])
        out = list(alphas[taken])
    else:
        out = [np.asarray(space.uniform(f)) for f in np.linspace(cfg.low, cfg.high,
                                                                 cfg.eval_grid)]
    return out + [np.asarray(space.smallest()), np.asarray(space.full())]


def search_after_training(evaluator: Evaluator, state, extra: dict) -> dict:
    """TwoStage's second stage: a history of as many configurations as Joslim visits, chosen
    by the same sampler (uniform widths, the full width, then MOBO) on the trained weights,
    each scored by its loss on the first validation batch (the weights no longer change, so
    no calibration is needed)."""
    task = evaluator.task
    out = {k: np.array(v) for k, v in extra.items()}
    for size in range(task.capacity):
        rng = np.random.default_rng([evaluator.config.seed, size, 1])
        alpha, target = task.next_config(out, size, rng, method="joslim")
        out["history/alpha"][size], out["history/target"][size] = alpha, target
        out["history/cost"][size] = cost_lib.cost(task.arch, alpha, task.cfg.cost)
        out["history/loss"][size] = task.calibrated(evaluator.trainer, state, 0, [alpha])[0]
    out["history/size"] = np.asarray(task.capacity, np.int32)
    return out


def front(evaluator: Evaluator, state, start: tuple, config) -> dict:
    task, cfg = evaluator.task, config.joslim
    extra = {k: np.asarray(v) for k, v in jax.device_get(state["extra"]).items()}
    if cfg.method == "twostage":
        extra = search_after_training(evaluator, state, extra)
    points = []
    for alpha in candidates(task, extra):
        calibrated = evaluator.recalibrated(state, alpha)
        val, _ = evaluator.accuracy(calibrated, alpha, evaluator.validation)
        top1, top5 = evaluator.accuracy(calibrated, alpha, evaluator.test)
        points.append({"alpha": [float(a) for a in alpha], "cost": cost_lib.cost(
            task.arch, alpha, cfg.cost), "validation_top1": val, "test_top1": top1,
            "test_top5": top5})
    costs = np.array([p["cost"] for p in points])
    chosen = pareto.efficient(np.stack([costs, -np.array([p["validation_top1"]
                                                          for p in points])], axis=1))
    lower = cost_lib.cost(task.arch, task.arch.space.smallest(), cfg.cost)
    test = np.array([p["test_top1"] for p in points])
    end = evaluator.losses(state)
    smallest = np.asarray(task.arch.space.smallest())
    shared, _ = evaluator.accuracy(state, smallest, evaluator.test)
    recalibrated = evaluator.recalibrated(state, smallest)
    changed = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(
        jax.tree.leaves(jax.device_get(state["batch_stats"])),
        jax.tree.leaves(jax.device_get(recalibrated["batch_stats"]))))
    size = int(extra["history/size"])
    history_costs = extra["history/cost"][:size]
    targets = extra["history/target"][:size]
    sampled = ~np.isnan(targets)
    bins = np.linspace(lower, 1.0, COVERAGE_BINS + 1)
    return {
        "points": points, "front": [int(i) for i in np.flatnonzero(chosen)],
        "joslim/area_test_top1": pareto.area(costs[chosen], test[chosen], lower, 1.0),
        "joslim/front_size": int(chosen.sum()),
        "joslim/full_test_top1": points[-1]["test_top1"],
        "joslim/smallest_test_top1": points[-2]["test_top1"],
        "joslim/smallest_test_top1_shared_bn": shared,
        "joslim/recalibration_changed": changed,
        "joslim/loss_full_start": start[0], "joslim/loss_full_end": end[0],
        "joslim/loss_smallest_start": start[1], "joslim/loss_smallest_end": end[1],
        "joslim/history_size": size,
        "joslim/cost_coverage_min": int(np.histogram(history_costs, bins)[0].min()),
        "joslim/mobo_samples": int(sampled.sum()),
        "joslim/mobo_on_target": float(np.mean(np.abs(history_costs[sampled]
                                                      - targets[sampled]) <= 0.02))
        if sampled.any() else float("nan"),
    }


def plot(values: dict, path) -> None:
    fig, ax = analysis.pyplot().subplots(figsize=(5.5, 3.8))
    points = values["points"]
    ax.scatter([p["cost"] for p in points], [p["test_top1"] for p in points], s=10,
               color="0.6", label="evaluated")
    chosen = sorted((points[i] for i in values["front"]), key=lambda p: p["cost"])
    ax.step([p["cost"] for p in chosen], [p["test_top1"] for p in chosen], where="post",
            marker="o", ms=3, label="front (chosen on validation)")
    ax.set_xlabel("cost (ratio of the full net's MACs)")
    ax.set_ylabel("test top-1")
    ax.legend(fontsize=8)
    analysis.save(fig, path)
