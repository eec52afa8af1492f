"""Early-phase statistics of the dense run (early_phase.md §2, "Early-phase statistics").

Classification plus a hook on a grid of steps (every step to 10, every 10 to 100, every 50 to
1,000, every 250 to `early_stats.until`). For every kernel W_l and pooled over all of them:
gradient norm ‖∇_{W_l} L‖₂, distance ‖W_l(t) − W_l(0)‖₂ and its ratio to ‖W_l(0)‖₂, cosine to
W_l(0), fraction of signs flipped since step 0, and (pooled) a histogram of |W(t)| on fixed bins;
plus test accuracy and loss. Logged as early/<tensor>/<statistic> in metrics.jsonl.

The gradient is that of a fixed training batch (the first of the data order) at W(t), i.e.
before update t + 1: the minibatch of step t + 1 itself is not available to a hook. The
statistics need W(0), so they are taken only by runs that start at step 0 (the dense run; IMP
levels that rewind to k > 0 skip them).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lib import sharding
from lib.task import Classification


def statistic_steps(until: int) -> list[int]:
    """0…10 every step, then every 10 to 100, every 50 to 1,000, every 250 to `until`."""
    grid = [*range(0, 11), *range(20, 101, 10), *range(150, 1001, 50),
            *range(1250, max(until, 0) + 1, 250)]
    return [s for s in grid if s <= until]


def weight_statistics(w: np.ndarray, w0: np.ndarray) -> dict[str, float]:
    """Distance, relative distance, cosine and sign-flip fraction of W(t) against W(0)."""
    w, w0 = np.asarray(w, np.float64).ravel(), np.asarray(w0, np.float64).ravel()
    distance = float(np.linalg.norm(w - w0))
    norm0, norm = float(np.linalg.norm(w0)), float(np.linalg.norm(w))
    return {"distance": distance, "relative_distance": distance / norm0 if norm0 else 0.0,
            "cosine": float(w @ w0) / (norm * norm0) if norm * norm0 else 0.0,
            "sign_flips": float(np.mean(np.sign(w) != np.sign(w0)))}


def histogram(values: np.ndarray, bins: int, top: float) -> np.ndarray:
    """Counts of |values| in `bins` equal bins on [0, top]; the last bin also counts |v| > top."""
    edges = np.linspace(0.0, top, bins + 1)
    clipped = np.minimum(np.abs(np.asarray(values)).ravel(), top)
    return np.histogram(clipped, edges)[0]


class EarlyPhaseStatistics(Classification):
    def __init__(self, config) -> None:
        super().__init__(config)
        self.cfg = config.early_stats
        self.steps = set(statistic_steps(self.cfg.until))
        self.names: list[str] = []
        self._batch = self._grad_norms = None

    def extra_state(self, shapes) -> dict[str, np.ndarray]:
        """W(0) of every kernel, and whether this run recorded it (it started at step 0)."""
        self.names = sorted(k for k in shapes if k.endswith("/kernel"))
        if not self.steps:
            return {}
        return {"recorded": np.zeros((), np.float32),
                **{f"init/{k}": np.zeros(shapes[k], np.float32) for k in self.names}}

    def hook_due(self, step: int) -> bool:
        return step in self.steps

    def hook(self, trainer, state, step):
        extra = state["extra"]
        if step == 0:
            extra = {**extra, "recorded": jnp.ones(()),  # copies: donated buffers never alias
                     **{f"init/{k}": jnp.copy(state["params"][k]) for k in self.names}}
            state = trainer.place({**state, "extra": extra})
        elif not float(jax.device_get(extra["recorded"])):
            return state, {}  # a run rewound to k > 0 never saw W(0)
        values = {**trainer.evaluate(state), **self._statistics(trainer, state)}
        return state, values

    def _statistics(self, trainer, state) -> dict[str, float]:
        if self._batch is None:
            self._batch = sharding.global_batch(next(trainer.train_batches()),
                                                trainer.batch_sharding)
            self._grad_norms = jax.jit(functools.partial(_gradient_norms, trainer.setup,
                                                         tuple(self.names)))
        norms = jax.device_get(self._grad_norms(state, self._batch))
        host = jax.device_get({k: state["params"][k] for k in self.names})
        init = jax.device_get({k: state["extra"][f"init/{k}"] for k in self.names})
        out = {}
        for k in self.names:
            out[f"early/{k}/grad_norm"] = float(norms[k])
            out.update({f"early/{k}/{s}": v for s, v in weight_statistics(host[k],
                                                                          init[k]).items()})
        pooled_w = np.concatenate([np.ravel(host[k]) for k in self.names])
        pooled_w0 = np.concatenate([np.ravel(init[k]) for k in self.names])
        out["early/all/grad_norm"] = float(np.sqrt(sum(float(n) ** 2 for n in norms.values())))
        out.update({f"early/all/{s}": v for s, v in weight_statistics(pooled_w,
                                                                      pooled_w0).items()})
        counts = histogram(pooled_w, self.cfg.bins, self.cfg.hist_max)
        out.update({f"early/all/hist_{i:02d}": int(c) for i, c in enumerate(counts)})
        return out


def _gradient_norms(setup, names, state, batch):
    """‖∇_{W_l} L‖₂ of the training loss on `batch` at the state's weights, per kernel."""

    def loss(kernels):
        params = {**state["params"], **kernels}
        model = setup.merge(params, state["batch_stats"])
        return setup.task.train_loss(model, batch, jax.random.key(0), state["step"])[0]

    grads = jax.grad(loss)({k: state["params"][k] for k in names})
    return {k: jnp.linalg.norm(grads[k]) for k in names}
