"""Claims registry: is a reproduction matching the paper? (DESIGN.md rule 10)

    python -m lib.repro list                      every claim of every paper
    python -m lib.repro verify SLUG [--workdir D] run the small-scale claims on this CPU
    python -m lib.repro check WORKDIR [WORKDIR…]  compare finished paper-scale runs
    python -m lib.repro report [WORKDIR…] --out D one page of every paper (lib.report)

Each paper's `experiments/SLUG/claims.py` defines (with the classes of lib.claims)
- `TITLE` and `REPORTED`: the paper and what it reports, in a line each;
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
import datetime
import functools
import importlib
import json
import math
import os
import pathlib
import platform
import re
import shutil
import sys
import time

from etils import epath

from lib import code_closure, runinfo
from lib.claims import PaperClaim, Row, evaluate_small

SLUGS = ("batchnorm_only", "early_phase", "pruning_stability", "class_selectivity",
         "background_aug", "invariance", "width_transfer", "joslim", "reservoir", "plan2vec")
REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"  # the newest verify of each paper, committed


def load_claims(slug: str):
    if slug not in SLUGS:
        raise SystemExit(f"unknown paper {slug!r}; valid: {', '.join(SLUGS)}")
    try:
        return importlib.import_module(f"experiments.{slug}.claims")
    except ModuleNotFoundError as e:
        if e.name == f"experiments.{slug}.claims" or e.name == f"experiments.{slug}":
            return None
        raise


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


def stage_times(workdir: pathlib.Path) -> list[dict]:
    """Wall and training seconds of the runs under `workdir`, by stage: the run's path up to the
    first folder named with a seed suffix (`_s<N>`), that suffix dropped (else its top-level
    folder), so one row sums a setting over its seeds. From each run's
    results.json: `wall_seconds_this_start` (its last start, compilation, evals and saves
    included) and the training clock. Runs finished in an earlier verify count as they took.
    A results.json with another below it is a procedure's summary (it may copy its training
    run's clock), so it is not counted again."""
    stages: dict[str, dict] = {}
    paths = sorted(workdir.rglob("results.json"))
    below = {parent for p in paths for parent in p.parent.parents}
    for path in paths:
        if path.parent in below:
            continue
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(results, dict) or "wall_seconds_this_start" not in results:
            continue  # a procedure's summary, not a training run
        parts = path.relative_to(workdir).parts[:-1]
        seeded = next((i for i, p in enumerate(parts) if re.search(r"_s\d+$", p)), 0)
        top = "/".join(parts[:seeded + 1])
        row = stages.setdefault(re.sub(r"_s\d+$", "", top), {"runs": 0, "wall_s": 0.0,
                                                               "train_s": 0.0, "seeds": set()})
        row["runs"] += 1
        row["wall_s"] += float(results["wall_seconds_this_start"])
        row["train_s"] += float(results.get("clock/train_seconds", 0.0))
        row["seeds"].add(top)
    return [{"stage": name, "folders": len(r["seeds"]), "runs": r["runs"],
             "wall_s": round(r["wall_s"], 1), "train_s": round(r["train_s"], 1)}
            for name, r in stages.items()]


def stage_table(stages: list[dict]) -> str:
    lines = ["| stage | folders (seeds) | training runs | wall s | of which training s |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['folders']} | {r['runs']} | {r['wall_s']:.1f} | "
              f"{r['train_s']:.1f} |" for r in stages]
    total_wall = sum(r["wall_s"] for r in stages)
    total_train = sum(r["train_s"] for r in stages)
    lines.append(f"| all | | {sum(r['runs'] for r in stages)} | {total_wall:.1f} | "
                 f"{total_train:.1f} |")
    return "\n".join(lines)


def _measured_code(slug: str, workdir: pathlib.Path) -> dict | None:
    """The fingerprint of the code a verify in `workdir` measures. Finished runs are reused, not
    re-run, so it is the one the workdir's first verify kept (workdir/code.json), whatever the
    checkout is now; None when runs are there from before verifies kept one."""
    current = code_closure.fingerprint(slug)
    kept = workdir / "code.json"
    runs_there = any(workdir.rglob("results.json")) or any(workdir.rglob("checkpoints"))
    if kept.exists() and runs_there:
        first = json.loads(kept.read_text())
        if changed := code_closure.changes(first, current):
            print(f"warning: {workdir} holds runs of older code ({', '.join(changed[:5])}"
                  f"{' …' if len(changed) > 5 else ''} changed since); finished runs are "
                  "reused, so the result is recorded against that code and reported stale. "
                  "Give a new --workdir to measure this checkout.", file=sys.stderr)
        return first
    if runs_there and not kept.exists():
        print(f"warning: {workdir} holds runs from before verifies kept a code fingerprint; "
              "the result is recorded as of unknown code (reported stale). Give a new "
              "--workdir to measure this checkout.", file=sys.stderr)
        return None
    kept.write_text(json.dumps(current, indent=1) + "\n")
    return current


def verify(slug: str, workdir: pathlib.Path, results: pathlib.Path | None = RESULTS) -> int:
    """Runs a paper's small-scale claims in `workdir`; writes report.md and claims.json (the
    claims, measurements, time taken, and what produced them) there, and copies claims.json
    and the plots to `results`/SLUG (the committed results the report and README read)."""
    claims = load_claims(slug)
    if claims is None:
        print(f"{slug}: no claims registered yet (experiments/{slug}/claims.py is missing)")
        return 1
    if results is not None and (results / slug).resolve() == workdir.resolve():
        print(f"error: --workdir {workdir} is where the result is recorded; give another "
              "workdir (or --no-record)", file=sys.stderr)
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    code = _measured_code(slug, workdir)
    commit = runinfo.git_commit()
    t0 = time.time()
    measurements = claims.measure(workdir)
    rows = evaluate_small(claims, measurements)
    before = {p.name: p.stat().st_mtime for p in workdir.glob("*.png")}
    if hasattr(claims, "plot"):
        claims.plot(measurements, workdir)
    plots = sorted(p.name for p in workdir.glob("*.png")
                   if before.get(p.name) != p.stat().st_mtime)
    elapsed = time.time() - t0
    stages = stage_times(workdir)
    report = (f"# {slug}: small-scale claims\n\n{table(rows)}\n\n"
              f"Measured in {elapsed:.0f} s; workdir `{workdir}`.\n\n"
              f"Time by stage (each run's last start; the rest of the {elapsed:.0f} s is "
              f"building, data loading and analysis between runs):\n\n{stage_table(stages)}\n")
    (workdir / "report.md").write_text(report)
    record = {
        "slug": slug, "started": started, "seconds": round(elapsed, 1),
        "workdir": str(workdir), "git_commit": commit,
        "python": platform.python_version(), "packages": runinfo.package_versions(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "plots": plots, "code": code, "stages": stages,
        "claims": [dataclasses.asdict(r) | {"status": r.status} for r in rows],
        "measurements": measurements,
    }
    text = json.dumps(record, indent=2, default=float) + "\n"
    (workdir / "claims.json").write_text(text)
    if results is not None:
        out = results / slug
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.png"):
            old.unlink()
        for name in plots:
            shutil.copyfile(workdir / name, out / name)
        (out / "claims.json").write_text(text)
        print(f"recorded in {out} (commit it with the code it measured)")
    print(report)
    return _exit_code(rows)


@functools.cache
def expected_config(spec: str) -> dict:
    """The config `spec` ("path.py:arg") gives in this checkout, as a run's config.json holds it."""
    from lib import config as config_lib

    path, arg = config_lib.split_config_spec(spec)
    return json.loads(config_lib.load_file(REPO / path, arg).to_json_best_effort())


def matches(spec: str, run_config: dict) -> bool:
    """Whether a finished run's config is the config `spec` (paths, cadences and seed aside)."""
    from lib import config as config_lib
    from lib import train

    diff = train.config_diff(expected_config(spec), run_config)
    # a claim holds for every seed; the worker count changes the data-iterator state's layout
    # (so a resume refuses it) but not the results
    return all(config_lib.is_operational(k) or k in ("seed", "data.num_workers") for k in diff)


@dataclasses.dataclass
class FinishedRun:
    workdir: epath.Path
    config: dict
    results: dict

    def metric(self, claims_module, name: str) -> float | None:
        """A results.json value, or one the paper's `run_metrics(workdir)` computes."""
        if name not in self.results and hasattr(claims_module, "run_metrics"):
            try:
                self.results = {**claims_module.run_metrics(self.workdir), **self.results}
            except FileNotFoundError as e:  # e.g. checkpoints deleted: the claim stays N/A
                print(f"note: {self.workdir}: {e}")
        return self.results.get(name)


def _mean_metric(claims_module, runs: list[FinishedRun], name: str) -> float | None:
    values = [run.metric(claims_module, name) for run in runs]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def check_claim(claims_module, claim: PaperClaim, runs: list[FinishedRun]) -> Row | None:
    """The claim's row, from the mean over the matching runs (seeds); None if no run matches."""
    mine = [r for r in runs if matches(claim.config, r.config)]
    if not mine:
        return None
    if claim.pairwise:
        return _check_pairwise(claims_module, claim, mine, runs)
    value = _mean_metric(claims_module, mine, claim.metric)
    what = f"{len(mine)} run(s)"
    other = 0.0
    for role, spec in (("versus", claim.versus), ("denominator", claim.denominator)):
        if spec is None or value is None:
            continue
        theirs = [r for r in runs if matches(spec, r.config)]
        if not theirs:
            return Row(claim.id, claim.description, claim.expected_text(),
                       f"needs a run of {spec}", None, claim.hard)
        their = _mean_metric(claims_module, theirs, claim.metric)
        what += f" {'vs' if role == 'versus' else 'over'} {len(theirs)}"
        if their is None:
            value = None
        elif role == "versus":
            value, other = value - their, their
        else:
            scale = their - other
            value = value / scale if scale else math.nan
    if value is None:  # cannot be decided from these runs
        return Row(claim.id, claim.description, claim.expected_text(),
                   f"missing {claim.metric}", None, claim.hard)
    passed = claim.passes(value) if math.isfinite(value) else False
    return Row(claim.id, claim.description, claim.expected_text(), f"{value:.4g} ({what})",
               passed, claim.hard)


def _check_pairwise(claims_module, claim: PaperClaim, mine: list[FinishedRun],
                    runs: list[FinishedRun]) -> Row:
    theirs = [r for r in runs if matches(claim.versus, r.config)]
    if not theirs:
        return Row(claim.id, claim.description, claim.expected_text(),
                   f"needs a run of {claim.versus}", None, claim.hard)
    compare = getattr(claims_module, claim.pairwise)
    try:
        value = compare([r.workdir for r in mine], [r.workdir for r in theirs])
    except FileNotFoundError as e:  # e.g. a run without the files the comparison reads
        return Row(claim.id, claim.description, claim.expected_text(), f"N/A: {e}", None,
                   claim.hard)
    passed = claim.passes(value) if math.isfinite(value) else False
    return Row(claim.id, claim.description, claim.expected_text(),
               f"{value:.4g} ({len(mine)} run(s) vs {len(theirs)})", passed, claim.hard)


class RunError(ValueError):
    """A workdir given as a finished run that is none: the message says what to give instead."""


def load_run(workdir) -> FinishedRun:
    """A finished run's config (keys added since it ran take their defaults) and results."""
    workdir = epath.Path(workdir)
    if not workdir.is_dir():
        raise RunError(f"{workdir} does not exist or is not a directory; give the workdir of "
                       "a run (the --workdir it was started with)")
    if not (workdir / "config.json").exists():
        raise RunError(f"{workdir} holds no run (no config.json); give the workdir of a run")
    if not (workdir / "results.json").exists():
        raise RunError(f"{workdir} has no results.json: the run has not finished (re-run its "
                       "command to resume it)")
    from lib import config as config_lib

    try:
        saved = json.loads((workdir / "config.json").read_text())
        results = json.loads((workdir / "results.json").read_text())
        if not (isinstance(saved, dict) and isinstance(results, dict)):
            raise ValueError("config.json and results.json must each hold a JSON object")
        saved = config_lib.from_saved(saved)
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # or unknown keys
        raise RunError(f"{workdir}: cannot read its config.json or results.json ({e})") from e
    return FinishedRun(workdir, json.loads(saved.to_json_best_effort()), results)


def check(workdirs: list) -> int:
    """Compares finished runs with every claim whose config they match (seeds averaged)."""
    try:
        runs = [load_run(w) for w in workdirs]
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = []
    for slug in SLUGS:
        claims = load_claims(slug)
        for claim in getattr(claims, "PAPER_CLAIMS", ()):
            if claim.config is not None and (row := check_claim(claims, claim, runs)):
                rows.append(row)
    if not rows:
        print("no registered claim belongs to the config of these runs; "
              "`python -m lib.repro list` shows each claim's config")
        return 0
    print(table(rows))
    return _exit_code(rows)


def report(args) -> int:
    """`report`: the page, the README table, or both; exit 2 when asked for neither."""
    from lib import report as report_lib
    from lib import report_page

    if not (args.out or args.markdown or args.update_readme):
        print("error: say what to build: --out DIR (the page), --markdown (the README's papers "
              "table on stdout) or --update-readme", file=sys.stderr)
        return 2
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; give a folder for index.html and its plots",
              file=sys.stderr)
        return 2
    if args.update_readme and (args.workdirs or args.results != RESULTS):
        print("error: --update-readme writes the table of this checkout's results/ alone (the "
              "README test compares with it); drop the WORKDIRs and --results", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    built = report_lib.collect(args.workdirs, args.results)
    if args.markdown:
        print(report_lib.markdown(built))
    if args.update_readme and not report_lib.update_readme(report_lib.markdown(built)):
        print(f"error: {report_lib.README} lacks the generated table's markers "
              f"({report_lib.TABLE_BEGIN} … {report_lib.TABLE_END}); put them where the table "
              "goes", file=sys.stderr)
        return 2
    if args.out is not None:
        try:
            path = report_page.write(built, args.out, time.perf_counter() - t0)
        except ValueError as e:
            print(f"error: --out {e}", file=sys.stderr)
            return 2
        problems = len(built.problems) + sum(len(p.problems) for p in built.papers)
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s"
              + (f"; {problems} input problem(s) listed on the page" if problems else ""))
    return 0


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
                  f"config: {c.config or 'a whole sweep (not decided by check)'}"
                  + (f" vs {c.versus}" if c.versus else "")
                  + (f" by {c.pairwise}" if c.pairwise else "")
                  + (f", over {c.denominator}" if c.denominator else ""))
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
    v.add_argument("--results", type=pathlib.Path, default=RESULTS,
                   help="where claims.json and the plots are copied for committing "
                   "(default: results/ of this checkout)")
    v.add_argument("--no-record", dest="results", action="store_const", const=None,
                   help="do not copy them")
    c = sub.add_parser("check", help="compare finished runs with their configs' claims")
    c.add_argument("workdirs", nargs="+", help="finished runs' workdirs (local or gs://); "
                   "seeds of one config are averaged, comparisons need both configs' runs")
    sub.add_parser("list", help="list every claim")
    r = sub.add_parser("report", help="one page of every paper's claims and results; the "
                       "README's papers table")
    r.add_argument("workdirs", nargs="*", help="verify workdirs (newer than results/ replace "
                   "it), finished paper-scale runs, or folders holding them")
    r.add_argument("--out", type=pathlib.Path, default=None,
                   help="folder for index.html and its plots")
    r.add_argument("--results", type=pathlib.Path, default=RESULTS,
                   help="the committed verify results (default: results/ of this checkout)")
    r.add_argument("--markdown", action="store_true", help="print the README's papers table")
    r.add_argument("--update-readme", action="store_true",
                   help="write the README's papers table into README.md")
    args = parser.parse_args(argv)
    from lib import metrics

    metrics.quiet_library_logs()
    if args.command == "verify":
        return verify(args.slug, args.workdir or REPO / "workdirs" / "verify" / args.slug,
                      args.results)
    if args.command == "check":
        return check(args.workdirs)
    if args.command == "report":
        return report(args)
    list_claims()
    return 0


if __name__ == "__main__":
    sys.exit(main())

