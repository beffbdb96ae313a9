"""A task the harness has never heard of gets its own leaderboard table from its registered
result spec alone; the shipped specs and the leaderboard load without torch."""

import csv
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tasks  # noqa: F401  (registers the shipped tasks)
from harness.leaderboard import regenerate
from harness.registry import TASKS
from harness.result_spec import (
    Column,
    Count,
    PerQuery,
    QueryData,
    ResultSpec,
    is_number,
    require_field,
)
from tests.conftest import REPO_ROOT

TASK = "counting_from_a_test"
ERRORS = [0, 1, 0, 3, 0, 0, 2, 1, 0, 0]


def _check(row: Mapping[str, Any], line: int, num_samples: Mapping[str, Any]) -> None:
    require_field(row, line, "clip", lambda v: isinstance(v, str), "a string")
    require_field(row, line, "error", lambda v: is_number(v) and v >= 0, "a number >= 0")


def _per_query(samples: Sequence[Mapping[str, Any]], postprocessing: str | None) -> QueryData:
    keys = tuple(r["clip"] for r in samples)
    errors = np.array([r["error"] for r in samples], dtype=np.float64)
    exact = PerQuery(keys, 100.0 * (errors == 0))
    return QueryData({"exact": exact}, {"off by": (errors + 1).astype(np.int64)})


SPEC = ResultSpec(
    title="Object counting",
    columns=(
        Column("exact", "exact count %", ("exact",), ci=True),
        Column("mae", "mean abs. error", ("error", "mae")),
        Column("rmse", "RMSE", ("error", "rmse"), required=False),
    ),
    footnotes=("exact count %: clips whose count is exactly right.",),
    counted=(Count("clips"),),
    check_sample=_check,
    per_query=_per_query,
    rank_plot=True,
)


@pytest.fixture
def counting_task() -> Iterator[str]:
    """:data:`SPEC` registered as a task for the duration of one test."""
    TASKS.register(TASK, object(), help="a task made up by a test", results=SPEC)
    try:
        yield TASK
    finally:
        del TASKS._entries[TASK]


def write_run(folder: Path, task: str, samples: list[dict]) -> None:
    folder.mkdir(parents=True)
    record = {
        "task": task,
        "dataset": "toyclips",
        "method": "counter",
        "metrics": {"exact": 60.0, "error": {"mae": 0.7}},
        "num_samples": {"clips": len(samples)},
        "protocol": {"split": "test", "max_frames": 4},
        "config": {"method": {"name": "counter"}},
    }
    (folder / "results.json").write_text(json.dumps(record))
    (folder / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def test_a_registered_task_gets_its_own_table_with_its_columns(counting_task, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "leaderboards"
    samples = [{"clip": f"clip{i}", "error": e} for i, e in enumerate(ERRORS)]
    write_run(runs / "counting" / "counter", counting_task, samples)
    write_run(runs / "unknown" / "counter", "no_such_task", samples)
    reported = tmp_path / "reported.yaml"
    reported.write_text("datasets: {toyclips: Toy clips}\nsources: {}\nsystems: {}\n")
    warnings: list[str] = []
    regenerate(out, [runs], reported, warn=warnings.append)

    assert warnings == [
        f"skipping {runs / 'unknown' / 'counter' / 'results.json'}: unknown task "
        f"'no_such_task' (tables exist for captioning, {counting_task}, qa, retrieval)"
    ]
    name = f"{counting_task}_toyclips"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", f"{name}.md", f"{name}.csv", f"{name}.png"]
    )
    with (out / f"{name}.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    # the spec's columns, the optional one left out because no row has it
    assert list(row)[7:12] == ["exact", "mae", "exact ci_lo", "exact ci_hi", "markers"]
    assert (row["system"], row["exact"], row["mae"]) == ("counter", "60.000", "0.700")
    hits = 100.0 * (np.array(ERRORS) == 0)
    idx = np.random.default_rng(0).integers(0, len(hits), size=(1000, len(hits)))
    lo, hi = np.percentile(hits[idx].mean(axis=1), [2.5, 97.5])
    assert (float(row["exact ci_lo"]), float(row["exact ci_hi"])) == pytest.approx((lo, hi))
    page = (out / f"{name}.md").read_text()
    assert page.startswith("# Object counting on Toy clips\n")
    assert (
        "| system | variant | row | exact count % | mean abs. error | exact count % 95% CI |"
        in (page)
    )
    assert "- exact count %: clips whose count is exactly right." in page
    assert (
        f"| {counting_task} | Toy clips | [{name}.md]({name}.md) |"
        in (out / "README.md").read_text()
    )


def test_a_sample_row_that_breaks_the_spec_skips_the_run(counting_task, tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "counter", counting_task, [{"clip": "clip0", "error": -1}])
    reported = tmp_path / "reported.yaml"
    reported.write_text("datasets: {}\nsources: {}\nsystems: {}\n")
    warnings: list[str] = []
    regenerate(tmp_path / "out", [runs], reported, warn=warnings.append)
    assert warnings == [
        f"skipping {runs / 'counter' / 'results.json'}: samples.jsonl line 1: field 'error' "
        "must be a number >= 0"
    ]


def test_result_specs_and_the_leaderboard_load_without_torch():
    code = (
        "import sys, tasks\n"
        "from harness.registry import TASKS\n"
        "import harness.leaderboard\n"
        "specs = [TASKS.entry(name).result_spec() for name in TASKS.names()]\n"
        "assert len(specs) == 3, specs\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
