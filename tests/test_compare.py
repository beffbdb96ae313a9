"""``run.py --compare``: every method under one config, its own run folder, one table; an
interrupted comparison resumes; a bad method name fails before anything trains."""

import json
from pathlib import Path

import pytest

from tests.cli import read_results, run_cli

METHODS = ["emcl", "clip4clip", "xclip", "drl", "hmmc"]
TINY = [
    "-o", "synthvtt.train_videos=24",
    "-o", "synthvtt.test_videos=16",
    "-o", "synthvtt.val_videos=4",
    "-o", "train.epochs=1",
    "-o", "train.batch_size=8",
    "-o", "eval.batch_size=16",
    "-o", "eval.block_size=8",
    "-o", "data.max_frames=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt_compare")


@pytest.fixture(scope="module")
def comparison(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "all"
    result = run_cli(
        "--task", "retrieval", "--compare", ",".join(METHODS), "--data-root", str(data_root),
        "--output-dir", str(out), *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_each_method_runs_under_the_same_protocol_into_its_own_folder(comparison):
    records = {method: read_results(comparison / method) for method in METHODS}
    assert {r["method"] for r in records.values()} == set(METHODS)
    protocols = {json.dumps(r["protocol"], sort_keys=True) for r in records.values()}
    assert len(protocols) == 1
    assert len({r["training"]["steps"] for r in records.values()}) == 1
    assert all((comparison / m / "samples.jsonl").is_file() for m in METHODS)


def test_table_has_one_row_per_method_with_its_own_metrics(comparison):
    table = json.loads((comparison / "compare.json").read_text())
    assert [row[0] for row in table["rows"]] == METHODS
    column = table["columns"].index("t2v R@1")
    for row in table["rows"]:
        record = read_results(comparison / row[0])
        assert row[column] == record["metrics"]["t2v"]["R@1"]
    markdown = (comparison / "compare.md").read_text()
    assert all(f"| {method} |" in markdown for method in METHODS)


def test_resume_reads_finished_runs_back_without_training(comparison, data_root):
    (comparison / "compare.json").unlink()
    before = {m: (comparison / m / "results.json").stat().st_mtime_ns for m in METHODS}
    result = run_cli(
        "--task", "retrieval", "--compare", ",".join(METHODS), "--data-root", str(data_root),
        "--output-dir", str(comparison), "--resume", *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (comparison / "compare.json").is_file()
    after = {m: (comparison / m / "results.json").stat().st_mtime_ns for m in METHODS}
    assert after == before


def test_unknown_method_is_one_line_before_any_training(tmp_path, data_root):
    out = tmp_path / "bad"
    result = run_cli(
        "--task", "retrieval", "--compare", "emcl,clip4clp", "--data-root", str(data_root),
        "--output-dir", str(out), *TINY,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "clip4clp" in result.stderr
    assert "clip4clip" in result.stderr
    assert not out.exists()
