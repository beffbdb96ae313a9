"""Assembling the tables: rows of every run and reported entry, one table per task and dataset,
one row group per protocol; difference rows; bootstrap intervals and paired p-values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.leaderboard.bootstrap import paired_p_value, percentile_ci
from harness.leaderboard.protocol import Protocol
from harness.leaderboard.records import RunRecord
from harness.leaderboard.reported import Reported
from harness.leaderboard.rows import (
    REPORTED,
    REPRODUCED,
    Row,
    difference_row,
    reported_row,
    run_rows,
    seeds_row,
)
from harness.leaderboard.specs import spec_of
from harness.result_spec import Column, ResultSpec


@dataclass
class Group:
    """The rows of one protocol; ``reference`` is the row p-values are computed against."""

    protocol: Protocol
    rows: list[Row]
    reference: Row | None


@dataclass
class Table:
    """One task on one dataset. ``spec``: the task's result spec; ``columns``: the metric
    columns shown (required ones, and optional ones some row has); ``notes``: lines from
    reported.yaml and from the runs."""

    task: str
    dataset: str
    title: str
    spec: ResultSpec
    columns: tuple[Column, ...]
    groups: list[Group]
    notes: list[str]

    @property
    def name(self) -> str:
        """The file stem: ``<task>_<dataset>``."""
        return f"{self.task}_{self.dataset}"

    def rows(self) -> list[Row]:
        """Every row, group by group."""
        return [row for group in self.groups for row in group.rows]


def build_tables(runs: Sequence[RunRecord], reported: Reported) -> list[Table]:
    """The tables of every (task, dataset) that has a run or a reported entry, sorted by name."""
    rows: dict[tuple[str, str], list[Row]] = {}
    notes: dict[tuple[str, str], list[str]] = {}
    run_notes: dict[tuple[str, str], dict[str, list[str]]] = {}
    for entry in reported.entries:
        rows.setdefault((entry.task, entry.dataset), []).append(reported_row(entry))
    for note in reported.notes:
        notes.setdefault((note.task, note.dataset), []).append(f"[{note.source}] {note.text}")
    for run in runs:
        key = (run.record["task"], run.record["dataset"])
        rows.setdefault(key, []).extend(run_rows(run, reported))
        for line in run.record.get("notes") or []:
            run_notes.setdefault(key, {}).setdefault(str(line), []).append(run.run_id)
    for key, lines in run_notes.items():
        notes.setdefault(key, []).extend(
            f"{line} (run{'s' if len(ids) > 1 else ''} {', '.join(ids)})"
            for line, ids in lines.items()
        )
    tables = []
    for (task, dataset), table_rows in sorted(rows.items()):
        spec = spec_of(task)
        groups = [_group(spec, protocol, rows) for protocol, rows in _by_protocol(table_rows)]
        tables.append(
            Table(
                task=task,
                dataset=dataset,
                title=f"{spec.title} on {reported.datasets.get(dataset, dataset)}",
                spec=spec,
                columns=_shown_columns(spec, table_rows),
                groups=groups,
                notes=notes.get((task, dataset), []),
            )
        )
    return tables


def _by_protocol(rows: list[Row]) -> list[tuple[Protocol, list[Row]]]:
    grouped: dict[Protocol, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row.protocol, []).append(row)
    return sorted(grouped.items(), key=lambda item: item[0].sort_key())


def _group(spec: ResultSpec, protocol: Protocol, rows: list[Row]) -> Group:
    """Sorted rows, difference rows after each reproduced row that has a reported twin, the
    reference row (the first reproduced row, by run id, of the system marked ``reference``)
    and every interval and p-value."""
    rows = sorted(rows, key=Row.sort_key)
    references = [r for r in rows if r.kind == REPRODUCED and r.reference]
    reference = references[0] if references else None
    for row in rows:
        # with several seeds each row is paired with the reference run of its own seed
        same_seed = [r for r in references if r.seed is not None and r.seed == row.seed]
        _add_statistics(spec, row, same_seed[0] if same_seed else reference)
    rows = sorted(rows + _seed_rows(rows), key=Row.sort_key)
    with_differences = []
    for row in rows:
        with_differences.append(row)
        if row.kind == REPRODUCED:
            twins = [
                r
                for r in rows
                if r.kind == REPORTED and (r.system, r.variant) == (row.system, row.variant)
            ]
            with_differences += [difference_row(row, twin) for twin in twins]
    return Group(protocol=protocol, rows=with_differences, reference=reference)


def _seed_rows(rows: list[Row]) -> list[Row]:
    """A mean ± std row per system and variant whose reproduced rows have several seeds."""
    by_system: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.kind == REPRODUCED and row.seed is not None:
            by_system.setdefault((row.system, row.variant), []).append(row)
    return [
        seeds_row(runs)
        for runs in by_system.values()
        if len({row.seed for row in runs}) == len(runs) > 1
    ]


def _add_statistics(spec: ResultSpec, row: Row, reference: Row | None) -> None:
    """Intervals of the row's per-query columns; p-values against ``reference`` where both
    rows were scored on the same queries."""
    for column in spec.columns:
        values = row.per_query.get(column.key)
        if values is None or not column.ci:
            continue
        row.ci[column.key] = percentile_ci(values.values, values.clusters, values.statistic)
        other = reference.per_query.get(column.key) if reference is not None else None
        same_queries = other is not None and other.keys == values.keys
        if column.p_value and reference is not row and same_queries:
            row.p[column.key] = paired_p_value(values.values, other.values, values.clusters)


def _shown_columns(spec: ResultSpec, rows: list[Row]) -> tuple[Column, ...]:
    return tuple(c for c in spec.columns if c.required or any(c.key in row.values for row in rows))
