"""Joslim training (joslim.md §2 "Training loop"), and the Slim and TwoStage baselines.

Every step trains the full width with label-smoothed cross-entropy, and the round's sampled
sub-networks by in-place distillation from it (lib.slim.sandwich.sandwich_loss). Every
`joslim.tau` steps a hook starts a new round on the host:
1. calibration: where the history holds more than one configuration, every visited
   configuration's loss is recomputed on one mini-batch of the validation split (train-mode
   BatchNorm, nothing updated; the batch cycles through the split round by round);
2. M = joslim.samples configurations: uniform widths f·1, f ~ U(l, u), for the first
   joslim.prior; then the full width once; then MOBO samples (mobo.sample); each enters the
   history with loss 0 and its exact cost ratio;
3. the smallest configuration l·1 joins the round's set (not the history).
Slim (joslim.method=slim): f·1 with f ~ U(l, u) every round (the sandwich rule: the full and
the smallest net every step too). TwoStage (twostage): α ~ U(l, u)^D per round, random
layer-wise widths; after training, experiments.joslim.procedure searches its widths with the
same MOBO sampler on the trained weights' validation losses.

The round's configurations live in the model as channel counts (`WidthSamples`, [M + 1, D]),
so the compiled step serves every round; the history lives in state["extra"] (checkpointed):
a resumed run samples exactly what an uninterrupted one would (the round's draws are seeded by
(seed, round)).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.joslim import fitted_gp, mobo
from lib import data, losses, models, sharding
from lib.config import ConfigError
from lib.slim import cost as cost_lib
from lib.slim import sandwich
from lib.slim import space as space_lib
from lib.task import Classification

METHODS = ("joslim", "slim", "twostage")


class WidthSamples(nnx.Variable):
    """The active channel counts [configurations, dims] of the round's sub-networks."""


def arch_of(config, info) -> space_lib.Arch:
    """The width space and convolutions of the configured slimmable model, at the data's
    image size (the height: the cost counter takes square inputs), channels and classes."""
    m = config.model
    h, _, c = info.image_shape
    builders = {
        "slim_cifar_resnet": lambda: space_lib.cifar_resnet(
            m.depth, info.num_classes, (m.width, 2 * m.width, 4 * m.width), h,
            m.stem or "1x1", in_channels=c),
        "slim_imagenet_resnet": lambda: space_lib.imagenet_resnet(
            m.depth, info.num_classes, h, in_channels=c, widths=tuple(m.stage_widths) or None,
            layout=tuple(m.layout) or None),
        "slim_mobilenet_v2": lambda: space_lib.mobilenet_v2(
            info.num_classes, h, in_channels=c, width_mult=m.width_mult,
            depth_mult=m.depth_mult),
        "slim_mobilenet_v3": lambda: space_lib.mobilenet_v3(
            m.mobilenet_kind, info.num_classes, h, in_channels=c),
    }
    if m.name not in builders:
        raise ConfigError(f"joslim needs a slimmable model (model.name: "
                          f"{' | '.join(builders)}); got {m.name!r}: it has no width "
                          "dimensions to sample")
    arch = builders[m.name]()
    cfg = config.joslim
    return space_lib.Arch(space_lib.WidthSpace(arch.space.dims, arch.space.chains, cfg.low,
                                               cfg.high, arch.space.fixed, arch.space.name),
                          arch.convs, arch.counted)


def stored(arch: space_lib.Arch, alphas) -> np.ndarray:
    """Configurations read back from the history (float32 on device: 0.42 comes back as
    0.41999998), clipped to the space's bounds."""
    return np.clip(np.asarray(alphas, np.float64), arch.space.low, arch.space.high)


def counts(arch: space_lib.Arch, alphas) -> np.ndarray:
    """[N, D] int32 decoded channel counts of [N, D] configurations, in the space's order."""
    names = arch.space.names
    return np.array([[arch.space.decode(a)[n] for n in names] for a in stored(arch, alphas)],
                    np.int32)


class Joslim(Classification):
    """config.task = "experiments.joslim.task:Joslim" (module docstring)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.config, self.cfg = config, config.joslim
        if self.cfg.method not in METHODS:
            raise ConfigError(f"joslim.method={self.cfg.method!r}; valid choices: "
                              f"{', '.join(METHODS)}")
        for key, valid in (("surrogate", mobo.SURROGATES), ("acquisition", mobo.ACQUISITIONS),
                           ("cost_model", mobo.COST_MODELS), ("target", mobo.TARGET_RULES)):
            if self.cfg[key] not in valid:
                raise ConfigError(f"joslim.{key}={self.cfg[key]!r}; valid choices: "
                                  f"{', '.join(valid)}")
        if self.cfg.acquisition == "restarts" and (self.cfg.cost_model, self.cfg.surrogate) \
                != ("gp", "fitted"):
            raise ConfigError("joslim.acquisition=restarts differentiates both GPs: it needs "
                              "joslim.cost_model=gp and joslim.surrogate=fitted")
        if self.cfg.surrogate == "fitted":
            try:
                fitted_gp.tinygp()
            except ImportError as error:
                raise ConfigError(str(error)) from None
        if not 0 < self.cfg.low <= self.cfg.high <= 1:
            raise ConfigError(f"joslim.low={self.cfg.low}, high={self.cfg.high}: need "
                              "0 < low <= high <= 1")
        self.rounds = config.total_steps // self.cfg.tau + 1
        self.capacity = self.rounds * self.cfg.samples
        self.arch = None
        self._calibration = None

    # --- the model and the step -------------------------------------------------------------

    def build_model(self, config, info, rngs):
        self.arch = arch_of(config, info)
        model = models.build(config.model, num_classes=info.num_classes,
                             in_channels=info.image_shape[-1], image_size=info.image_shape[:2],
                             rngs=rngs)
        full = counts(self.arch, [self.arch.space.full()])[0]
        model.sampled = WidthSamples(jnp.asarray(np.tile(full, (self.cfg.samples + 1, 1))))
        return model

    def train_loss(self, model, batch, rng, step):
        del rng, step
        return sandwich.sandwich_loss(model, batch, model.sampled.value,
                                      self.config.label_smoothing)

    # --- the rounds -------------------------------------------------------------------------

    def extra_state(self, shapes) -> dict[str, np.ndarray]:
        d = self.arch.space.size
        return {"history/alpha": np.zeros((self.capacity, d), np.float32),
                "history/loss": np.zeros(self.capacity, np.float32),
                "history/cost": np.zeros(self.capacity, np.float32),
                "history/target": np.full(self.capacity, np.nan, np.float32),
                "history/size": np.zeros((), np.int32)}

    def hook_due(self, step: int) -> bool:
        return step % self.cfg.tau == 0

    def hook(self, trainer, state, step):
        extra = {k: np.array(v) for k, v in jax.device_get(state["extra"]).items()}
        size = int(extra["history/size"])
        rnd = step // self.cfg.tau
        if size > 1 and self.cfg.method == "joslim":
            extra["history/loss"][:size] = self.calibrated(trainer, state, rnd,
                                                           extra["history/alpha"][:size])
        rng = np.random.default_rng([self.config.seed, rnd])
        chosen = []
        for _ in range(self.cfg.samples):
            alpha, target = self.next_config(extra, size, rng)
            extra["history/alpha"][size] = alpha
            extra["history/cost"][size] = cost_lib.cost(self.arch, alpha, self.cfg.cost)
            extra["history/target"][size] = target
            size += 1
            chosen.append(alpha)
        extra["history/size"] = np.asarray(size, np.int32)
        chosen.append(self.arch.space.smallest())
        model_state = dict(state["model_state"])
        model_state["sampled"] = counts(self.arch, np.array(chosen))
        ratios = extra["history/cost"][size - self.cfg.samples:size]
        values = {f"joslim/cost_{i}": float(r) for i, r in enumerate(ratios)}
        return trainer.place({**state, "extra": extra, "model_state": model_state}), values

    def next_config(self, extra, size: int, rng, method: str = "") -> tuple[np.ndarray, float]:
        """(α, cost target or nan) of the next configuration of `method` (default: the
        run's): history in `extra`, its first `size` entries filled."""
        space, cfg, method = self.arch.space, self.cfg, method or self.cfg.method
        if method == "slim" or (method == "joslim" and size < cfg.prior):
            return space.uniform(rng.uniform(cfg.low, cfg.high)), np.nan
        if method == "twostage":
            return rng.uniform(cfg.low, cfg.high, space.size), np.nan
        if size == cfg.prior:
            return space.full(), np.nan
        h = slice(0, size)
        full_loss = extra["history/loss"][h][np.argmax(extra["history/cost"][h])]
        out = mobo.sample(
            stored(self.arch, extra["history/alpha"][h]),
            extra["history/loss"][h].astype(np.float64),
            extra["history/cost"][h].astype(np.float64), low=cfg.low, high=cfg.high,
            cost_of=lambda a: np.array([cost_lib.cost(self.arch, x, cfg.cost) for x in a]),
            lower=cost_lib.cost(self.arch, space.smallest(), cfg.cost), rng=rng,
            beta=cfg.beta, cost_model=cfg.cost_model, target_rule=cfg.target,
            full_loss=float(full_loss), surrogate=cfg.surrogate,
            acquisition=cfg.acquisition, ard=cfg.ard)
        return out["alpha"], out["target"]

    # --- calibration ------------------------------------------------------------------------

    @functools.cached_property
    def _validation(self):
        split = data.eval_batches(self.config.data, split="validation")
        if not len(split):
            raise ConfigError("joslim calibrates on the validation split; set "
                              "data.validation_examples")
        return split

    def calibrated(self, trainer, state, rnd: int, alphas: np.ndarray) -> np.ndarray:
        """Every configuration's cross-entropy on one validation mini-batch (train-mode BN)."""
        batches = list(self._validation)
        batch = sharding.global_batch(batches[rnd % len(batches)], trainer.batch_sharding)
        if self._calibration is None:
            setup = trainer.setup

            def loss(st, b, row):
                model = setup.model(st)
                logits = model(b["image"], train=True, masks=sandwich.masks_of(model, row))
                ce = losses.softmax_cross_entropy(logits, b["label"])
                return jnp.sum(ce * b["mask"]) / jnp.maximum(jnp.sum(b["mask"]), 1)

            self._calibration = jax.jit(loss)
        rows = counts(self.arch, alphas)
        return np.array([float(self._calibration(state, batch, r)) for r in rows], np.float32)
