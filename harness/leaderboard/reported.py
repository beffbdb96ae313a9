"""``leaderboards/reported.yaml``: the numbers the papers and READMEs report, with their sources,
and how reproduced runs are named (system and variant) so that they line up with them.

Top-level keys:
- ``datasets``: dataset name -> display name.
- ``sources``: source tag -> what it means.
- ``systems``: task -> method name -> ``{name, variant, postprocessed, reference}``: ``name`` is
  the system a run of that method is shown as; ``variant`` a list of ``{key, values}`` parts,
  each a dotted config key whose value (mapped through ``values``; a value mapped to null drops
  the part) joins the variant with " + "; ``postprocessed`` maps a ``metrics_postprocessed``
  entry of the run to the system its extra row is shown as; ``reference: true`` marks the
  system p-values are computed against.
- ``notes``: ``{task, dataset, source, text}`` lines shown under a table.
- ``protocols``: not read; a place for the YAML anchors the entries share.
- ``entries``: ``{task, dataset, protocol, system, variant, metrics, source, source_text}``
  plus optional ``verify`` (true, or a list of metric paths such as ``t2v.MdR`` or ``v2t``: the
  values remembered rather than checked against their source) and ``mean_rank_label: true``
  (the source labels the values of the task's mean-rank columns "Mean Rank" although they look
  like median ranks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError
from harness.leaderboard.protocol import Protocol, protocol_from_yaml
from harness.leaderboard.specs import is_registered, registered_tasks, spec_of
from harness.registry import UnknownNameError
from harness.result_spec import ResultSpec, is_number, metric_value

# "protocols" only holds YAML anchors that entries refer to.
_TOP_LEVEL_KEYS = {"datasets", "sources", "systems", "notes", "protocols", "entries"}
_ENTRY_KEYS = {
    "task",
    "dataset",
    "protocol",
    "system",
    "variant",
    "metrics",
    "source",
    "source_text",
    "verify",
    "mean_rank_label",
}


class ReportedError(UserError, ValueError):
    """A reported.yaml that cannot be used; the message is one line naming the file and entry."""


@dataclass(frozen=True)
class VariantPart:
    """One part of a reproduced run's variant: the config value at dotted ``key``, renamed by
    ``values`` (a value renamed to None drops the part)."""

    key: str
    values: Mapping[Any, str | None]


@dataclass(frozen=True)
class SystemSpec:
    """How runs of one method of one task are shown."""

    name: str
    variant: tuple[VariantPart, ...] = ()
    postprocessed: Mapping[str, str] | None = None
    reference: bool = False


@dataclass(frozen=True)
class ReportedEntry:
    """One reported row; ``metrics`` maps column keys to values, ``verify`` and ``mean_rank``
    name the column keys whose values carry those markers."""

    task: str
    dataset: str
    protocol: Protocol
    system: str
    variant: str
    metrics: dict[str, float]
    source: str
    source_text: str
    verify: frozenset[str]
    mean_rank: frozenset[str]


@dataclass(frozen=True)
class Note:
    """A line shown under the table of ``task`` on ``dataset``."""

    task: str
    dataset: str
    source: str
    text: str


@dataclass(frozen=True)
class Reported:
    """The parsed reported.yaml."""

    datasets: dict[str, str]
    sources: dict[str, str]
    systems: dict[str, dict[str, SystemSpec]]
    notes: tuple[Note, ...]
    entries: tuple[ReportedEntry, ...]


def load_reported(path: Path) -> Reported:
    """Parse and check ``path``; raises :class:`ReportedError` (one line naming the file and
    entry)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        message = " ".join(str(err).split())
        raise ReportedError(f"{path}: cannot read reported numbers ({message})") from err
    if not isinstance(data, Mapping):
        raise ReportedError(f"{path}: expected a mapping with datasets, sources, systems, entries")
    unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ReportedError(f"{path}: unknown top-level key {unknown[0]!r}")
    sources = {str(k): str(v) for k, v in _mapping(data, "sources", path).items()}
    systems = {
        task: {
            method: _system(spec, f"{path}: systems.{task}.{method}") for method, spec in m.items()
        }
        for task, m in _mapping(data, "systems", path).items()
    }
    notes = tuple(
        _note(n, f"{path}: notes[{i}]", sources) for i, n in enumerate(data.get("notes") or [])
    )
    entries = tuple(
        _entry(e, f"{path}: entries[{i}]", sources) for i, e in enumerate(data.get("entries") or [])
    )
    return Reported(
        datasets={str(k): str(v) for k, v in _mapping(data, "datasets", path).items()},
        sources=sources,
        systems=systems,
        notes=notes,
        entries=entries,
    )


def _mapping(data: Mapping, key: str, path: Path) -> Mapping:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise ReportedError(f"{path}: top-level key {key!r} must be a mapping")
    return value


def _system(spec: Any, where: str) -> SystemSpec:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ReportedError(f"{where}: must be a mapping with a 'name' string")
    parts = []
    for part in spec.get("variant") or []:
        if not isinstance(part, Mapping) or not isinstance(part.get("key"), str):
            raise ReportedError(f"{where}: every variant part needs a 'key' (dotted config key)")
        parts.append(VariantPart(part["key"], dict(part.get("values") or {})))
    return SystemSpec(
        name=spec["name"],
        variant=tuple(parts),
        postprocessed=dict(spec.get("postprocessed") or {}),
        reference=bool(spec.get("reference", False)),
    )


def _note(note: Any, where: str, sources: Mapping[str, str]) -> Note:
    if not isinstance(note, Mapping) or not all(
        isinstance(note.get(k), str) for k in ("task", "dataset", "source", "text")
    ):
        raise ReportedError(f"{where}: needs task, dataset, source and text strings")
    _check_source(note["source"], where, sources)
    return Note(note["task"], note["dataset"], note["source"], note["text"])


def _entry(entry: Any, where: str, sources: Mapping[str, str]) -> ReportedEntry:
    if not isinstance(entry, Mapping):
        raise ReportedError(f"{where}: must be a mapping")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ReportedError(f"{where}: unknown key {unknown[0]!r}")
    for key in ("task", "dataset", "system", "source", "source_text"):
        if not isinstance(entry.get(key), str):
            raise ReportedError(f"{where}: {key!r} must be a string")
    task = entry["task"]
    if not is_registered(task):
        raise ReportedError(f"{where}: unknown task {task!r} (known: {registered_tasks()})")
    _check_source(entry["source"], where, sources)
    try:
        spec = spec_of(task)
    except UnknownNameError as err:
        raise ReportedError(f"{where}: {err}") from err
    metrics = _metrics(entry.get("metrics"), spec, task, where)
    mean_rank = (
        frozenset(c.key for c in spec.columns if c.mean_rank and c.key in metrics)
        if entry.get("mean_rank_label")
        else frozenset()
    )
    return ReportedEntry(
        task=task,
        dataset=entry["dataset"],
        protocol=protocol_from_yaml(entry.get("protocol"), where),
        system=entry["system"],
        variant=str(entry.get("variant") or ""),
        metrics=metrics,
        source=entry["source"],
        source_text=entry["source_text"],
        verify=_verified(entry.get("verify", False), metrics, where),
        mean_rank=mean_rank,
    )


def _check_source(tag: str, where: str, sources: Mapping[str, str]) -> None:
    if tag not in sources:
        raise ReportedError(f"{where}: source {tag!r} is not one of the tags under 'sources'")


def _metrics(metrics: Any, spec: ResultSpec, task: str, where: str) -> dict[str, float]:
    """Column key -> value of an entry's ``metrics`` (nested like a run's); every number must
    land in a column of ``spec``, the result spec of ``task``."""
    if not isinstance(metrics, Mapping) or not metrics:
        raise ReportedError(f"{where}: 'metrics' must be a non-empty mapping")
    columns = spec.columns
    values = {c.key: metric_value(metrics, c.path) for c in columns}
    values = {k: v for k, v in values.items() if v is not None}
    leaves = _leaves(metrics)
    placed = {".".join(c.path) for c in columns if c.key in values}
    stray = sorted(set(leaves) - placed)
    if stray:
        raise ReportedError(f"{where}: metric {stray[0]!r} is not a column of {task} tables")
    for key, value in values.items():
        if not is_number(value):
            raise ReportedError(f"{where}: metric {key!r} must be a number")
    return {k: float(v) for k, v in values.items()}


def _leaves(metrics: Mapping, prefix: str = "") -> list[str]:
    leaves = []
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        leaves += _leaves(value, name) if isinstance(value, Mapping) else [name]
    return leaves


def _verified(verify: Any, metrics: Mapping[str, float], where: str) -> frozenset[str]:
    """Column keys marked "[recall — verify]": all of them for ``true``, else those under each
    listed metric path (``t2v`` covers every T2V column, ``t2v.MdR`` one)."""
    if verify is True:
        return frozenset(metrics)
    if verify is False:
        return frozenset()
    if not isinstance(verify, list) or not all(isinstance(v, str) for v in verify):
        raise ReportedError(f"{where}: 'verify' must be true, false or a list of metric paths")
    marked = set()
    for path in verify:
        prefix = path.replace(".", " ")
        matched = {k for k in metrics if k == prefix or k.startswith(prefix + " ")}
        if not matched:
            raise ReportedError(f"{where}: verify path {path!r} names no metric of this entry")
        marked |= matched
    return frozenset(marked)
