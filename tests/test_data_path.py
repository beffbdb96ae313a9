"""The training data path and step: uint8 frames normalised where the model runs, the loader's
worker settings, the precision default, and what a run reports while it trains (timings,
--report-to tensorboard)."""

import os
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from harness.config import ConfigError
from harness.data import loader_options, model_input
from harness.video import CLIP_MEAN, CLIP_STD
from tests.cli import read_results, read_samples, run_cli, tiny_overrides

TINY = [
    "--task", "retrieval", "--method", "emcl",
    *tiny_overrides({"train.epochs": 2, "data.cache_in_memory": "true"}),
]  # fmt: skip


def test_uint8_frames_become_clip_normalised_pixels_with_zero_padding():
    frames = torch.randint(0, 256, (2, 3, 4, 4, 3), dtype=torch.uint8)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out = model_input({"frames": frames, "video_mask": mask, "ids": torch.ones(2, 5)})
    assert set(out) == {"pixels", "video_mask", "ids"}
    pixels = out["pixels"]
    assert pixels.shape == (2, 3, 3, 4, 4) and pixels.dtype == torch.float32
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    for b in range(2):
        for f in range(3):
            expected = (frames[b, f].permute(2, 0, 1).float() / 255.0 - mean) / std
            if mask[b, f]:
                assert torch.allclose(pixels[b, f], expected, atol=1e-6)
            else:
                assert not pixels[b, f].any()


def test_auto_workers_are_the_cores_per_process_at_most_8(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert loader_options("auto", persistent=True)["num_workers"] == min(8, cores)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores * 4))
    # several processes share the cores; without CUDA (gloo) they decode in their main processes
    expected = 1 if torch.cuda.is_available() else 0
    assert loader_options("auto", persistent=True)["num_workers"] == expected
    options = loader_options(3, persistent=True)
    assert options["persistent_workers"] and options["prefetch_factor"] >= 2
    assert options["pin_memory"] == torch.cuda.is_available()
    assert loader_options(0, persistent=True)["num_workers"] == 0


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("auto", "auto"), ("4", 4), ("0", 0), ("-1", None), ("many", None), ("2.5", None)],
)
def test_num_workers_takes_auto_or_a_count(tmp_path, value, accepted):
    """Anything else is one line naming the key and what it takes."""
    import baselines  # noqa: F401  (registers the methods run.py resolves)
    import tasks  # noqa: F401
    from run import parse_args, resolve_config

    args = parse_args(["--data-root", str(tmp_path), "-o", f"data.num_workers={value}"])
    if accepted is not None:
        assert resolve_config(args)["data"]["num_workers"] == accepted
    else:
        with pytest.raises(ConfigError, match="'data.num_workers' must be auto or a non-neg"):
            resolve_config(args)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """The same tiny 2-epoch run decoded in the main process, and with 2 persistent workers
    logging to TensorBoard."""
    data = tmp_path_factory.mktemp("synthvtt_path")
    base = tmp_path_factory.mktemp("path")
    main, workers = base / "main", base / "workers"
    for out, extra in (
        (main, ["-o", "data.num_workers=0"]),
        (workers, ["-o", "data.num_workers=2", "--report-to", "tensorboard"]),
    ):
        result = run_cli("--output-dir", str(out), "--data-root", str(data), *TINY, *extra)
        assert result.returncode == 0, result.stderr[-3000:]
    return main, workers


def test_loader_workers_change_no_number(runs):
    main, workers = runs
    a, b = read_results(main), read_results(workers)
    assert a["metrics"] == b["metrics"]
    assert a["training"]["final_loss"] == b["training"]["final_loss"]
    assert read_samples(main) == read_samples(workers)


def test_a_run_records_its_data_wait_and_step_time(runs):
    for run in runs:
        timings = read_results(run)["timings"]
        assert 0 <= timings["data_wait_s"] < timings["train_s"]
        steps = read_results(run)["training"]["steps"]
        assert timings["step_s"] * steps == pytest.approx(timings["train_s"], rel=0.2)


def test_report_to_tensorboard_logs_training_and_final_metrics(runs):
    logs = runs[1] / "logs"
    events = EventAccumulator(str(logs))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/step_s", "train/data_wait_fraction"} <= scalars
    assert "eval/t2v/R@1" in scalars
    record = read_results(runs[1])
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps[0] == 1 and steps[-1] == record["training"]["steps"]
    final = events.Scalars("eval/t2v/R@1")[-1].value
    assert final == pytest.approx(record["metrics"]["t2v"]["R@1"])
    assert not (runs[0] / "logs").exists()


def test_an_unknown_tracker_is_one_line(tmp_path):
    result = run_cli("--output-dir", str(tmp_path / "run"), *TINY, "--report-to", "notebook")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--report-to 'notebook'" in lines[0] and "tensorboard" in lines[0]
    assert not (tmp_path / "run").exists()


def test_precision_auto_is_fp32_without_cuda_and_recorded(runs):
    from harness.engine import resolve_precision

    assert resolve_precision("bf16") == "bf16" and resolve_precision("no") == "no"
    expected = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    assert resolve_precision("auto") == expected
    assert read_results(runs[0])["mixed_precision"] == expected
