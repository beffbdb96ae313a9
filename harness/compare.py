"""Side-by-side records of several methods, or seeds, run under one config (``run.py
--compare``, ``--seeds``).

Each run keeps its own folder (results.json, samples.jsonl, checkpoints):
``<compare_dir>/<method>/``, with ``--seeds`` ``<compare_dir>/<method>/seed_<n>/`` (a single
method: ``<dir>/seed_<n>/``). This module turns the finished records into one table: a row per
run, with ``--seeds`` a ``mean ± std`` row per method after its seeds' rows (the sample standard
deviation, ``ddof=1``), a column per metric, written as ``compare.json`` and ``compare.md`` next
to the runs and shown on the console.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from harness import results
from harness.console import report_console
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


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; a repeated, negative or non-integer seed is an error."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: give integer seeds separated by commas") from None
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: give distinct non-negative seeds")
    return seeds


def run_label(method: str, seed: int | None) -> str:
    """The key of one run in the comparison: ``method`` or ``method/seed_<n>``."""
    return method if seed is None else f"{method}/seed_{seed}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) of two or more values."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1))


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
    """The columns and one row per run (label, metrics..., train minutes) of finished runs,
    keyed by :func:`run_label`; after the seeds of a method, its ``<method> (mean ± std, n
    seeds)`` row, whose cells are ``[mean, std]`` pairs."""
    flats = {label: flat_metrics(record["metrics"]) for label, record in records.items()}
    columns: list[str] = []
    for flat in flats.values():
        columns += [name for name in flat if name not in columns]
    rows, seeds_of = [], {}
    for label, record in records.items():
        train_s = record.get("timings", {}).get("train_s")
        minutes = None if train_s is None else round(train_s / 60.0, 1)
        rows.append([label, *(flats[label].get(c) for c in columns), minutes])
        if "/seed_" in label:
            seeds_of.setdefault(label.split("/seed_")[0], []).append(len(rows) - 1)
    out = []
    for method, indices in _with_aggregates(rows, seeds_of):
        out += [rows[i] for i in indices]
        if method is not None and len(indices) > 1:
            cells = [
                list(mean_std([rows[i][c] for i in indices]))
                if all(is_number(rows[i][c]) for i in indices)
                else None
                for c in range(1, len(columns) + 2)
            ]
            out.append([f"{method} (mean ± std, {len(indices)} seeds)", *cells])
    return ["method", *columns, "train min"], out


def _with_aggregates(
    rows: list[list], seeds_of: Mapping[str, list[int]]
) -> list[tuple[str | None, list[int]]]:
    """The row indices in order, grouped: each method's seed rows together (with its name),
    every other row alone (None)."""
    grouped, seen = [], set()
    for i, row in enumerate(rows):
        method = row[0].split("/seed_")[0] if "/seed_" in row[0] else None
        if method is None:
            grouped.append((None, [i]))
        elif method not in seen:
            seen.add(method)
            grouped.append((method, seeds_of[method]))
    return grouped


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
        "runs": {label: label for label in records},
        "columns": columns,
        "rows": rows,
    }
    results.write_json(folder / "compare.json", payload)
    lines = [
        f"# {first['task']} on {first['dataset']}: one config, {_seeds_text(records)}, one "
        "schedule",
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
        "Bold: the best value of a metric column among single runs (highest, or lowest for "
        "ranks). mean ± std: over the seeds of a method (sample standard deviation).",
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
    (console or report_console()).print(table)


def _seeds_text(records: Mapping[str, Mapping[str, Any]]) -> str:
    seeds = sorted({record.get("seed") for record in records.values()} - {None})
    return "one seed" if len(seeds) <= 1 else "seeds " + ", ".join(map(str, seeds))


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
    if isinstance(value, list):  # [mean, std]
        return f"{value[0]:.2f} ± {value[1]:.2f}"
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    return f"**{text}**" if bold else text
