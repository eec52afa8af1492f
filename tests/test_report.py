"""The reproduction report: the page rendered in headless Chromium from fixtures of results,
stale and failed claims marked, bad input listed, and the README's table generated.

The fixtures are claims.json records written here for every registered small claim, with the
code fingerprint of this checkout (current) or one altered file (stale).
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lib import code_closure, report, report_page, repro
from lib.claims import PaperClaim

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import browser  # noqa: E402

needs_chromium = pytest.mark.skipif(browser.CHROMIUM is None,
                                    reason="Debian's chromium is not installed (.ci/run does)")


BN_CONFIG = "experiments/batchnorm_only/configs/fashion_mnist.py"


def _record(slug: str, **changes) -> dict:
    claims = repro.load_claims(slug)
    rows = [{"id": c.id, "description": c.description, "expected": c.expected,
             "measured": f"fixture value {i}", "passed": True, "hard": c.hard, "status": "PASS"}
            for i, c in enumerate(claims.SMALL_CLAIMS)]
    return {"slug": slug, "started": "2026-12-01T10:00:00+00:00", "seconds": 60.0 + len(rows),
            "workdir": f"/fixture/{slug}", "git_commit": "abc1234def", "python": "3.12.1",
            "packages": {"jax": "0.0-fixture"}, "machine": "fixture", "plots": ["curve.png"],
            "code": code_closure.fingerprint(slug),
            "stages": [{"stage": "s", "folders": 1, "runs": 2, "wall_s": 50.0, "train_s": 40.0}],
            "claims": rows, "measurements": {}} | changes


def _write(results: pathlib.Path, record: dict) -> None:
    folder = results / record["slug"]
    folder.mkdir(parents=True)
    (folder / "claims.json").write_text(json.dumps(record))
    for i, name in enumerate(record["plots"]):
        Image.new("RGB", (120, 80), (40 * i, 120, 200)).save(folder / name)


@pytest.fixture(scope="module")
def all_current(tmp_path_factory) -> pathlib.Path:
    results = tmp_path_factory.mktemp("results")
    for slug in repro.SLUGS:
        _write(results, _record(slug))
    return results


@pytest.fixture(scope="module")
def stale_and_failed(tmp_path_factory) -> pathlib.Path:
    """reservoir measured before lib/train.py changed, batchnorm_only before a config of its
    changed; one hard invariance claim failed."""
    results = tmp_path_factory.mktemp("results")
    for slug in repro.SLUGS:
        record = _record(slug)
        if slug == "reservoir":
            record["code"] = {**record["code"], "lib/train.py": "0" * 16}
        if slug == "batchnorm_only":
            record["code"] = {**record["code"], BN_CONFIG: "0" * 16}
        if slug == "invariance":
            hard = next(r for r in record["claims"] if r["hard"])
            hard.update(passed=False, status="FAIL", measured="0.1 (fixture: fails)")
            record["failed_id"] = hard["id"]
        _write(results, record)
    return results


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    if browser.CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run does)")
    b = browser.Browser(str(tmp_path_factory.mktemp("profile")))
    yield b
    b.close()


def _page(results: pathlib.Path, out: pathlib.Path, workdirs=()) -> pathlib.Path:
    return report_page.write(report.collect(workdirs, results), out)


def _column(b, index: int) -> list[str]:
    return b.evaluate("Array.from(document.querySelectorAll('#overview tbody tr'))"
                      f".map(r => r.cells[{index}].textContent)")


@needs_chromium
def test_page_renders_every_paper_table_and_plot(all_current, chromium, tmp_path):
    page = _page(all_current, tmp_path / "out")
    chromium.open(page.as_uri())
    sections = chromium.evaluate(
        "Array.from(document.querySelectorAll('section.paper')).map(s => [s.id, "
        "s.querySelectorAll('table.small tbody tr').length, "
        "s.querySelectorAll('table.paper tbody tr').length, s.querySelectorAll('img').length])")
    expected = [[slug, len(repro.load_claims(slug).SMALL_CLAIMS),
                 len(repro.load_claims(slug).PAPER_CLAIMS), 1] for slug in repro.SLUGS]
    assert sections == expected
    broken = chromium.evaluate("Array.from(document.images)"
                               ".filter(i => !i.complete || i.naturalWidth === 0).length")
    assert broken == 0 and chromium.evaluate("document.images.length") == len(repro.SLUGS)
    assert _column(chromium, 1) == ["PASS"] * len(repro.SLUGS)
    assert _column(chromium, 5) == ["current"] * len(repro.SLUGS)
    problems = chromium.evaluate("document.querySelector('#problems').textContent")
    assert "None." in problems
    shot = chromium.screenshot()
    (tmp_path / "page.png").write_bytes(shot)
    with Image.open(tmp_path / "page.png") as image:
        width, height = image.size
        assert width >= 1000 and height > 5000  # the whole page, not one screen
        assert len(set(image.convert("L").resize((64, 256)).getdata())) > 8  # not blank
    pdf = chromium.pdf()  # printed: each paper starts a page
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) > len(repro.SLUGS)
    chromium.call("Emulation.setEmulatedMedia", media="print")
    breaks = chromium.evaluate("Array.from(document.querySelectorAll('section.paper'))"
                               ".map(s => getComputedStyle(s).breakBefore)")
    chromium.call("Emulation.setEmulatedMedia", media="")
    assert breaks == ["page"] * len(repro.SLUGS)


@needs_chromium
def test_stale_and_failed_claims_are_marked(stale_and_failed, chromium, tmp_path):
    page = _page(stale_and_failed, tmp_path / "out")
    chromium.open(page.as_uri())
    names = list(repro.SLUGS)
    assert _column(chromium, 1)[names.index("invariance")] == "FAIL"
    assert _column(chromium, 1)[names.index("reservoir")] == "PASS (stale)"
    assert _column(chromium, 5)[names.index("reservoir")] == "stale"
    assert _column(chromium, 5)[names.index("batchnorm_only")] == "stale"
    assert _column(chromium, 5).count("current") == len(names) - 2
    warning = chromium.evaluate("document.querySelector('#reservoir .warning').textContent")
    assert "STALE" in warning and "code changed since it was measured: lib/train.py (changed)" \
        in warning
    warning = chromium.evaluate("document.querySelector('#batchnorm_only .warning').textContent")
    assert f"config changed since it was measured: {BN_CONFIG} (changed)" in warning
    reservoir = chromium.evaluate("Array.from(document.querySelectorAll("
                                  "'#reservoir table.small td.status')).map(c => c.textContent)")
    assert reservoir and set(reservoir) == {"PASS (stale)"}
    failed = json.loads((stale_and_failed / "invariance" / "claims.json").read_text())["failed_id"]
    invariance = chromium.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('#invariance table.small tbody "
        "tr')).map(r => [r.cells[0].textContent, r.cells[5].textContent]))")
    assert invariance[failed] == "FAIL"
    assert all(v == "PASS" for k, v in invariance.items() if k != failed)
    assert chromium.evaluate("document.querySelector('#invariance .warning')") is None

    # sorted by status from the address, then by a click on the "Current?" heading
    chromium.open(page.as_uri() + "#sort=status")
    assert _column(chromium, 1)[0] == "FAIL"
    assert chromium.evaluate("document.querySelector('#overview tbody tr th').textContent"
                             ).startswith("Grounding inductive biases")
    chromium.evaluate("document.querySelectorAll('#overview thead button')[5].click()")
    assert _column(chromium, 5)[:2] == ["stale", "stale"]
    assert chromium.evaluate("document.querySelectorAll('#overview thead th')[5]"
                             ".getAttribute('aria-sort')") == "ascending"


def test_bad_input_is_listed_and_the_page_still_builds(all_current, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    (empty / "logs").mkdir(parents=True)
    unknown = tmp_path / "unknown_paper"
    unknown.mkdir()
    (unknown / "claims.json").write_text(json.dumps({"slug": "not_a_paper", "claims": []}))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    claims = repro.load_claims("batchnorm_only")
    gone = "experiments/batchnorm_only/configs/removed_since.py:seed=0"
    monkeypatch.setattr(claims, "PAPER_CLAIMS", [*claims.PAPER_CLAIMS, PaperClaim(
        "GONE", "a claim whose config was deleted", "test", "none", 0.5, 0.1, config=gone)])
    malformed = {"ids": {"slug": "reservoir", "claims": [{"id": ["x"]}]},
                 "packages": {"slug": "early_phase", "claims": [], "packages": [1]},
                 "plots": _record("plan2vec", started="2027-01-01T00:00:00+00:00",
                                  plots=["../../outside.png"])}
    for name, record in malformed.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "claims.json").write_text(json.dumps(record))
    slug, claim = _plain_claim()
    (tmp_path / "text_metric").mkdir()
    (tmp_path / "text_metric" / "config.json").write_text(
        json.dumps(repro.expected_config(claim.config)))
    (tmp_path / "text_metric" / "results.json").write_text(json.dumps({claim.metric: "0.9"}))
    (tmp_path / "list_results").mkdir()
    (tmp_path / "list_results" / "config.json").write_text(
        json.dumps(repro.expected_config(claim.config)))
    (tmp_path / "list_results" / "results.json").write_text("[1, 2]")
    given = [empty, unknown, unfinished, tmp_path / "missing", tmp_path / "text_metric",
             tmp_path / "list_results",
             *(tmp_path / name for name in malformed)]
    assert repro.main(["report", *map(str, given), "--results", str(all_current),
                       "--out", str(tmp_path / "out")]) == 0
    page = tmp_path / "out" / "index.html"
    text = page.read_text()
    problems = text[text.index('id="problems"'):text.index('id="papers"')]
    assert "no list of claims with string ids" in problems
    assert "&#x27;packages&#x27; is list" in problems
    assert "plan2vec: plot &#x27;../../outside.png&#x27; listed by the verify is not a PNG" \
        in problems and not (tmp_path / "outside.png").exists()
    assert f"{slug}: claim {claim.id}: its runs cannot be compared (TypeError" in problems
    assert "list_results: cannot read its config.json or results.json (config.json and " \
        "results.json must each hold a JSON object)" in problems
    assert f"{empty} holds no run" in problems
    assert "unknown paper &#x27;not_a_paper&#x27;" in problems
    assert f"{unfinished} has no results.json: the run has not finished" in problems
    assert f"{tmp_path / 'missing'} does not exist" in problems
    assert f"claim GONE: its config {gone} no longer exists or loads" in problems
    assert text.count('class="paper"') == len(repro.SLUGS)  # every section still there
    assert '<th scope="row">GONE</th>' in text
    gone_row = text[text.index('<th scope="row">GONE</th>'):]
    assert gone_row[:gone_row.index("</tr>")].count(">N/A<") == 1


def test_report_command_refuses_what_it_cannot_build(tmp_path, capsys):
    assert repro.main(["report"]) == 2
    assert "say what to build" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert repro.main(["report", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "keep.py").write_text("x = 1\n")
    assert repro.main(["report", "--out", str(tmp_path / "code")]) == 2
    assert "no earlier report in it" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "code").iterdir()] == ["keep.py"]
    assert repro.main(["report", str(tmp_path), "--update-readme"]) == 2
    assert "drop the WORKDIRs" in capsys.readouterr().err


def _plain_claim() -> tuple[str, PaperClaim]:
    """A registered paper-scale claim on one config's own metric (no comparison)."""
    for slug in repro.SLUGS:
        for c in repro.load_claims(slug).PAPER_CLAIMS:
            if c.config and not (c.versus or c.denominator or c.pairwise) and c.bounds is None:
                return slug, c
    raise AssertionError("no plain paper-scale claim registered")


@pytest.mark.parametrize("shift, status", [(0.2, "PASS"), (3.0, "FAIL")])
def test_paper_scale_runs_give_mean_spread_status_and_staleness(tmp_path, shift, status):
    """Three runs of a claim's config, their mean `shift` tolerances from the expected value."""
    slug, claim = _plain_claim()
    values = [claim.expected + claim.tolerance * (shift + d) for d in (-0.5, 0.0, 0.5)]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repro.REPO, capture_output=True,
                          text=True).stdout.strip()
    runs = []
    for i, v in enumerate(values):
        workdir = tmp_path / f"run{i}"
        workdir.mkdir()
        if i < 2:  # the third has no run.json: its commit is unknown
            (workdir / "run.json").write_text(json.dumps({"git_commit": head}))
        config = repro.expected_config(claim.config) | {"seed": i}
        runs.append(repro.FinishedRun(workdir, config, {claim.metric: v}))
    paper = report._paper(slug, None, runs)
    result = next(r for r in paper.paper if r.claim.id == claim.id)
    mean, sd = np.mean(values), np.std(values, ddof=1)
    assert result.measured.startswith(f"{mean:.4g} (3 run(s))")
    assert result.spread.endswith(f"{mean:.4g} ± {sd:.2g} (sd)")
    assert result.status == status and result.runs == [str(r.workdir) for r in runs]
    assert len(result.stale) == 1 and "run2: commit unknown cannot be compared" in result.stale[0]
    runs_html = report_page._runs(paper)
    assert runs_html.count(f"commit <code>{head}</code>") == 2
    assert "commit <code>unknown</code>" in runs_html and "no run.json" in runs_html


def test_paper_files_follow_imports_and_module_strings(tmp_path):
    files = {
        "lib/__init__.py": "", "lib/a.py": "from . import b\n", "lib/b.py": "import os\n",
        "lib/c.py": "", "lib/unused.py": "", "lib/pkg/__init__.py": "",
        "lib/pkg/d.py": "from ..c import x\n",
        "experiments/__init__.py": "", "experiments/p/__init__.py": "",
        "experiments/p/run.py": "import lib.a\nMODEL = 'lib.pkg.d:Net'\n",
        "experiments/p/configs/q.py": "from configs import base\n",
        "configs/__init__.py": "", "configs/base.py": "", "experiments/other/x.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert code_closure.paper_files("p", tmp_path) == sorted([
        "experiments/__init__.py", "experiments/p/__init__.py", "experiments/p/run.py",
        "experiments/p/configs/q.py", "lib/__init__.py", "lib/a.py", "lib/b.py", "lib/c.py",
        "lib/pkg/__init__.py", "lib/pkg/d.py", "configs/__init__.py", "configs/base.py"])
    real = code_closure.paper_files("batchnorm_only")
    assert {"lib/train.py", "lib/claims.py", "configs/base.py",
            "experiments/batchnorm_only/claims.py"} <= set(real)
    assert not {"lib/repro.py", "lib/report.py", "lib/report_page.py"} & set(real)


def test_fingerprint_changes():
    before = {"a.py": "1", "b.py": "2", "c.py": "3"}
    after = {"a.py": "1", "b.py": "9", "d.py": "4"}
    assert code_closure.changes(before, after) == ["b.py (changed)", "d.py (new)",
                                                   "c.py (removed)"]
    assert code_closure.changes(before, dict(before)) == []


def test_verify_records_provenance_and_plots(tmp_path, monkeypatch):
    from lib.claims import SmallClaim

    class Fake:
        SMALL_CLAIMS = [SmallClaim("x ≥ 1", "x", "≥ 1", lambda m: (f"{m['x']}", m["x"] >= 1))]
        PAPER_CLAIMS = []

        @staticmethod
        def measure(workdir):
            return {"x": 2}

        @staticmethod
        def plot(m, workdir):
            Image.new("RGB", (8, 8)).save(workdir / "x.png")

    (tmp_path / "work").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "work" / "old.png")  # an earlier verify's plot
    monkeypatch.setattr(repro, "load_claims", lambda slug: Fake)
    assert repro.verify("reservoir", tmp_path / "work", tmp_path / "results") == 0
    record = json.loads((tmp_path / "results" / "reservoir" / "claims.json").read_text())
    assert record["plots"] == ["x.png"]
    assert sorted(p.name for p in (tmp_path / "results" / "reservoir").iterdir()) == [
        "claims.json", "x.png"]
    assert record["code"] == code_closure.fingerprint("reservoir")
    assert record["claims"][0]["status"] == "PASS" and record["measurements"] == {"x": 2}
    assert {"started", "seconds", "git_commit", "packages", "python", "machine"} <= set(record)


def test_readme_papers_table_is_what_the_committed_results_give():
    table = report.readme_table(report.README.read_text())
    assert table is not None, "README.md lacks the generated papers table's markers"
    assert table == report.markdown(report.collect()), (
        "README.md's papers table differs from results/: run "
        "`python -m lib.repro report --update-readme` (after verifying what changed)")


def test_update_readme_replaces_only_the_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\nbefore\n{report.TABLE_BEGIN}\nold\n{report.TABLE_END}\nafter\n")
    assert report.update_readme(f"{report.TABLE_BEGIN}\nnew\n{report.TABLE_END}", readme)
    assert readme.read_text() == (f"# T\n\nbefore\n{report.TABLE_BEGIN}\nnew\n"
                                  f"{report.TABLE_END}\nafter\n")
    readme.write_text("no markers\n")
    assert not report.update_readme("x", readme)


def test_spread_over_seeds_of_repeated_measurements():
    measurements = {"fm": {"accuracy": {"bn_only": [0.70, 0.74, 0.75], "all": [0.86]}},
                    "curve": list(range(30)), "flags": [True, False], "count": 672}
    assert report.repeated(measurements) == [("fm / accuracy / bn_only", [0.70, 0.74, 0.75])]
    paper = report.Paper("p", "P", "", report.Verify({"measurements": measurements}, None, []))
    row = report_page._spreads(paper)
    values = np.array([0.70, 0.74, 0.75])
    assert (f"<td>3</td><td>{values.mean():.4g}</td><td>{values.std(ddof=1):.2g}</td>"
            "<td>0.7</td><td>0.75</td>") in row


def test_verify_in_a_workdir_of_older_code_is_recorded_against_that_code(tmp_path, monkeypatch,
                                                                         capsys):
    from lib.claims import SmallClaim

    class Fake:
        SMALL_CLAIMS = [SmallClaim("x", "x", "any", lambda m: ("1", True))]
        PAPER_CLAIMS = []

        @staticmethod
        def measure(workdir):
            (workdir / "run").mkdir(exist_ok=True)
            (workdir / "run" / "results.json").write_text("{}")
            return {}

    monkeypatch.setattr(repro, "load_claims", lambda slug: Fake)
    first = {"lib/train.py": "1" * 16}
    monkeypatch.setattr(code_closure, "fingerprint", lambda slug: dict(first))
    repro.verify("reservoir", tmp_path / "w", tmp_path / "r")
    monkeypatch.setattr(code_closure, "fingerprint", lambda slug: {"lib/train.py": "2" * 16})
    repro.verify("reservoir", tmp_path / "w", tmp_path / "r")
    assert "holds runs of older code (lib/train.py (changed)" in capsys.readouterr().err
    record = json.loads((tmp_path / "r" / "reservoir" / "claims.json").read_text())
    assert record["code"] == first  # so the report calls it stale
    (tmp_path / "w" / "code.json").unlink()  # runs from before verifies kept a fingerprint
    repro.verify("reservoir", tmp_path / "w", tmp_path / "r")
    assert json.loads((tmp_path / "r" / "reservoir" / "claims.json").read_text())["code"] is None


def _small(status: str, hard: bool = True) -> report.SmallResult:
    return report.SmallResult(status, "", "", "", status, hard)


def test_statuses_and_summaries_by_hand():
    verify = report.Verify({"started": "2026-12-01T00:00:00+00:00", "seconds": 61.4,
                            "git_commit": "0123456789abcdef+dirty"}, None, [])
    paper = report.Paper("p", "P", "r", verify, [_small("PASS"), _small("PASS"),
                                                  _small("FAIL (soft)", False)])
    assert paper.small_status() == "PASS" and paper.status_word() == "PASS"
    assert report.small_summary(paper) == "hard 2 of 2 PASS, soft 0 of 1; failed: FAIL (soft)"
    paper.small.append(_small("NOT RUN"))
    assert paper.small_status() == "INCOMPLETE"
    paper.small.append(_small("FAIL"))
    assert paper.small_status() == "FAIL"
    verify.stale = ["code changed"]
    assert paper.status_word() == "FAIL (stale)"
    assert report.short_commit("0123456789abcdef+dirty") == "0123456+dirty"
    claim = PaperClaim("A", "a", "s", "c", 0.5, 0.1, config="x.py")
    paper.paper = [report.PaperResult(claim, "PASS", runs=["w"]),
                   report.PaperResult(claim, "NOT RUN"), report.PaperResult(claim, "NO CONFIG")]
    assert report.paper_summary(paper) == "1 reproduced, 0 not, 2 not run, of 3"
    row = report.markdown(report.Report([paper], [], 0, [])).splitlines()[3]
    assert row == ("| [P](experiments/p/README.md) `p` | r | **FAIL (stale)**: hard 2 of 4 PASS, "
                   "soft 0 of 1; failed: FAIL (soft), FAIL; 1 not run | 1 reproduced, 0 not, "
                   "2 not run, of 3 | 2026-12-01, 0123456+dirty, 61 s |")
    assert report.Paper("q", "Q", "").status_word() == "NOT RUN"


def test_the_runs_a_comparison_reads_count_for_its_staleness(tmp_path):
    slug, claim = next((s, c) for s in repro.SLUGS for c in repro.load_claims(s).PAPER_CLAIMS
                       if c.config and c.versus and not (c.denominator or c.pairwise))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repro.REPO, capture_output=True,
                          text=True).stdout.strip()
    runs = []
    for name, spec, value in (("mine", claim.config, 0.9), ("theirs", claim.versus, 0.8)):
        (tmp_path / name).mkdir()
        if name == "mine":
            (tmp_path / name / "run.json").write_text(json.dumps({"git_commit": head}))
        runs.append(repro.FinishedRun(tmp_path / name, repro.expected_config(spec),
                                      {claim.metric: value}))
    result = next(r for r in report._paper(slug, None, runs).paper if r.claim.id == claim.id)
    assert result.runs == [str(tmp_path / "mine"), str(tmp_path / "theirs")]
    assert len(result.stale) == 1 and result.stale[0].startswith(f"{tmp_path / 'theirs'}: commit")
    assert result.measured.startswith(f"{0.9 - 0.8:.4g} (1 run(s) vs 1)")


def test_a_paper_whose_claims_do_not_import_is_never_shown_passing(all_current, monkeypatch):
    def broken(slug):
        if slug == "invariance":
            raise SyntaxError("invalid syntax (claims.py, line 1)")
        return load(slug)

    load = repro.load_claims
    monkeypatch.setattr(repro, "load_claims", broken)
    paper = next(p for p in report.collect((), all_current).papers if p.slug == "invariance")
    assert paper.small_status() == "INCOMPLETE"
    assert paper.problems == ["experiments/invariance/claims.py does not import: SyntaxError: "
                              "invalid syntax (claims.py, line 1)"]


def test_verify_refuses_to_run_in_its_own_results_folder(tmp_path, capsys):
    assert repro.verify("reservoir", tmp_path / "reservoir", tmp_path) == 2
    assert "is where the result is recorded" in capsys.readouterr().err
    assert not (tmp_path / "reservoir").exists()
