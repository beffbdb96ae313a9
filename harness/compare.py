"""Side-by-side records of several methods run under one config (``run.py --compare``).

Each method's run keeps its own folder ``<compare_dir>/<method>/`` (results.json, samples.jsonl,
checkpoints). This module turns the finished records into one table: a row per method, a column
per metric, written as ``compare.json`` and ``compare.md`` next to the runs and shown on the
console.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness import results
from harness.errors import UsageError
from harness.leaderboard.specs import is_registered, spec_of
from harness.result_spec import is_number


def parse_methods(text: str) -> list[str]:
    """``"emcl, clip4clip"`` -> ``["emcl", "clip4clip"]``; a repeated or empty name is an error."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise UsageError(f"--compare {text!r}: give method names separated by commas")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"--compare {text!r}: {', '.join(repeated)} given twice")
    return names


FRAME_PROTOCOL_KEYS = ("sampling", "resize", "slice_framepos")  # of the data section


def check_one_frame_protocol(configs: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise UsageError unless every method's resolved config (``{method: config}``) reads
    frames by the same rule: a comparison differs only in the method, and
    ``data.sampling=reference`` gives each method its own rule."""
    rules = {
        method: tuple(config["data"][key] for key in FRAME_PROTOCOL_KEYS)
        for method, config in configs.items()
    }
    if len(set(rules.values())) > 1:
        listed = ", ".join(f"{method} {rule[0]}" for method, rule in rules.items())
        raise UsageError(
            f"--compare runs every method under one frame rule, but data.sampling gives "
            f"{listed}: set data.sampling to one of decord, cv2_grid, hmmc"
        )


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"t2v": {"R@1": 20.1}}`` -> ``{"t2v R@1": 20.1}`` (numbers only)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix} {key}".strip()
        if isinstance(value, Mapping):
            flat.update(flat_metrics(value, name))
        elif isinstance(value, int | float):
            flat[name] = value
    return flat


def compare_rows(records: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list]]:
    """The columns and one row per method (method, metrics..., train minutes) of finished runs."""
    flats = {method: flat_metrics(record["metrics"]) for method, record in records.items()}
    columns: list[str] = []
    for flat in flats.values():
        columns += [name for name in flat if name not in columns]
    rows = []
    for method, record in records.items():
        train_s = record.get("timings", {}).get("train_s")
        minutes = None if train_s is None else round(train_s / 60.0, 1)
        rows.append([method, *(flats[method].get(c) for c in columns), minutes])
    return ["method", *columns, "train min"], rows


def split_protocol(
    records: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The ``protocol`` fields every record shares, and ``{field: {method: value}}`` of those
    that differ between methods (e.g. ``eval_block``, which each method's yaml sets)."""
    protocols = {method: record.get("protocol") or {} for method, record in records.items()}
    fields = sorted({field for protocol in protocols.values() for field in protocol})
    shared, by_method = {}, {}
    for field in fields:
        values = {method: protocol.get(field) for method, protocol in protocols.items()}
        if len({json.dumps(value, sort_keys=True) for value in values.values()}) == 1:
            shared[field] = next(iter(values.values()))
        else:
            by_method[field] = values
    return shared, by_method


def write_compare(folder: Path, records: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``compare.json`` and ``compare.md`` into ``folder`` (atomically)."""
    columns, rows = compare_rows(records)
    first = next(iter(records.values()))
    shared, by_method = split_protocol(records)
    payload = {
        "task": first["task"],
        "dataset": first["dataset"],
        "protocol": shared,
        "protocol_by_method": by_method,
        "runs": {method: method for method in records},
        "columns": columns,
        "rows": rows,
    }
    results.write_json(folder / "compare.json", payload)
    lines = [
        f"# {first['task']} on {first['dataset']}: one config, one seed, one schedule",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    best = best_cells(first["task"], columns, rows)
    lines += [
        "| " + " | ".join(_cell(v, (r, c) in best) for c, v in enumerate(row)) + " |"
        for r, row in enumerate(rows)
    ]
    lines += [
        "",
        "Bold: the best value of a metric column (highest, or lowest for ranks).",
        "",
        f"protocol: `{json.dumps(shared, sort_keys=True)}`",
        "",
    ]
    for field, values in by_method.items():
        listed = ", ".join(f"{method} `{json.dumps(value)}`" for method, value in values.items())
        lines += [f"per method, {field}: {listed}", ""]
    results.atomic_write_text(folder / "compare.md", "\n".join(lines))


def print_compare(records: Mapping[str, Mapping[str, Any]], console: Console | None = None) -> None:
    """Print the side-by-side table of ``records`` (method -> results record)."""
    columns, rows = compare_rows(records)
    first = next(iter(records.values()))
    table = Table(title=f"{first['task']} | {first['dataset']} | compare")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    (console or Console()).print(table)


def best_cells(task: str, columns: list[str], rows: list[list]) -> set[tuple[int, int]]:
    """(row, column) positions holding the best value of each metric column of ``task``'s
    result spec (ties all count; columns the spec does not declare are left out)."""
    spec_columns = {c.key: c for c in spec_of(task).columns} if is_registered(task) else {}
    best = set()
    for c, name in enumerate(columns):
        column = spec_columns.get(name)
        values = [(row[c], r) for r, row in enumerate(rows) if is_number(row[c])]
        if column is None or len(values) < 2:
            continue
        top = (max if column.higher_is_better else min)(v for v, _ in values)
        best |= {(r, c) for v, r in values if v == top}
    return best


def finished_record(folder: Path) -> dict | None:
    """The results record of a finished run folder, or None when it has no results.json."""
    path = folder / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(value: Any, bold: bool = False) -> str:
    if value is None:
        return ""
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    return f"**{text}**" if bold else text
