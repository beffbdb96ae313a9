"""The memory benchmark through ``run.py --bench memory`` at a toy size: the micro-batch step
gives the full-batch loss with a lower resident peak, and the json holds the figures the README
table is made from."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli import run_cli


def test_bench_memory_reports_lower_peaks_with_micro_batches(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    done = run_cli(
        "--bench", "memory", "--bench-out", str(out), "--bench-sizes", "32",
        "--bench-micro", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert (result["encoder"], result["batch"], result["method"]) == ("tiny", 32, "emcl")
    full, micro = result["rows"]
    assert full["micro_batch"] is None and micro["micro_batch"] == 4
    assert full["peak_mib"] > 0 and full["wall_s"] > 0
    assert micro["loss_diff"] < 1e-5  # the same step, in chunks
    assert micro["peak_ratio"] < 0.6 and micro["time_ratio"] > 0
