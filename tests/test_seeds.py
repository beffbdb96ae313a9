"""--seeds: one run per seed, alone or with --compare; mean ± std rows in compare.md and on the
leaderboard, next to the per-seed rows with their intervals and per-seed p-values."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli import read_results, run_cli, tiny_overrides

TINY = tiny_overrides({"synthvtt.train_videos": 8, "eval.postprocess": "[]"})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt_seeds")


@pytest.fixture(scope="module")
def comparison(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seeds") / "cmp"
    result = run_cli(
        "--task", "retrieval", "--compare", "emcl,clip4clip", "--seeds", "0,1",
        "--data-root", str(data_root), "--output-dir", str(out), *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_compare_with_seeds_gives_mean_and_std_rows(comparison):
    records = {
        (m, s): read_results(comparison / m / f"seed_{s}")
        for m in ("emcl", "clip4clip")
        for s in (0, 1)
    }
    assert {key: r["seed"] for key, r in records.items()} == {key: key[1] for key in records}
    table = json.loads((comparison / "compare.json").read_text())
    labels = [row[0] for row in table["rows"]]
    assert labels == [
        "emcl/seed_0", "emcl/seed_1", "emcl (mean ± std, 2 seeds)",
        "clip4clip/seed_0", "clip4clip/seed_1", "clip4clip (mean ± std, 2 seeds)",
    ]  # fmt: skip
    column = table["columns"].index("t2v MnR")
    for method, row in (("emcl", table["rows"][2]), ("clip4clip", table["rows"][5])):
        values = [records[(method, s)]["metrics"]["t2v"]["MnR"] for s in (0, 1)]
        assert row[column] == pytest.approx([np.mean(values), np.std(values, ddof=1)])
    markdown = (comparison / "compare.md").read_text()
    assert "| emcl (mean ± std, 2 seeds) |" in markdown and " ± " in markdown


def test_leaderboard_aggregates_seeds_next_to_per_seed_intervals(comparison, tmp_path):
    result = run_cli("--leaderboard", "--runs", str(comparison), "--leaderboard-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "retrieval_synthvtt.csv").read_text())))
    clip = [r for r in rows if r["system"] == "CLIP4Clip"]
    assert [(r["kind"], r["seed"]) for r in clip] == [
        ("reproduced", "0"), ("reproduced", "1"), ("seeds", "0 1")
    ]  # fmt: skip
    per_seed = [float(r["t2v MnR"]) for r in clip[:2]]
    assert float(clip[2]["t2v MnR"]) == pytest.approx(np.mean(per_seed), abs=1e-3)
    assert float(clip[2]["t2v MnR std"]) == pytest.approx(np.std(per_seed, ddof=1), abs=1e-3)
    # every seed keeps its interval and its p-value against EMCL-Net's run of the same seed
    assert all(r["t2v R@1 ci_lo"] and r["t2v R@1 p"] for r in clip[:2])
    assert float(clip[2]["t2v R@1 p"]) == max(float(r["t2v R@1 p"]) for r in clip[:2])
    table = (tmp_path / "retrieval_synthvtt.md").read_text()
    assert "mean ± std (2 seeds)" in table and "reproduced, seed 1" in table


def test_seeds_of_a_single_run(data_root, tmp_path):
    out = tmp_path / "single"
    result = run_cli(
        "--task", "retrieval", "--method", "clip4clip", "--seeds", "3,4",
        "--data-root", str(data_root), "--output-dir", str(out), *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert [read_results(out / f"seed_{s}")["seed"] for s in (3, 4)] == [3, 4]
    table = json.loads((out / "compare.json").read_text())
    assert [row[0] for row in table["rows"]][-1] == "clip4clip (mean ± std, 2 seeds)"


@pytest.mark.parametrize("seeds", ["0,x", "1,1", "-1"])
def test_bad_seeds_are_one_line(seeds, tmp_path):
    result = run_cli("--task", "retrieval", "--seeds", seeds, "--output-dir", str(tmp_path / "x"))
    assert result.returncode == 2 and "--seeds" in result.stderr
    assert result.stderr.count("\n") == 1
