"""CSV rendering of a table (``<task>_<dataset>.csv``): one line per row, every group's protocol
spelled out, numbers at fixed precision, so that the same inputs give the same bytes."""

from __future__ import annotations

import csv
import io

from harness.leaderboard.rows import QUERY_DEPENDENT_MARK, SEEDS
from harness.leaderboard.tables import Table


def table_csv(table: Table) -> str:
    """The CSV text of ``table``: task, dataset, group, protocol, kind, system, variant (seed, when
    the table has mean ± std rows over seeds: a run's seed, a seeds row's seeds), one
    column per metric, ``<metric> std`` where a mean ± std row over seeds has it,
    ``<metric> ci_lo``/``ci_hi``/``p`` where the table has them (a seeds row: its largest
    per-seed p), markers
    (``<metric>=<mark>`` pairs joined by ``;``, led by ``system=§`` for a row whose scores were
    measured to depend on the other test queries) and source."""
    rows = table.rows()
    stats = [
        (column.key, kind)
        for column in table.columns
        for kind in ("ci", "p")
        if any(column.key in getattr(row, kind) for row in rows)
    ]
    seeded = any(row.kind == SEEDS for row in rows)
    header = ["task", "dataset", "group", "protocol", "kind", "system", "variant"]
    header += ["seed"] if seeded else []
    header += [column.key for column in table.columns]
    spread = [c.key for c in table.columns if any(c.key in row.spread for row in rows)]
    header += [f"{key} std" for key in spread]
    for key, kind in stats:
        header += [f"{key} ci_lo", f"{key} ci_hi"] if kind == "ci" else [f"{key} p"]
    header += ["markers", "source"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for number, group in enumerate(table.groups, start=1):
        for row in group.rows:
            label = group.protocol.label(table.spec.postprocessings)
            line = [table.task, table.dataset, number, label, row.kind]
            line += [row.system, row.variant]
            if seeded:  # a seeds row lists its seeds
                seeds = row.seeds or ([row.seed] if row.seed is not None else [])
                line.append(" ".join(map(str, seeds)))
            line += [_number(row.values.get(column.key)) for column in table.columns]
            line += [_number(row.spread.get(key)) for key in spread]
            for key, kind in stats:
                if kind == "ci":
                    lo, hi = row.ci.get(key, (None, None))
                    line += [_number(lo), _number(hi)]
                else:  # a seeds row: the largest of its per-seed p-values
                    p = max(row.seed_p[key]) if key in row.seed_p else row.p.get(key)
                    line.append(_number(p, 4))
            marks = sorted(row.markers.items())
            if row.query_dependent:
                marks.insert(0, ("system", QUERY_DEPENDENT_MARK))
            line.append(";".join(f"{key}={mark}" for key, mark in marks))
            line.append(row.source)
            writer.writerow(line)
    return out.getvalue()


def _number(value: float | None, decimals: int = 3) -> str:
    return "" if value is None else f"{value:.{decimals}f}"
