"""The reproduction report as one static page: DIR/index.html and the plots beside it.

Plain HTML and CSS, readable offline, without colour (every status is a word) and on paper; a
few lines of script, no framework, sort the overview table (a click on a column's heading, or
the address's #sort=COLUMN, #sort=COLUMN-desc).
"""

from __future__ import annotations

import datetime
import html
import math
import pathlib
import re
import shutil

from lib import report as report_lib
from lib import runinfo
from lib.claims import mean_std

STATUS_ORDER = {"FAIL": 0, "INCOMPLETE": 1, "NOT RUN": 2, "PASS": 3}
CSS_OF_STATUS = {"PASS": "PASS", "FAIL": "FAIL", "FAIL (soft)": "FAIL", "INCOMPLETE": "NA",
                 "N/A": "NA", "NOT RUN": "NOT-RUN", "NO CONFIG": "NA"}
GENERATOR = '<meta name="generator" content="python -m lib.repro report">'
PLOT_NAME = re.compile(r"[\w.-]+\.png")  # a bare file name: nothing outside the folder
STATE_ORDER = {"stale": 0, "not run": 1, "current": 2}

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 78rem; margin: 1rem auto; padding: 0 1rem;
       color: #111; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1.2rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #aaa; padding: .25rem .45rem; vertical-align: top; text-align: left; }
td code { overflow-wrap: anywhere; }
th { background: #eee; }
th button { font: inherit; font-weight: 600; border: 0; background: none; padding: 0;
            cursor: pointer; text-decoration: underline dotted; }
.status { font-weight: 700; white-space: nowrap; }
.PASS { background: #dff0d8; } .FAIL { background: #f6d5d5; }
.stale { background: #fff1c2; } .NOT-RUN, .NA { background: #f2f2f2; }
.warning { border-left: 4px solid #b58900; padding: .2rem .6rem; background: #fffbea; }
code, pre { font-family: ui-monospace, monospace; font-size: .9em; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .5rem; }
figure { display: inline-block; margin: .5rem 1rem .5rem 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #ccc; }
@media print {
  body { max-width: none; font-size: 10pt; }
  th button { text-decoration: none; }
  section.paper { break-before: page; }
  tr, figure { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""

SORT_SCRIPT = """
function sortTable(table, column, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const key = row => row.cells[column].dataset.sort ?? row.cells[column].textContent;
  const numeric = rows.every(row => key(row) !== "" && !isNaN(Number(key(row))));
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
    return descending ? -order : order;
  });
  rows.forEach(row => body.appendChild(row));
  const sorted = descending ? "descending" : "ascending";
  Array.from(table.tHead.rows[0].cells).forEach((th, i) =>
    th.setAttribute("aria-sort", i === column ? sorted : "none"));
}
document.querySelectorAll("table.sortable").forEach(table => {
  const heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach((th, i) => th.querySelector("button").addEventListener("click", () =>
    sortTable(table, i, th.getAttribute("aria-sort") === "ascending")));
  const wanted = /^#sort=([a-z-]+?)(-desc)?$/.exec(location.hash);
  if (wanted) {
    const column = heads.map(th => th.dataset.name).indexOf(wanted[1]);
    if (column >= 0) sortTable(table, column, Boolean(wanted[2]));
  }
});
"""


def _e(text) -> str:
    return html.escape(str(text))


def _status(status: str, stale: bool = False, sort: str = "") -> str:
    css = "stale" if stale else CSS_OF_STATUS.get(status, "NA")
    key = f' data-sort="{_e(sort)}"' if sort else ""
    return f'<td class="status {css}"{key}>{_e(status + (" (stale)" if stale else ""))}</td>'


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>" if items else ""


def _overview(report: report_lib.Report) -> str:
    heads = [("paper", "Paper"), ("status", "Small scale"), ("hard", "Hard claims PASS"),
             ("soft", "Soft claims PASS"), ("paper-scale", "Paper scale reproduced"),
             ("state", "Current?"), ("verified", "Verified"), ("seconds", "Verify time (s)")]
    out = ['<table class="sortable" id="overview"><caption>All papers (click a heading to sort; '
           'small-scale status FAIL means a hard claim failed)</caption><thead><tr>']
    out += [f'<th scope="col" data-name="{n}" aria-sort="none"><button type="button">{_e(t)}'
            "</button></th>" for n, t in heads]
    out.append("</tr></thead><tbody>")
    for i, p in enumerate(report.papers):
        status = p.small_status()
        stale = bool(p.verify and p.verify.stale)
        state = "not run" if p.verify is None and not any(r.runs for r in p.paper) else (
            "stale" if p.stale else "current")
        hard, soft = p.registered(True), p.registered(False)
        reproduced = p.count("PASS", scale="paper")
        run = sum(bool(r.runs) for r in p.paper)
        ran = f"{reproduced} of {run} run" if run else "none run"
        v = p.verify.record if p.verify else {}
        out.append(
            f'<tr><th scope="row" data-sort="{i:02d}"><a href="#{p.slug}">{_e(p.title)}</a>'
            f"</th>"
            + _status(status, stale, f"{STATUS_ORDER[status]}{int(not stale)}")
            + f'<td data-sort="{p.count("PASS", True) / hard if hard else 1:.4f}">'
            f'{p.count("PASS", True)} of {hard}</td>'
            f'<td data-sort="{p.count("PASS", False) / soft if soft else 1:.4f}">'
            f'{p.count("PASS", False)} of {soft}</td>'
            f'<td data-sort="{run}">{ran} ({len(p.paper)} claims)</td>'
            f'<td class="status {"stale" if state == "stale" else ""}" '
            f'data-sort="{STATE_ORDER[state]}">{_e(state)}</td>'
            f'<td>{_e(str(v.get("started", "never"))[:16].replace("T", " "))} '
            f'<code>{_e(report_lib.short_commit(v.get("git_commit", "")))}</code></td>'
            f'<td data-sort="{v.get("seconds", 0):.1f}">{v.get("seconds", 0):.0f}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _small_table(p: report_lib.Paper) -> str:
    stale = bool(p.verify and p.verify.stale)
    rows = "".join(
        f"<tr><th scope=\"row\">{_e(r.id)}</th><td>{_e(r.description)}</td>"
        f"<td>{'hard' if r.hard else 'soft'}</td><td>{_e(r.expected)}</td>"
        f"<td>{_e(r.measured)}</td>{_status(r.status, stale and r.status != 'NOT RUN')}</tr>"
        for r in p.small)
    return (f'<table class="claims small"><caption>{_e(p.slug)}: small-scale claims '
            "(measured values per seed where the claim is per seed)</caption><thead><tr>"
            '<th scope="col">Claim</th><th scope="col">What</th><th scope="col">Hard or soft</th>'
            '<th scope="col">Expected</th><th scope="col">Measured</th>'
            f'<th scope="col">Status</th></tr></thead><tbody>{rows}</tbody></table>')


def _paper_table(p: report_lib.Paper) -> str:
    rows = []
    for r in p.paper:
        c = r.claim
        config = c.config or "(a whole sweep)"
        versus = "".join(f" {w} <code>{_e(s)}</code>" for w, s in
                         (("vs", c.versus), ("over", c.denominator)) if s)
        measured = _e(r.measured) + (f"<br>{_e(r.spread)}" if r.spread else "")
        rows.append(
            f'<tr><th scope="row">{_e(c.id)}</th><td>{_e(c.description)}</td>'
            f"<td>{_e(c.source)}</td><td>{_e(c.confidence)}</td>"
            f"<td>{'hard' if c.hard else 'soft'}</td><td>{_e(c.expected_text())} "
            f"<small>({_e(c.metric)})</small></td><td>{measured}</td>"
            f"{_status(r.status, bool(r.stale))}"
            f"<td><code>{_e(config)}</code>{versus}</td></tr>")
    return (f'<table class="claims paper"><caption>{_e(p.slug)}: paper-scale claims</caption>'
            '<thead><tr><th scope="col">Claim</th><th scope="col">What</th>'
            '<th scope="col">Source</th><th scope="col">Confidence</th>'
            '<th scope="col">Hard or soft</th><th scope="col">Expected (tolerance)</th>'
            '<th scope="col">Measured (mean over runs)</th><th scope="col">Status</th>'
            '<th scope="col">Config (<code>python -m lib.main --config=…</code>)</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def _plots(p: report_lib.Paper, out: pathlib.Path) -> str:
    if p.verify is None:
        return ""
    figures = []
    names = p.verify.record["plots"]
    if names is None:  # a verify from before records listed their plots
        names = sorted(f.name for f in p.verify.folder.glob("*.png"))
    for name in names:
        source = p.verify.folder / name
        if not PLOT_NAME.fullmatch(name):
            p.problems.append(f"plot {name!r} listed by the verify is not a PNG file's bare "
                              "name: not shown")
            continue
        if not source.is_file():
            p.problems.append(f"plot {name} listed by the verify is missing from "
                              f"{p.verify.folder}")
            continue
        (out / "plots" / p.slug).mkdir(parents=True, exist_ok=True)
        (out / "plots" / p.slug / name).write_bytes(source.read_bytes())
        figures.append(f'<figure><img src="plots/{_e(p.slug)}/{_e(name)}" alt="{_e(p.slug)}: '
                       f'{_e(name)}"><figcaption>{_e(name)}</figcaption></figure>')
    return "<h3>Plots</h3>" + ("".join(figures) or "<p>This paper's verify draws no plots.</p>")


def _spreads(p: report_lib.Paper) -> str:
    rows = []
    for path, values in report_lib.repeated(p.verify.record.get("measurements") if p.verify
                                            else None):
        finite = [v for v in values if math.isfinite(v)]
        if len(finite) < 2:
            continue
        mean, sd = mean_std(finite)
        rows.append(f"<tr><th scope=\"row\">{_e(path)}</th><td>{len(values)}</td>"
                    f"<td>{mean:.4g}</td><td>{sd:.2g}</td><td>{min(finite):.4g}</td>"
                    f"<td>{max(finite):.4g}</td></tr>")
    if not rows:
        return ""
    return (f'<table class="spread"><caption>{_e(p.slug)}: spread over seeds of the repeated '
            "measurements the claims read</caption><thead><tr><th scope=\"col\">Measurement"
            '</th><th scope="col">Seeds</th><th scope="col">Mean</th><th scope="col">SD</th>'
            '<th scope="col">Min</th><th scope="col">Max</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _runs(p: report_lib.Paper) -> str:
    """What produced the paper-scale numbers: each matched run's run.json."""
    items = []
    for workdir in dict.fromkeys(w for r in p.paper for w in r.runs):
        info = report_lib.run_info(workdir)
        packages = ", ".join(f"{k} {v}" for k, v in _mapping(info.get("packages")).items())
        items.append(f"<li><code>{_e(workdir)}</code>: started {_e(info.get('time', '?'))}, "
                     f"commit <code>{_e(info.get('git_commit', 'unknown'))}</code>, "
                     f"{_e(info.get('device_count', '?'))} × {_e(info.get('device_kind', '?'))}"
                     f"; {_e(packages or 'no run.json')}</li>")
    return ("<h3>What produced the paper-scale results</h3><ul>" + "".join(items) + "</ul>"
            if items else "")


def _provenance(p: report_lib.Paper) -> str:
    if p.verify is None:
        return ""
    v = p.verify.record
    packages = ", ".join(f"{k} {val}" for k, val in v["packages"].items())
    stages = "".join(
        f"<tr><td>{_e(s.get('stage'))}</td><td>{_e(s.get('runs'))}</td>"
        f"<td>{_e(s.get('wall_s'))}</td><td>{_e(s.get('train_s'))}</td></tr>"
        for s in map(_mapping, v["stages"]))
    table = (f'<table class="stages"><caption>{_e(p.slug)}: verify time by stage</caption>'
             '<thead><tr><th scope="col">Stage</th><th scope="col">Runs</th>'
             '<th scope="col">Wall s</th><th scope="col">Of which training s</th></tr></thead>'
             f"<tbody>{stages}</tbody></table>") if stages else ""
    return ("<h3>What produced the small-scale results</h3><ul>"
            f"<li>Verify started {_e(v['started'])}, took {v['seconds']:.0f} s"
            f" in <code>{_e(v.get('workdir', p.verify.folder))}</code></li>"
            f"<li>Commit <code>{_e(v.get('git_commit', 'not recorded'))}</code></li>"
            f"<li>Python {_e(v.get('python', 'not recorded'))}; "
            f"{_e(packages or 'packages not recorded')}</li>"
            f"<li>Machine: {_e(v.get('machine', 'not recorded'))}</li></ul>{table}")


def _paper_section(p: report_lib.Paper, out: pathlib.Path) -> str:
    plots = _plots(p, out)  # first: a missing plot adds a problem line
    stale = p.verify.stale if p.verify else []
    run_stale = [s for r in p.paper for s in r.stale]
    summary = (f"Small scale: <strong>{_e(p.small_status())}</strong>, "
               f"{len(p.small)} claims registered, {p.count('PASS')} PASS, "
               f"{p.count('FAIL')} FAIL (hard), {p.count('FAIL (soft)')} FAIL (soft), "
               f"{p.count('N/A')} undecided, {p.count('NOT RUN')} not run. "
               f"Paper scale: {len(p.paper)} claims registered, "
               f"{p.count('PASS', scale='paper')} reproduced, "
               f"{p.count('FAIL', scale='paper') + p.count('FAIL (soft)', scale='paper')} not "
               f"reproduced, {p.count('NOT RUN', scale='paper')} not run, "
               f"{p.count('NO CONFIG', scale='paper')} decided over a whole sweep.")
    commands = [f"python -m lib.repro verify {p.slug}    # every small-scale number above"]
    for spec in dict.fromkeys(s for r in p.paper for s in (r.claim.config, r.claim.versus,
                                                            r.claim.denominator) if s):
        path, _, arg = spec.partition(":")
        flag = f"--config={path}" + (f":{arg}" if arg else "")
        commands.append(f"python -m lib.main {flag} --workdir=WORKDIR")
    if len(commands) > 1:
        commands.append("python -m lib.repro check WORKDIR [WORKDIR…]    # the paper-scale claims")
    return (f'<section class="paper" id="{_e(p.slug)}" aria-labelledby="h-{_e(p.slug)}">'
            f'<h2 id="h-{_e(p.slug)}">{_e(p.title)} <small><code>{_e(p.slug)}</code></small></h2>'
            f"<p><strong>Reported:</strong> {_e(p.reported)}</p><p class=\"summary\">{summary}</p>"
            + ("<div class=\"warning\"><p><strong>STALE:</strong> these small-scale results may "
               "no longer hold for this checkout:</p>" + _list(stale) + "</div>" if stale else "")
            + ("<div class=\"warning\"><p><strong>STALE paper-scale runs:</strong></p>"
               + _list(run_stale) + "</div>" if run_stale else "")
            + ("<div class=\"warning\"><p><strong>Problems:</strong></p>" + _list(p.problems)
               + "</div>" if p.problems else "")
            + (_small_table(p) if p.verify else
               f"<p>Not verified yet: run <code>python -m lib.repro verify {_e(p.slug)}</code>."
               "</p>" + _small_table(p))
            + _spreads(p) + _paper_table(p) + plots
            + "<h3>Reproduce</h3><pre>" + _e("\n".join(commands)) + "</pre>"
            + _provenance(p) + _runs(p) + "</section>")


def _text(path: pathlib.Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def write(report: report_lib.Report, out: pathlib.Path, seconds_to_build: float = 0.0
          ) -> pathlib.Path:
    """Writes out/index.html and the plots it shows; returns the page's path."""
    if out.is_dir() and any(out.iterdir()) and GENERATOR not in _text(out / "index.html"):
        raise ValueError(f"{out} is a folder with files and no earlier report in it; give a new "
                         "or empty folder (the report replaces its index.html and plots/)")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "plots").is_dir():  # an earlier build's, which may no longer belong
        shutil.rmtree(out / "plots")
    sections = "".join(_paper_section(p, out) for p in report.papers)
    total = sum(p.verify.record["seconds"] for p in report.papers if p.verify)
    verified = sum(p.verify is not None for p in report.papers)
    problems = (report.problems + [f"{p.slug}: {line}" for p in report.papers
                                   for line in p.problems]
                + [f"{w}: a finished run whose config is no registered claim's current config "
                   "(changed since it ran, or not a claim's config): not shown"
                   for w in report.unmatched])
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{GENERATOR}'
        f"<title>Reproduction report</title><style>{STYLE}</style></head><body>"
        "<header><h1>Reproduction report: which papers reproduce, and how closely</h1>"
        f"<p>Built {_e(now)} from checkout <code>{_e(runinfo.git_commit())}</code>"
        + (f" in {seconds_to_build:.1f} s" if seconds_to_build else "") + ". "
        f"Small scale: {verified} of {len(report.papers)} papers verified, "
        f"{total:.0f} s of verify runs in all. Paper scale: {report.runs} finished runs read. "
        "A result is <strong>stale</strong> when the code or config it ran has changed since; "
        "stale results are marked, never shown as current.</p></header>"
        '<section id="problems"><h2>Problems with the input</h2>'
        + (_list(problems) if problems else "<p>None.</p>") + "</section>"
        f'<section id="papers"><h2>All papers</h2>{_overview(report)}</section>'
        f"{sections}<footer><p>Rebuild: <code>python -m lib.repro report [WORKDIR…] --out DIR"
        f"</code></p></footer><script>{SORT_SCRIPT}</script></body></html>\n")
    path = out / "index.html"
    path.write_text(page)
    return path
