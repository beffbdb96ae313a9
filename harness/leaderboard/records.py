"""Finding and validating run records: every ``results.json`` under the runs folders, with its
``samples.jsonl``. A file that is malformed, lacks a field or holds an impossible value (not
finite, outside its column's :class:`~harness.result_spec.Bounds`) is reported in one line
(``skipping <path>: <what is wrong>``) and left out; the others are still read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.leaderboard.once import once_per_checkpoint
from harness.leaderboard.queries import check_samples
from harness.leaderboard.specs import is_registered, registered_tasks, spec_of
from harness.registry import UnknownNameError
from harness.result_spec import ResultSpec, SampleError, is_number, metric_value
from harness.schema import (
    BASELINES,
    CORE_FIELDS,
    METRICS_POSTPROCESSED,
    RESULTS_FILE,
    SAMPLES_FILE,
    RecordError,
    SampleRow,
    check_record,
)


class RunFileError(UserError, ValueError):
    """A run record that cannot be used; the message is one line."""


class RunsFolderError(UserError, FileNotFoundError):
    """A runs folder to read that does not exist; the message is one line."""


@dataclass(frozen=True)
class RunRecord:
    """One run: ``run_id`` is its folder relative to the runs folder it was found in (posix
    separators; prefixed by that folder's name when several runs folders are read, and that
    name alone for a runs folder that is a run itself), ``record``
    the parsed results.json, ``samples`` its samples.jsonl rows (None when there is none),
    ``spec`` the result spec of its task, ``folder`` the folder of its results.json."""

    run_id: str
    record: dict[str, Any]
    samples: list[SampleRow] | None
    spec: ResultSpec
    folder: Path


def find_results(roots: Sequence[Path]) -> list[tuple[Path, str]]:
    """Every results.json under ``roots`` (searched recursively) with its run id, sorted by id."""
    found = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise RunsFolderError(f"runs folder {root} does not exist; pass an existing --runs DIR")
        for path in root.rglob(RESULTS_FILE):
            parts = path.parent.relative_to(root).parts
            # the runs folder's name leads when several are read, or when it is the run itself
            lead = [root.name] if len(roots) > 1 or not parts else []
            found.append((path, "/".join([*lead, *parts])))
    return sorted(found, key=lambda item: (item[1], str(item[0])))


def load_run(path: Path, run_id: str) -> RunRecord:
    """The run record of ``path`` (a results.json); raises :class:`RunFileError`."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFileError(f"not valid JSON ({_one_line(err)})") from err
    try:
        check_record(record, required=CORE_FIELDS)
    except RecordError as err:
        raise RunFileError(str(err)) from err
    spec = _spec(record["task"])
    _check_all_metrics(spec, record)
    _check_protocol(record["protocol"])
    samples = _read_samples(path.parent / SAMPLES_FILE)
    if samples is not None:
        try:
            check_samples(spec, samples, record)
        except SampleError as err:
            raise RunFileError(str(err)) from err
    return RunRecord(run_id=run_id, record=record, samples=samples, spec=spec, folder=path.parent)


def load_runs(roots: Sequence[Path], warn: Callable[[str], None]) -> list[RunRecord]:
    """Every usable run under ``roots``, sorted by run id, each run once
    (:mod:`harness.leaderboard.once`); ``warn`` gets one line per run file that is skipped, and
    per run without samples (no intervals for it)."""
    runs = []
    for path, run_id in find_results(roots):
        try:
            runs.append(load_run(path, run_id))
        except RunFileError as err:
            warn(f"skipping {path}: {err}")
    runs = once_per_checkpoint(runs, warn)
    for run in runs:
        if run.samples is None:
            path = run.folder / RESULTS_FILE
            warn(f"no intervals for {path}: {SAMPLES_FILE} is missing next to it")
    return runs


def _spec(task: str) -> ResultSpec:
    """The result spec of ``task``; an unregistered task, or one without a spec, is one line."""
    if not is_registered(task):
        raise RunFileError(f"unknown task {task!r} (tables exist for {registered_tasks()})")
    try:
        return spec_of(task)
    except UnknownNameError as err:
        raise RunFileError(str(err)) from err


def _check_all_metrics(spec: ResultSpec, record: Mapping[str, Any]) -> None:
    """The run's metrics, and those of each post-processing and baseline it lists: each makes a
    row, so each value must be possible."""
    counts = record.get("num_samples") or {}
    _check_metrics(spec, record["metrics"], counts, "metrics", required=True)
    for field in (METRICS_POSTPROCESSED, BASELINES):
        for name, metrics in (record.get(field) or {}).items():
            if isinstance(metrics, Mapping):
                _check_metrics(spec, metrics, counts, f"{field}.{name}", required=False)


def _check_metrics(
    spec: ResultSpec,
    metrics: Mapping[str, Any],
    counts: Mapping[str, Any],
    where: str,
    required: bool,
) -> None:
    """Every required column of ``spec`` present in ``metrics`` (when ``required``), and every
    present one a number its column's bounds allow; ``where`` names ``metrics`` in messages."""
    for column in spec.columns:
        value = metric_value(metrics, column.path)
        name = f"{where}." + ".".join(column.path)
        if value is None:
            if column.required and required:
                raise RunFileError(f"missing field {name!r}")
            continue
        if not is_number(value):
            raise RunFileError(f"field {name!r} must be a number")
        problem = column.bounds.problem(value, counts)
        if problem:
            raise RunFileError(f"field {name!r} must be {problem}, got {value!r}")


def _check_protocol(protocol: dict[str, Any]) -> None:
    """The protocol fields the tables group by: ``split`` a string, the rest optional."""
    if not isinstance(protocol.get("split"), str):
        raise RunFileError("missing field 'protocol.split' (a string)")
    for key in ("max_frames", "max_words", "image_size"):
        value = protocol.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise RunFileError(f"field 'protocol.{key}' must be an integer")
    if not isinstance(protocol.get("encoder", ""), str | None):
        raise RunFileError("field 'protocol.encoder' must be a string")


def _read_samples(path: Path) -> list[SampleRow] | None:
    if not path.is_file():
        return None
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise RunFileError(
                    f"{SAMPLES_FILE} line {line_no} is not valid JSON ({err.msg})"
                ) from err
    return rows


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
