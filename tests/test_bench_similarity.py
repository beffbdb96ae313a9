"""The similarity benchmark through ``run.py --bench similarity`` at toy sizes: every method's
tiled scores (in its own evaluation block) equal its naive scores (except EMCL-Net, whose EM
mixes a block), and the json holds the throughput and memory figures the README table is made
from."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.similarity_case import method_config
from tests.cli import run_cli

METHODS = {"emcl", "clip4clip", "xclip", "drl", "hmmc", "clip2video"}


def test_bench_reports_numbers_and_tiled_equals_naive(tmp_path: Path) -> None:
    out = tmp_path / "similarity.json"
    done = run_cli(
        "--bench",
        "similarity",
        "--bench-out",
        str(out),
        "--bench-sizes",
        "40",
        "--bench-width",
        "32",
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {row["method"] for row in rows} == METHODS
    for row in rows:
        assert row["size"] == 40
        assert row["block"] == method_config(row["method"], 32, 12)["eval"]["block_size"]
        for case in ("tiled", "tile", "naive"):
            assert row[case]["wall_s"] > 0 and row[case]["pairs_per_s"] > 0
            assert row[case]["peak_mib"] >= 0
        assert row["speed_ratio"] > 0
        assert row["matrix_mib"] == 40 * 40 * 4 / 2**20
        if row["same_scores_expected"]:
            assert row["max_abs_diff"] < 1e-5, row["method"]
        else:  # EMCL-Net: 2 x 2 EM blocks against one EM over everything
            assert row["method"] == "emcl" and row["max_abs_diff"] > 1e-3
    assert "throughput" in done.stdout and "peak memory" in done.stdout


def test_bad_size_is_one_clear_error() -> None:
    done = run_cli("--bench", "similarity", "--bench-sizes", "1000,lots")
    assert done.returncode == 2
    assert "expected positive sizes like 1000,5000, got '1000,lots'" in done.stderr
