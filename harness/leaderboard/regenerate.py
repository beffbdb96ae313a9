"""``run.py --leaderboard``: read the run records and reported.yaml, write every table (markdown,
CSV, R@K plot where the task's result spec draws one) and the index into the leaderboard folder."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.leaderboard.csv_table import table_csv
from harness.leaderboard.markdown import index_markdown, table_markdown
from harness.leaderboard.plots import recall_plot_png
from harness.leaderboard.records import load_runs
from harness.leaderboard.reported import load_reported
from harness.leaderboard.tables import build_tables
from harness.results import atomic_write_bytes

INDEX = "README.md"


def regenerate(
    out_dir: Path,
    runs: Sequence[Path],
    reported_path: Path,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write ``<task>_<dataset>.md`` and ``.csv`` for every table, ``.png`` for tables whose
    result spec has ``rank_plot`` and that have reproduced ranks, and ``README.md`` into
    ``out_dir``; returns the written paths.

    ``runs``: folders searched recursively for results.json; ``reported_path``: reported.yaml;
    ``warn`` gets one line per skipped run file (default: printed on stderr).
    """
    warn = warn or (lambda line: print(line, file=sys.stderr))
    reported = load_reported(reported_path)
    tables = build_tables(load_runs(runs, warn), reported)
    out_dir = Path(out_dir)
    written, plots = [], set()
    for table in tables:
        png = recall_plot_png(table) if table.spec.rank_plot else None
        if png is not None:
            written.append(atomic_write_bytes(out_dir / f"{table.name}.png", png))
            plots.add(table.name)
        plot_file = f"{table.name}.png" if png is not None else None
        markdown = table_markdown(table, reported, plot_file)
        written.append(atomic_write_bytes(out_dir / f"{table.name}.md", markdown.encode()))
        written.append(atomic_write_bytes(out_dir / f"{table.name}.csv", table_csv(table).encode()))
    index = index_markdown(tables, reported, plots).encode()
    written.append(atomic_write_bytes(out_dir / INDEX, index))
    return written
