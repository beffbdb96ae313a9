"""The console that run reports print to (metric tables, comparisons, benchmark tables).

Written to a file or pipe (a cluster job's log, ``| tee``), rich lays tables out in 80 columns
and cuts every cell of a comparison to a few characters; there the console is wide enough for
the widest table instead. On a terminal it keeps the terminal's width.
"""

from __future__ import annotations

from rich.console import Console

# Columns of a piped console: a 5-method comparison table with both directions needs about 200.
PIPED_WIDTH = 240


def report_console() -> Console:
    """A rich Console for reports: the terminal's width, or :data:`PIPED_WIDTH` columns when
    output is not a terminal."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)
