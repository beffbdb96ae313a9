"""The training benchmark at minimal sizes, in process: it runs the engine and the bare loop,
the two real training runs and both loaders, and writes every figure the README quotes."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.train_step import main
from tests.cli import run_cli


def test_bench_train_writes_every_figure(tmp_path: Path, capsys) -> None:
    out = tmp_path / "train.json"
    tiny = ["train.batch_size=40", "data.max_frames=2", "data.image_size=32", "eval.batch_size=8"]
    status = main(
        ["--steps", "1", "--repeats", "2", "--train-videos", "16", "--videos", "1"]
        + ["--video-seconds", "1", "--gemm-size", "64", "--loader-seconds", "0.01"]
        + ["--workdir", str(tmp_path / "work"), "--out", str(out)]
        + [arg for override in tiny for arg in ("-o", override)]
    )
    assert status == 0
    result = json.loads(out.read_text())
    gemm = result["gemm"]
    assert gemm["fp32_tflops"] > 0 and gemm["size"] == 64
    assert gemm["bf16_tflops"] is None or gemm["bf16_tflops"] > 0
    step = result["step"]
    assert len(step["ratios"]) == 2 and step["ratio"] > 0
    assert step["batch_size"] == 40 and step["batches_in_memory"] == 2  # 80 captions, 2 full
    assert step["step_tflop"] > 0 and 0 < step["achieved_over_peak"]
    wait = result["data_wait"]
    assert wait["runs"]["epochs_1"]["steps"] == 2 and wait["runs"]["epochs_2"]["steps"] == 4
    assert 0 <= wait["fraction"] <= 1
    assert wait["num_workers"] == "auto" and wait["num_workers_resolved"] >= 1
    for shape, frames in (("real", 12), ("synthvtt", 2)):
        loader = result["loader"][shape]
        assert loader["sampling"]["max_frames"] == frames
        rates = loader["clips_per_s_per_worker"]
        assert set(rates) == {"decode", "frame_cache"} and min(rates.values()) > 0
        assert all(n >= 1 for n in loader["workers_for_target"].values())
    assert result["loader"]["real"]["sampling"]["image_size"] == 224
    printed = capsys.readouterr().out
    assert "GEMM peak" in printed and "workers for 366 clips/s" in printed


def test_bad_override_is_one_clear_error() -> None:
    done = run_cli("--bench", "train", "-o", "train.nope=1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: unknown config key 'train.nope' in -o train.nope=1: run `python run.py "
        "--show-config` to list the keys"
    ]
