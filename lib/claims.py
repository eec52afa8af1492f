"""A paper's claims and the pieces its `claims.py` measures them with (DESIGN.md rule 10).

Kept apart from `lib.repro` (the commands that run, check and report claims) so that what a
verify measures depends only on the paper's code and this module: the report marks a result
stale when any file a paper's claims import has changed since it was measured.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class PaperClaim:
    """A number the paper reports, and how a finished run of `config` is compared with it.

    `config` is "path/to/file.py:arg". With `versus` (another config) the measured value is
    metric(config) − metric(versus), each averaged over the runs given to `check`; with
    `denominator` (a third config) it is divided by metric(denominator) − metric(versus) (or
    by metric(denominator) alone): "recovers most of the gain" ratios. With `pairwise` (the
    name of a function of the paper's claims module) and `versus`, the measured value is
    pairwise(workdirs of config, workdirs of versus) instead: a comparison that needs both
    sets of runs whole, e.g. the largest gain between two accuracy-vs-cost fronts. A claim
    without config (e.g. a trend over a whole sweep) is listed but not decided. A value passes
    when |measured − expected| ≤ tolerance, or when low ≤ measured ≤ high if `bounds` is set.
    """

    id: str
    description: str
    source: str
    confidence: str
    expected: float | None
    tolerance: float = 0.0
    metric: str = "eval/accuracy"
    config: str | None = None
    bounds: tuple[float, float] | None = None
    hard: bool = True
    versus: str | None = None
    denominator: str | None = None
    pairwise: str | None = None

    def passes(self, measured: float) -> bool:
        if self.bounds is not None:
            return self.bounds[0] <= measured <= self.bounds[1]
        return abs(measured - self.expected) <= self.tolerance + 1e-12

    def expected_text(self) -> str:
        if self.bounds is not None:
            return f"[{self.bounds[0]:g}, {self.bounds[1]:g}]"
        if self.expected is None:
            return "(qualitative)"
        return f"{self.expected:g} ± {self.tolerance:g}"


@dataclasses.dataclass(frozen=True)
class SmallClaim:
    """A small-scale claim: `evaluate(measurements) -> (measured text, passed)`."""

    id: str
    description: str
    expected: str
    evaluate: Callable[[dict], tuple[str, bool]]
    hard: bool = True


@dataclasses.dataclass
class Row:
    id: str
    description: str
    expected: str
    measured: str
    passed: bool | None  # None: not decidable here
    hard: bool

    @property
    def status(self) -> str:
        if self.passed is None:
            return "N/A"
        return "PASS" if self.passed else ("FAIL" if self.hard else "FAIL (soft)")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)



def every_seed(runs: list[dict] | None, seeds, test: Callable[[dict], tuple[str, bool]]
               ) -> tuple[str, bool]:
    """A small claim over seeds: `test(results) -> (text, passed)` on each seed's results;
    the texts joined, and whether it holds for all. runs=None (a seed missing) fails."""
    if runs is None:
        return "missing measurement (not every seed ran)", False
    values = [test(r) for r in runs]
    return "; ".join(f"seed {s}: {v[0]}" for s, v in zip(seeds, values)), \
        all(v[1] for v in values)


def measure_runs(workdir: pathlib.Path, runs: list[tuple[str, str, Callable[[], dict]]],
                 describe: Callable[[dict], str]) -> dict[str, list[dict]]:
    """{group: [results, …]} of each (group, label, run) in `runs`, run in order: a paper's
    `measure` over its variants × seeds. The persistent compilation cache goes under
    workdir/jax_cache first; each run prints label, describe(results), elapsed time and ETA."""
    import jax

    from lib import compile_cache

    compile_cache.enable(str(workdir / "jax_cache"), workdir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    out: dict[str, list[dict]] = {}
    t0 = time.perf_counter()
    for i, (group, label, run) in enumerate(runs, 1):
        results = run()
        out.setdefault(group, []).append(results)
        elapsed = time.perf_counter() - t0
        print(f"[{i}/{len(runs)}] {label}: {describe(results)} | {elapsed:.0f} s elapsed | "
              f"ETA {elapsed / i * (len(runs) - i):.0f} s", flush=True)
    return out


def evaluate_small(claims_module, measurements: dict) -> list[Row]:
    rows = []
    for claim in claims_module.SMALL_CLAIMS:
        try:
            measured, passed = claim.evaluate(measurements)
        except KeyError as e:
            measured, passed = f"missing measurement {e}", False
        rows.append(Row(claim.id, claim.description, claim.expected, measured, bool(passed),
                        claim.hard))
    return rows
