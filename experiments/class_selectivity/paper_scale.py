"""What the paper-scale configs (cifar10.py, tiny_imagenet.py) share: the regularised task and
its procedure, and the robustness evaluation of class_selectivity.md §2–4 (ε grid, PGD-20,
corruption sets at severities 1–5)."""

from lib.config import ConfigError
from lib.evaluators import corruptions

EPS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)  # FGSM/PGD ε, [0, 1] pixel units


def regularized(c, *, alpha: float, layers: tuple, source: str, released: tuple,
                corruption_data: str, corruption_split: str) -> None:
    """Selectivity regularisation at `layers` and the robustness evaluation; corruptions from
    the released set (`released`: its names) or, with source=on_the_fly, every corruption of
    lib.evaluators.corruptions (no download; approximates the released pipelines)."""
    if source not in ("released", "on_the_fly"):
        raise ConfigError(f"corruptions={source!r}: use released or on_the_fly")
    c.procedure = "experiments.class_selectivity.procedure:run"
    c.task = "experiments.class_selectivity.task:SelectivityRegularized"
    c.selectivity.alpha, c.selectivity.layers = alpha, layers
    c.robustness.corruption_source = source
    c.robustness.corruptions = released if source == "released" else corruptions.NAMES
    c.robustness.corruption_data, c.robustness.corruption_split = corruption_data, corruption_split
    c.robustness.severities = (1, 2, 3, 4, 5)
    c.robustness.noise_sigmas = (0.04, 0.1)
    c.robustness.fgsm_eps = c.robustness.pgd_eps = EPS
    c.robustness.pgd_steps = 20


def quick(c, layers: tuple) -> None:
    """A few steps on a small model and 128 eval images: one on-the-fly corruption, FGSM and
    PGD-2 at one ε (tests and smoke runs on mock data)."""
    c.data.eval_examples, c.data.eval_batch_size = 128, 128
    c.selectivity.layers = layers
    c.robustness.corruption_source = "on_the_fly"
    c.robustness.corruptions, c.robustness.severities = ("contrast",), (5,)
    c.robustness.fgsm_eps, c.robustness.pgd_eps, c.robustness.pgd_steps = (0.01,), (0.01,), 2
    c.total_steps, c.eval_every, c.checkpoint_every = 10, 0, 10
