"""Shared plumbing of the papers' across-run analyses (experiments/<slug>/analysis.py):
reading finished procedure workdirs, headless matplotlib, and the command line.

    python -m experiments.<slug>.analysis RUN_WORKDIR [RUN_WORKDIR …] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Callable

from etils import epath


def read_run(workdir) -> tuple[dict, dict]:
    """(config, results) of a finished run or procedure (both files at the workdir's top)."""
    w = pathlib.Path(workdir)
    if not (w / "results.json").exists():
        raise FileNotFoundError(f"{w} has no results.json: the run has not finished (re-run "
                                "its command to resume it)")
    return json.loads((w / "config.json").read_text()), json.loads(
        (w / "results.json").read_text())


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> None:
    """Lays out, writes (a PNG; local or gs://) and closes a figure."""
    fig.tight_layout()
    with epath.Path(path).open("wb") as f:
        fig.savefig(f, format="png", dpi=120)
    pyplot().close(fig)


def main(doc: str, analyse: Callable[[list[str], pathlib.Path], None], argv=None) -> int:
    """Parses `workdirs… [--out DIR]` and runs `analyse(workdirs, out)`, which prints its
    tables and writes its figures into out; an unfinished run exits 2 with its name."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--out", default=".", help="folder for the figures")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        analyse(args.workdirs, out)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    return 0
