"""R@K curves (K = 1..50) of the reproduced rows of a table whose result spec draws them
(``rank_plot``), from their per-query ranks, as PNG bytes: one panel per kind of ranks (e.g. a
retrieval direction). Drawn with matplotlib's Agg canvas under the default style (a user's
matplotlibrc does not change the file) and saved without the "Software" PNG text chunk, so the
same ranks give the same bytes with the same matplotlib."""

from __future__ import annotations

import io

import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.leaderboard.tables import Table

MAX_K = 50


def recall_curve(ranks: np.ndarray, max_k: int = MAX_K) -> np.ndarray:
    """R@K in percent for K = 1..max_k from per-query ranks (n,) counted from 1; (max_k,)."""
    ks = np.arange(1, max_k + 1)
    return 100.0 * (np.asarray(ranks)[:, None] <= ks).mean(axis=0)


def recall_plot_png(table: Table) -> bytes | None:
    """A PNG with one panel per kind of ranks (sorted by name) and one line per row that has
    ranks of that kind (labelled system, variant, run; prefixed by the group number when the
    table has several groups); None when no row has ranks."""
    lines = [
        (number, row)
        for number, group in enumerate(table.groups, start=1)
        for row in group.rows
        if row.ranks
    ]
    if not lines:
        return None
    panels = sorted({name for _, row in lines for name in row.ranks})
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(11, 4.5), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        ks = np.arange(1, MAX_K + 1)
        for ax, panel in zip(axes, panels, strict=True):
            for number, row in lines:
                if panel not in row.ranks:
                    continue
                label = f"{row.system} ({row.variant or '—'}), {row.source}"
                if len(table.groups) > 1:
                    label = f"G{number}: {label}"
                ax.plot(ks, recall_curve(row.ranks[panel]), label=label, linewidth=1.5)
            ax.set_title(f"{panel.upper()} R@K, {table.title}", fontsize=10)
            ax.set_xlabel("K")
            ax.set_xlim(1, MAX_K)
            ax.set_ylim(0, 100)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        axes[0].set_ylabel("R@K (%)")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
