"""Run records: ``results.json`` and ``samples.jsonl`` (written atomically), the console table."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.console import report_console
from harness.schema import METRICS_POSTPROCESSED, RESULTS_FILE, SAMPLES_FILE, SampleRow

TRACKED_PACKAGES = ("torch", "transformers", "accelerate", "datasets", "av", "tokenizers", "numpy")


@functools.cache
def _umask() -> int:
    """The process's umask (read once: reading it means setting it, briefly)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def share_as_umask(path: Path) -> None:
    """Give file ``path`` the mode a plain ``open`` gives under the user's umask (usually 0644):
    mkstemp and safetensors create private 0600 files, which colleagues could not read."""
    os.chmod(path, 0o666 & ~_umask())


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename (never
    half-written), readable as the umask allows (:func:`share_as_umask`); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        share_as_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (utf-8) to ``path`` atomically, as :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Atomically write ``payload`` as indented json."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Atomically write one json object per line."""
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def git_commit(repo: Path | None = None) -> str | None:
    """The HEAD commit of the checkout holding this package (None outside a git checkout)."""
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    """Versions of python and of the packages that decide the numbers."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def write_run(output_dir: Path, record: Mapping[str, Any], samples: Iterable[SampleRow]) -> Path:
    """Write ``samples.jsonl`` then ``results.json`` into ``output_dir``; returns results.json."""
    output_dir = Path(output_dir)
    write_jsonl(output_dir / SAMPLES_FILE, samples)
    path = output_dir / RESULTS_FILE
    write_json(path, record)
    return path


def print_metrics_table(record: Mapping[str, Any], console: Console | None = None) -> None:
    """Print a run's metrics as a rich table: one row per metric group (those of its
    post-processed metrics included), one column per metric."""
    console = console or report_console()
    title = f"{record['task']} | {record['dataset']} | {record['method']}"
    groups = _metric_groups(record["metrics"])
    for name, metrics in record.get(METRICS_POSTPROCESSED, {}).items():
        groups += _metric_groups(metrics, name)
    columns: list[str] = []
    for _, values in groups:
        columns += [key for key in values if key not in columns]
    table = Table(title=title)
    table.add_column("")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in groups:
        table.add_row(name, *(_fmt(values.get(column)) for column in columns))
    console.print(table)
    for line in record.get("notes", []):
        console.print(f"[dim]{line}[/dim]")


def _metric_groups(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, dict]]:
    flat = {k: v for k, v in metrics.items() if not isinstance(v, Mapping)}
    groups = [(prefix or "all", flat)] if flat else []
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            groups += _metric_groups(value, f"{prefix} {key}".strip())
    return groups


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
