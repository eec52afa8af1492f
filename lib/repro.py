"""Claims registry: is a reproduction matching the paper? (DESIGN.md rule 10)

    python -m lib.repro list                      every claim of every paper
    python -m lib.repro verify SLUG [--workdir D] run the small-scale claims on this CPU
    python -m lib.repro check WORKDIR             compare a finished paper-scale run

Each paper's `experiments/SLUG/claims.py` defines
- `PAPER_CLAIMS`: reported numbers (`PaperClaim`), each tied to the config that reproduces it;
- `SMALL_CLAIMS`: small-scale claims (`SmallClaim`) checked on measurements;
- `measure(workdir) -> dict`: runs the small-scale experiment (resumable sub-workdirs) and
  returns the measurements the small claims read; optionally `plot(measurements, workdir)`.
A failed hard claim makes `verify`/`check` exit with status 1; soft claims are reported only.
Nothing is loosened to pass: a claim that does not reproduce is shown as FAIL with its numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import pathlib
import sys
import time
from collections.abc import Callable

from etils import epath

SLUGS = ("batchnorm_only", "early_phase", "pruning_stability", "class_selectivity",
         "background_aug", "invariance", "width_transfer", "joslim", "reservoir", "plan2vec")
REPO = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class PaperClaim:
    """A number the paper reports, and how a finished run of `config` is compared with it.

    `config` is "path/to/file.py:arg" (None when the claim needs several runs, e.g. a trend
    over a sweep: then `check` lists it but cannot decide it from one workdir). A run passes
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



def load_claims(slug: str):
    if slug not in SLUGS:
        raise SystemExit(f"unknown paper {slug!r}; valid: {', '.join(SLUGS)}")
    try:
        return importlib.import_module(f"experiments.{slug}.claims")
    except ModuleNotFoundError as e:
        if e.name == f"experiments.{slug}.claims" or e.name == f"experiments.{slug}":
            return None
        raise


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


def table(rows: list[Row]) -> str:
    """A Markdown table (also readable on a terminal)."""
    lines = ["| claim | what | hard | expected | measured | status |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.id} | {r.description} | {'hard' if r.hard else 'soft'} | "
                     f"{r.expected} | {r.measured} | {r.status} |")
    return "\n".join(lines)


def _exit_code(rows: list[Row]) -> int:
    return 1 if any(r.hard and r.passed is False for r in rows) else 0


def verify(slug: str, workdir: pathlib.Path) -> int:
    claims = load_claims(slug)
    if claims is None:
        print(f"{slug}: no claims registered yet (experiments/{slug}/claims.py is missing)")
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    measurements = claims.measure(workdir)
    rows = evaluate_small(claims, measurements)
    if hasattr(claims, "plot"):
        claims.plot(measurements, workdir)
    elapsed = time.time() - t0
    report = (f"# {slug}: small-scale claims\n\n{table(rows)}\n\n"
              f"Measured in {elapsed:.0f} s; workdir `{workdir}`.\n")
    (workdir / "report.md").write_text(report)
    (workdir / "claims.json").write_text(json.dumps({
        "slug": slug, "seconds": round(elapsed, 1),
        "claims": [dataclasses.asdict(r) | {"status": r.status} for r in rows],
        "measurements": measurements,
    }, indent=2, default=float) + "\n")
    print(report)
    return _exit_code(rows)


def _run_matches(claim: PaperClaim, run_config: dict) -> bool:
    """Whether a finished run's config is the claim's config (paths and cadences aside)."""
    from lib import config as config_lib
    from lib import train

    path, arg = config_lib.split_config_spec(claim.config)
    expected = json.loads(config_lib.load_file(REPO / path, arg).to_json_best_effort())
    diff = train.config_diff(expected, run_config)
    # a claim holds for every seed; worker counts do not change results either
    return all(config_lib.is_operational(k) or k in ("seed", "data.num_workers") for k in diff)


def check(workdir) -> int:
    workdir = epath.Path(workdir)
    config_path, results_path = workdir / "config.json", workdir / "results.json"
    if not results_path.exists():
        print(f"{workdir} has no results.json: the run has not finished (re-run its command "
              "to resume it)")
        return 2
    run_config = json.loads(config_path.read_text())
    results = json.loads(results_path.read_text())
    rows = []
    for slug in SLUGS:
        claims = load_claims(slug)
        for claim in getattr(claims, "PAPER_CLAIMS", ()):
            if claim.config is None or not _run_matches(claim, run_config):
                continue
            if claim.metric not in results and hasattr(claims, "run_metrics"):
                results = {**claims.run_metrics(workdir), **results}
            value = results.get(claim.metric)
            measured = "missing" if value is None else f"{value:.4g}"
            passed = None if value is None or not math.isfinite(value) else claim.passes(value)
            rows.append(Row(claim.id, claim.description, claim.expected_text(), measured,
                            passed, claim.hard))
    if not rows:
        print(f"no registered claim belongs to the config of {workdir}; "
              "`python -m lib.repro list` shows each claim's config")
        return 0
    print(table(rows))
    return _exit_code(rows)


def list_claims() -> None:
    for slug in SLUGS:
        claims = load_claims(slug)
        if claims is None:
            print(f"\n## {slug}: no claims registered yet")
            continue
        print(f"\n## {slug}\n\nPaper scale:")
        for c in claims.PAPER_CLAIMS:
            print(f"  {c.id} [{'hard' if c.hard else 'soft'}, {c.confidence}] {c.description}: "
                  f"{c.expected_text()} ({c.metric}) — {c.source}; "
                  f"config: {c.config or 'several runs (sweep)'}")
        print("Small scale (python -m lib.repro verify " + slug + "):")
        for c in claims.SMALL_CLAIMS:
            print(f"  {c.id} [{'hard' if c.hard else 'soft'}] {c.description}: {c.expected}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.repro", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="run a paper's small-scale claims")
    v.add_argument("slug", choices=SLUGS)
    v.add_argument("--workdir", type=pathlib.Path, default=None,
                   help="where runs and the report go (default: workdirs/verify/SLUG)")
    c = sub.add_parser("check", help="compare a finished run with its config's claims")
    c.add_argument("workdir", help="a finished run's workdir (local or gs://)")
    sub.add_parser("list", help="list every claim")
    args = parser.parse_args(argv)
    from lib import metrics

    metrics.quiet_library_logs()
    if args.command == "verify":
        return verify(args.slug, args.workdir or REPO / "workdirs" / "verify" / args.slug)
    if args.command == "check":
        return check(args.workdir)
    list_claims()
    return 0


if __name__ == "__main__":
    sys.exit(main())

