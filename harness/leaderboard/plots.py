"""R@K curves (K = 1..50) of the reproduced rows of a table whose result spec draws them
(``rank_plot``), from their per-query ranks, as PNG bytes: a row of panels per row group, a
panel per kind of ranks (e.g. a retrieval direction). Drawn with matplotlib's Agg canvas under
the default style (a user's matplotlibrc does not change the file) and saved without the
"Software" PNG text chunk, so the same ranks give the same bytes with the same matplotlib."""

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
    """A PNG with one row of panels per row group that has ranks (as numbered in the table),
    one panel per kind of ranks (sorted by name), one line per row with ranks of that kind
    (labelled system, variant, run) and the group's legend beside its row; None when no row has
    ranks. A group per row keeps each legend to one protocol's runs however many seeds and
    post-processings the table holds."""
    groups = [
        (number, [row for row in group.rows if row.ranks])
        for number, group in enumerate(table.groups, start=1)
    ]
    groups = [(number, rows) for number, rows in groups if rows]
    if not groups:
        return None
    panels = sorted({name for _, rows in groups for row in rows for name in row.ranks})
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(5 * len(panels) + 4, 3.6 * len(groups)), dpi=100)
        FigureCanvasAgg(figure)
        grid = figure.subplots(len(groups), len(panels), sharey=True, squeeze=False)
        ks = np.arange(1, MAX_K + 1)
        for axes, (number, rows) in zip(grid, groups, strict=True):
            legend: dict[str, object] = {}
            for ax, panel in zip(axes, panels, strict=True):
                for row in rows:
                    if panel in row.ranks:
                        label = f"{row.system} ({row.variant or '—'}), {row.source}"
                        curve = recall_curve(row.ranks[panel])
                        legend.setdefault(label, ax.plot(ks, curve, label=label, linewidth=1.5)[0])
                if not ax.lines:  # e.g. QB-Norm, which ranks text queries only
                    ax.text(
                        0.5, 0.5, f"no {panel.upper()} ranks", ha="center", transform=ax.transAxes
                    )
                ax.set_title(f"{panel.upper()} R@K, group {number}", fontsize=10)
                ax.set_xlabel("K")
                ax.set_xlim(1, MAX_K)
                ax.set_ylim(0, 100)
                ax.grid(True, alpha=0.3)
            axes[0].set_ylabel("R@K (%)")
            axes[-1].legend(
                list(legend.values()),
                list(legend),
                fontsize=7,
                loc="upper left",
                bbox_to_anchor=(1.02, 1.0),
            )
        figure.suptitle(table.title, fontsize=11)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches="tight")
    return buffer.getvalue()
