"""End to end through run.py on a small synthvtt: train, checkpoints, results files, eval-only with
1 and 2 processes (real Accelerate multi-process launch on CPU, gloo), resume, bad videos."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.metrics import summarize_ranks
from tests.cli import read_results, read_samples, run_cli, tiny_overrides

SMALL = tiny_overrides(
    {
        "synthvtt.train_videos": 48,
        "synthvtt.test_videos": 40,
        "synthvtt.val_videos": 8,
        "train.batch_size": 16,
        "eval.block_size": 16,
        "data.max_frames": None,
    }
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt")


@pytest.fixture(scope="module")
def trained_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "train"
    result = run_cli(
        "--task", "retrieval", "--data-root", str(data_root), "--output-dir", str(out), *SMALL
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_training_run_writes_results_samples_and_checkpoint(trained_run):
    record = read_results(trained_run)
    assert record["task"] == "retrieval" and record["dataset"] == "synthvtt"
    assert record["method"] == "emcl"
    for key in ("config", "seed", "git_commit", "versions", "timings", "protocol"):
        assert key in record
    assert record["num_samples"] == {"texts": 40, "videos": 40}
    t2v = record["metrics"]["t2v"]
    assert set(t2v) >= {"R@1", "R@5", "R@10", "R@50", "MdR", "MnR"}
    assert 0 <= t2v["R@1"] <= t2v["R@5"] <= t2v["R@10"] <= 100
    # the labelled post-processed sets, with their settings; QB-Norm is text-to-video only
    assert set(record["metrics_postprocessed"]) == {"inverted_softmax", "dsl", "qb_norm"}
    assert set(record["metrics_postprocessed"]["qb_norm"]) == {"t2v"}
    settings = record["protocol"]["postprocess"]
    # 48 training videos x 5 captions: fewer than the 1000 asked for, so all of them
    assert settings["qb_norm"]["bank_size"] == 240 and settings["qb_norm"]["temperature"] == 0.05
    assert settings["inverted_softmax"] == {"temperature": 0.01}
    assert settings["dsl"] == {"temperature": 1.0, "scores": "logits"}
    assert set(record["integrity"]) == {
        "query_independence", "gallery_order", "eval_batch", "split_hygiene"
    }  # fmt: skip
    assert record["training"]["steps"] == record["training"]["steps_per_epoch"] >= 1
    samples = [json.loads(line) for line in (trained_run / "samples.jsonl").open()]
    t2v_rows = [s for s in samples if s["direction"] == "t2v"]
    assert len(t2v_rows) == 40 and len(samples) == 80
    recomputed = 100 * sum(s["rank"] <= 1 for s in t2v_rows) / len(t2v_rows)
    assert recomputed == pytest.approx(t2v["R@1"])
    # per-query ranks give back each post-processed set's metrics
    for name, metrics in record["metrics_postprocessed"].items():
        for direction, expected in metrics.items():
            ranks = [s[f"rank_{name}"] for s in samples if s["direction"] == direction]
            assert summarize_ranks(np.array(ranks)) == pytest.approx(expected)
    steps = record["training"]["steps"]
    assert (trained_run / "checkpoints" / f"step_{steps}" / "model.safetensors").is_file()
    assert (trained_run / "config.yaml").is_file()


def test_eval_only_identical_for_one_and_two_processes(trained_run, tmp_path):
    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"eval{processes}"
        result = run_cli(
            "--task", "retrieval", "--eval-only", "--checkpoint", str(trained_run),
            "--output-dir", str(out), processes=processes,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[processes] = read_results(out)
    assert outputs[2]["num_processes"] == 2
    assert outputs[1]["metrics"] == outputs[2]["metrics"]
    # the post-processed sets and the integrity checks too
    for field in ("metrics_postprocessed", "integrity"):
        assert outputs[1][field] == outputs[2][field]
    assert outputs[1]["num_samples"] == outputs[2]["num_samples"]
    assert outputs[1]["metrics"] == read_results(trained_run)["metrics"]


def test_two_process_training_takes_the_same_number_of_global_steps(
    trained_run, data_root, tmp_path
):
    out = tmp_path / "train2"
    result = run_cli(
        "--task", "retrieval", "--data-root", str(data_root), "--output-dir", str(out), *SMALL,
        processes=2,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record, single = read_results(out), read_results(trained_run)
    assert record["num_processes"] == 2
    # train.batch_size is global: 2 processes take half a batch each, so the step count (and the
    # warmup-cosine schedule over it) is the single-process one.
    assert record["training"]["steps"] == single["training"]["steps"]
    assert record["training"]["steps_per_epoch"] == single["training"]["steps_per_epoch"]
    assert record["num_samples"] == single["num_samples"]


def test_resume_continues_from_the_last_epoch(trained_run, data_root, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(trained_run, out)
    result = run_cli(
        "--task", "retrieval", "--data-root", str(data_root), "--output-dir", str(out),
        "--resume", *SMALL, "-o", "train.epochs=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_results(out)
    first = read_results(trained_run)["training"]["steps"]
    assert record["training"]["resumed"] is True
    assert record["training"]["steps"] == 2 * first
    # train.epochs may change on resume: applied (the schedule spans the new total) and recorded
    assert record["training"]["applied_on_resume"] == {"train.epochs": [1, 2]}
    assert record["config"]["train"]["epochs"] == 2
    assert (out / "checkpoints" / f"step_{2 * first}" / "model.safetensors").is_file()


def test_bad_videos_error_in_one_line_or_are_skipped(trained_run, data_root, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(next(data_root.glob("synthvtt*")) / "videos", videos)
    test_ids = [s["video_id"] for s in read_samples(trained_run) if s["direction"] == "v2t"]
    truncated, missing = videos / f"{test_ids[0]}.mp4", videos / f"{test_ids[1]}.mp4"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    missing.unlink()
    common = [
        "--task", "retrieval", "--eval-only", "--checkpoint", str(trained_run),
        "-o", f"data.video_root={videos}",
    ]  # fmt: skip
    failed = run_cli(*common, "--output-dir", str(tmp_path / "failed"))
    assert failed.returncode == 2
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr
    assert str(videos) in lines[0] and "on_bad_video=skip" in lines[0]
    assert not (tmp_path / "failed" / "results.json").exists()
    skipped = run_cli(
        *common, "--output-dir", str(tmp_path / "skipped"), "-o", "data.on_bad_video=skip"
    )
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    record = read_results(tmp_path / "skipped")
    assert sorted(Path(s["path"]).name for s in record["skipped_videos"]) == sorted(
        [truncated.name, missing.name]
    )
    assert record["num_samples"] == {"texts": 38, "videos": 38}


def test_eval_through_the_frame_cache_matches_decoding(trained_run, data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    prepared = run_cli(
        "--prepare", "--task", "retrieval", "--data-root", str(root), "--no-compress", *SMALL
    )
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    cache = json.loads(prepared.stdout.strip().splitlines()[-1])["cache"]
    assert Path(cache).is_dir() and "frames8_size64_rateall" in cache
    out = tmp_path / "cached"
    result = run_cli(
        "--task", "retrieval", "--eval-only", "--checkpoint", str(trained_run),
        "--data-root", str(root), "--output-dir", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_results(out)
    assert record["protocol"]["frame_cache"] == cache
    assert record["metrics"] == read_results(trained_run)["metrics"]
    assert read_samples(out) == read_samples(trained_run)
