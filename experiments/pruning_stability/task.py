"""Classification with filter pruning between epochs (pruning_stability.md §2, epoch loop).

After each epoch t with an event: A_pre = test accuracy, prune (filter_pruning.py here), A_post =
test accuracy; both are logged with the instability (A_pre − A_post)/A_pre. A_post is the
epoch's eval/accuracy (config eval_every = steps per epoch evaluates the other epochs). The
learning-rate schedule counts steps, so its epoch milestones give the per-epoch schedule.
With filter_pruning.noise set, the event perturbs the targets instead (noise.py), and the hook
also runs on the steps of the noise window.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.pruning_stability import filter_pruning, noise
from lib.config import ConfigError
from lib.task import Classification


def instability(acc_pre: float, acc_post: float) -> float:
    """(A_pre − A_post)/A_pre: the relative test-accuracy drop a pruning event causes."""
    return (acc_pre - acc_post) / acc_pre if acc_pre > 0 else 0.0


def _get(tree: dict, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple, value) -> dict:
    """A copy of nested `tree` with `value` at `path`."""
    if not path:
        return value
    return {**tree, path[0]: _set(tree[path[0]], path[1:], value)}


class FilterPruning(Classification):
    def __init__(self, config) -> None:
        super().__init__(config)
        self.cfg = config.filter_pruning
        if self.cfg.target != "none" and self.cfg.steps_per_epoch < 1:
            raise ConfigError(
                f"filter_pruning.steps_per_epoch={self.cfg.steps_per_epoch}: set it to the "
                "optimizer steps of one epoch (configs.common.steps_per_epoch(N, batch))")
        try:
            self.applications, self.restore_after = noise.window(self.cfg.noise,
                                                                 self.cfg.noise_steps)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if self.cfg.noise != "none" and self.cfg.target != "L":
            raise ConfigError(f"filter_pruning.noise={self.cfg.noise!r} chooses its targets as "
                              f"Prune_L does; set filter_pruning.target=L (got "
                              f"{self.cfg.target!r})")
        self.layers: list[filter_pruning.Layer] = []
        self.event_steps: dict[int, int] = {}  # step -> epoch
        # noise variants: step -> ("apply" | "restore") -> kernels of the layers concerned
        self.noise_steps: dict[int, dict[str, set[str]]] = {}

    def step_of(self, epoch: int) -> int:
        return (epoch + 1) * self.cfg.steps_per_epoch if epoch >= 0 else 0

    def mask_names(self, roles, shapes) -> list[str]:
        self.layers = filter_pruning.plan(self.cfg, roles, shapes)
        self.event_steps = {self.step_of(t): t for t in filter_pruning.event_epochs(self.layers)}
        if self.cfg.noise == "none":
            return filter_pruning.mask_names(self.layers, self.cfg.score, self.cfg.mask_bn)
        for layer in self.layers:  # each layer's window follows each of its own events
            starts = [self.step_of(t) for t, count in layer.events if count > 0]
            for start, following in zip(starts, [*starts[1:], None]):
                window = {start + j: "apply" for j in range(self.applications)}
                if self.restore_after > 0:
                    window[start + self.restore_after] = "restore"
                if following is not None and max(window) >= following:
                    raise ConfigError(
                        f"filter_pruning.noise_steps={self.cfg.noise_steps} reaches "
                        f"{layer.kernel}'s next event; use fewer steps or a longer period")
                for step, action in window.items():
                    self.noise_steps.setdefault(step, {}).setdefault(action, set()).add(
                        layer.kernel)
        return []  # nothing is masked

    def train_loss(self, model, batch, rng, step):
        if self.cfg.score != "activations":
            return super().train_loss(model, batch, rng, step)
        taps = [filter_pruning.recorded_activation(model, ly.kernel) for ly in self.layers]
        for block, _ in taps:
            block.record_activations = True
        loss, metrics = super().train_loss(model, batch, rng, step)
        sums = {ly.kernel: jax.lax.stop_gradient(
                    jnp.sum(jnp.abs(getattr(block, name).get_value()[0]), axis=(0, 1, 2)))
                for ly, (block, name) in zip(self.layers, taps)}
        return loss, {**metrics, "extra_update": sums}

    def update_extra(self, extra, sums, step):
        return {**extra, **{f"activity/{k}": filter_pruning.running_activity(
            extra[f"activity/{k}"], v, step) for k, v in sums.items()}}

    def extra_state(self, shapes) -> dict[str, np.ndarray]:
        """The running activation per filter (score=activations); noise variants remember
        which filters were targeted (ever, and at the latest event) and, for zero_restore,
        the values to restore."""
        extra = {}
        if self.cfg.score == "activations":
            extra.update({f"activity/{ly.kernel}": np.zeros(ly.filters, np.float32)
                          for ly in self.layers})
        if self.cfg.noise == "none":
            return extra
        for layer in self.layers:
            extra[f"ever/{layer.kernel}"] = np.zeros(layer.filters, np.float32)
            extra[f"now/{layer.kernel}"] = np.zeros(layer.filters, np.float32)
            if self.cfg.noise == "zero_restore":
                for name in (layer.kernel, layer.scale, layer.bias):
                    extra[f"snapshot/{name}"] = np.zeros(shapes[name], np.float32)
                for stat in ("mean", "var"):
                    path = "/".join(noise.bn_stat_path(layer, stat))
                    extra[f"snapshot/{path}"] = np.zeros(layer.filters, np.float32)
        return extra

    def hook_due(self, step: int) -> bool:
        return step in self.event_steps or step in self.noise_steps

    def hook(self, trainer, state, step):
        if step not in self.event_steps:
            return self._perturb(trainer, state, step), {}
        epoch = self.event_steps[step]
        before = trainer.evaluate(state) if step else None
        params = self._host_params(state)
        rng = np.random.default_rng([self.cfg.seed, epoch + 1])
        if self.cfg.noise == "none":
            masks, info = filter_pruning.prune(self.layers, epoch, params,
                                               trainer.current_masks(state), self.cfg.score,
                                               self.cfg.target, rng, self._activity(state))
            state = trainer.with_masks(state, masks)
            pruned = filter_pruning.pruned_filters(self.layers, masks)
        else:
            state, info, pruned = self._target(trainer, state, epoch, params)
            state = self._perturb(trainer, state, step)
        values = {"prune/epoch": epoch, "prune/removed": info["removed"],
                  "prune/pruned_total": pruned,
                  "prune/mean_pruned_score": info["mean_pruned_score"]}
        if before is None:  # at initialisation: nothing to compare
            return state, values
        after = trainer.evaluate(state)
        values.update(after)
        values.update({"prune/acc_pre": before["eval/accuracy"],
                       "prune/acc_post": after["eval/accuracy"],
                       "prune/instability": instability(before["eval/accuracy"],
                                                        after["eval/accuracy"])})
        return state, values

    def _activity(self, state) -> dict[str, np.ndarray] | None:
        if self.cfg.score != "activations":
            return None
        return {ly.kernel: np.asarray(jax.device_get(state["extra"][f"activity/{ly.kernel}"]))
                for ly in self.layers}

    def _host_params(self, state) -> dict[str, np.ndarray]:
        names = {n for ly in self.layers for n in (ly.kernel, ly.scale, ly.bias)}
        return {k: np.asarray(jax.device_get(state["params"][k])) for k in names}

    def _target(self, trainer, state, epoch, params):
        """Chooses this event's targets as Prune_L among those never targeted; remembers
        them (and for zero_restore, the values at the event)."""
        extra = dict(jax.device_get(state["extra"]))
        alive = {ly.scale: 1.0 - extra[f"ever/{ly.kernel}"] for ly in self.layers}
        after, info = filter_pruning.prune(self.layers, epoch, params, alive, self.cfg.score,
                                           "L", activity=self._activity(state))
        for ly in self.layers:
            if not any(t == epoch and n > 0 for t, n in ly.events):
                continue  # another layer's event: this layer's window and targets stand
            new = (alive[ly.scale] > 0) & (after[ly.scale] == 0)
            extra[f"ever/{ly.kernel}"] = 1.0 - after[ly.scale]
            extra[f"now/{ly.kernel}"] = (extra[f"ever/{ly.kernel}"] if
                                         self.cfg.noise == "zero_restore" else
                                         new.astype(np.float32))
            if self.cfg.noise == "zero_restore":
                for name in (ly.kernel, ly.scale, ly.bias):
                    extra[f"snapshot/{name}"] = params[name]
                for stat in ("mean", "var"):
                    path = noise.bn_stat_path(ly, stat)
                    extra[f"snapshot/{'/'.join(path)}"] = np.asarray(
                        jax.device_get(_get(state["batch_stats"], path)))
        pruned = int(sum(extra[f"ever/{ly.kernel}"].sum() for ly in self.layers))
        return {**state, "extra": extra}, info, pruned

    def _perturb(self, trainer, state, step):
        """The noise variant's action at `step` for each layer whose window includes it."""
        actions = self.noise_steps.get(step, {})
        extra = jax.device_get(state["extra"])
        flags = {ly.kernel: np.asarray(extra[f"now/{ly.kernel}"]) for ly in self.layers}
        params = self._host_params(state)
        stats = dict(state["batch_stats"])
        restoring = [ly for ly in self.layers if ly.kernel in actions.get("restore", ())]
        applying = [ly for ly in self.layers if ly.kernel in actions.get("apply", ())]
        if restoring:
            bn = {noise.bn_stat_path(ly, s): np.asarray(jax.device_get(
                _get(stats, noise.bn_stat_path(ly, s)))) for ly in restoring
                for s in ("mean", "var")}
            snapshot = {k[len("snapshot/"):]: np.asarray(v) for k, v in extra.items()
                        if k.startswith("snapshot/")}
            params, bn = noise.restore(params, bn, snapshot, restoring, flags)
            for path, value in bn.items():
                stats = _set(stats, path, value)
        if applying and self.cfg.noise == "gauss":
            ever = {ly.kernel: np.asarray(extra[f"ever/{ly.kernel}"]) for ly in applying}
            rng = np.random.default_rng([self.cfg.seed, step])
            params = noise.add_gaussian(params, applying, flags, ever, rng)
        elif applying:
            params = noise.zero(params, applying, flags,
                                with_bn=self.cfg.noise == "zero_restore")
        return trainer.place({**state, "params": {**state["params"], **params},
                              "batch_stats": stats})
