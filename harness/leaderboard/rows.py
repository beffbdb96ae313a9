"""Leaderboard rows: one per reported entry, and per run one reproduced row, one per
post-processed metric set it recorded (in the group of that post-processing; named as its
system lists it, e.g. EMCL-Net++ for the inverted softmax, else by the system's own name) and one
per baseline the run recorded (majority answer, constant caption)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from harness.leaderboard.protocol import Protocol, protocol_of_run, rendered
from harness.leaderboard.queries import query_data
from harness.leaderboard.records import RunRecord
from harness.leaderboard.reported import Reported, ReportedEntry, SystemSpec
from harness.result_spec import PerQuery, ResultSpec, is_number, metric_value
from harness.schema import BASELINES, INTEGRITY, METRICS_POSTPROCESSED

REPORTED, REPRODUCED, BASELINE, DIFFERENCE = "reported", "reproduced", "baseline", "difference"
SEEDS = "seeds"  # mean ± std of the reproduced rows of one system and variant over seeds
VERIFY_MARK = "†"
MEAN_RANK_MARK = "‡"
QUERY_DEPENDENT_MARK = "§"


@dataclass
class Row:
    """One table row. ``values``: column key -> number; ``markers``: column key -> footnote
    mark; ``per_query`` and ``ranks``: the run's per-query values (reproduced rows only);
    ``reference``: p-values of its group are computed against it; ``ci``/``p``: filled in by
    :mod:`harness.leaderboard.tables`."""

    kind: str
    system: str
    variant: str
    protocol: Protocol
    values: dict[str, float]
    source: str
    markers: dict[str, str] = field(default_factory=dict)
    per_query: dict[str, PerQuery] = field(default_factory=dict)
    ranks: dict[str, np.ndarray] = field(default_factory=dict)
    reference: bool = False
    tag: str | None = None  # source tag of a reported row
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    p: dict[str, float] = field(default_factory=dict)
    # measured at evaluation time: a query's scores change when other test queries are removed
    query_dependent: bool = False
    seed: int | None = None  # the run's seed (reproduced rows)
    # seeds rows: the standard deviation over seeds per column, the seeds, their p-values
    spread: dict[str, float] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    seed_p: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def sort_key(self) -> tuple:
        """Rows of one system and variant together: reported, reproduced, difference."""
        order = (REPORTED, REPRODUCED, SEEDS, DIFFERENCE, BASELINE).index(self.kind)
        return (self.kind == BASELINE, self.system, self.variant, order, self.source)


def reported_row(entry: ReportedEntry) -> Row:
    """The row of a reported entry, its source as ``[tag] text``."""
    markers = {key: VERIFY_MARK for key in entry.verify}
    for key in entry.mean_rank:
        markers[key] = markers.get(key, "") + MEAN_RANK_MARK
    return Row(
        kind=REPORTED,
        system=entry.system,
        variant=entry.variant,
        protocol=entry.protocol,
        values=dict(entry.metrics),
        source=f"[{entry.source}] {entry.source_text}",
        markers=markers,
        tag=entry.source,
    )


def run_rows(run: RunRecord, reported: Reported) -> list[Row]:
    """The reproduced row of ``run``, its post-processed rows and its baseline rows."""
    record = run.record
    task = record["task"]
    spec = reported.systems.get(task, {}).get(record["method"]) or SystemSpec(record["method"])
    protocol = protocol_of_run(record)
    variant = variant_of(spec, record["config"])
    source = f"run {run.run_id}"
    rows = [_measured_row(run, spec.name, variant, protocol, record["metrics"], None, source)]
    for name, metrics in sorted((record.get(METRICS_POSTPROCESSED) or {}).items()):
        if isinstance(metrics, Mapping):
            system = (spec.postprocessed or {}).get(name, spec.name)
            settings = postprocessing_settings(run, name)
            group = replace(protocol, postprocessing=name, postprocessing_settings=settings)
            rows.append(_measured_row(run, system, variant, group, metrics, name, source))
    for row in rows:  # each post-processing has its own group, with its own reference
        row.reference = spec.reference
    for name, values in sorted((record.get(BASELINES) or {}).items()):
        numbers = _column_values(run.spec, values) if isinstance(values, Mapping) else {}
        if numbers:
            system = f"{name.replace('_', ' ')} (baseline)"
            rows.append(Row(BASELINE, system, "", protocol, numbers, source))
    return rows


def postprocessing_settings(run: RunRecord, name: str) -> tuple[tuple[str, str], ...]:
    """The settings ``run`` computed post-processing ``name`` with: its results.json
    ``protocol.postprocess.<name>``, or what its task's spec says for older records."""
    stated = (run.record["protocol"].get("postprocess") or {}).get(name)
    if not isinstance(stated, Mapping) and run.spec.unrecorded_settings is not None:
        stated = run.spec.unrecorded_settings(run.record, name)
    return rendered(stated) if isinstance(stated, Mapping) else ()


def variant_of(spec: SystemSpec, config: Mapping[str, Any]) -> str:
    """The variant of a run: its config values at the spec's parts, renamed, joined by " + "."""
    parts = []
    for part in spec.variant:
        value = metric_value(config, tuple(part.key.split(".")))
        if value is None:
            continue
        named = part.values.get(value, value) if _hashable(value) else value
        if named is not None:
            parts.append(str(named))
    return " + ".join(parts)


def difference_row(reproduced: Row, reported: Row) -> Row:
    """reproduced - reported, for the columns both rows have, except reported values whose
    label is in doubt (the "Mean Rank" mark); a difference from a remembered value keeps its
    mark."""
    keys = [
        key
        for key in reproduced.values
        if key in reported.values and MEAN_RANK_MARK not in reported.markers.get(key, "")
    ]
    return Row(
        kind=DIFFERENCE,
        system=reproduced.system,
        variant=reproduced.variant,
        protocol=reproduced.protocol,
        values={key: reproduced.values[key] - reported.values[key] for key in keys},
        source=f"{reproduced.source} minus {reported.source}",
        markers={key: reported.markers[key] for key in keys if key in reported.markers},
    )


def _measured_row(
    run: RunRecord,
    system: str,
    variant: str,
    protocol: Protocol,
    metrics: Mapping[str, Any],
    postprocessing: str | None,
    source: str,
) -> Row:
    data = query_data(run.spec, run.samples, postprocessing) if run.samples is not None else None
    return Row(
        kind=REPRODUCED,
        system=system,
        variant=variant,
        protocol=protocol,
        values=_column_values(run.spec, metrics),
        source=source + (f" ({postprocessing.replace('_', ' ')})" if postprocessing else ""),
        per_query=data.columns if data else {},
        ranks=data.ranks if data else {},
        query_dependent=query_dependent(run.record, postprocessing),
        seed=run.record.get("seed") if is_number(run.record.get("seed")) else None,
    )


def seeds_row(rows: list[Row]) -> Row:
    """The mean ± std row of reproduced ``rows`` of one system, variant and protocol with
    distinct seeds: per column present in every row, the mean and the sample standard deviation
    (``ddof=1``); the per-seed p-values of each column every row has one for."""
    first = rows[0]
    keys = [key for key in first.values if all(key in row.values for row in rows)]
    values = {key: np.array([row.values[key] for row in rows]) for key in keys}
    p_keys = [key for key in first.p if all(key in row.p for row in rows)]
    return Row(
        kind=SEEDS,
        system=first.system,
        variant=first.variant,
        protocol=first.protocol,
        values={key: float(v.mean()) for key, v in values.items()},
        source=", ".join(row.source for row in rows),
        spread={key: float(v.std(ddof=1)) for key, v in values.items()},
        seeds=tuple(row.seed for row in rows),
        seed_p={key: tuple(row.p[key] for row in rows) for key in p_keys},
        query_dependent=any(row.query_dependent for row in rows),
    )


def query_dependent(record: Mapping[str, Any], postprocessing: str | None) -> bool:
    """Whether the record's integrity checks found the scores of a metric set (None: the raw
    ones) to depend on the other test queries: its own check, or the raw scores' (a
    post-processing of dependent scores depends too). False when it was not measured."""
    checks = (record.get(INTEGRITY) or {}).get("query_independence") or {}
    names = ["raw", *([postprocessing] if postprocessing else [])]
    found = [checks.get(name) for name in names]
    return any(isinstance(c, Mapping) and c.get("independent") is False for c in found)


def _column_values(spec: ResultSpec, metrics: Mapping[str, Any]) -> dict[str, float]:
    values = {c.key: metric_value(metrics, c.path) for c in spec.columns}
    return {k: float(v) for k, v in values.items() if is_number(v)}


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
