"""Exact resume: a tiny training run killed with SIGKILL in the middle of epoch 1, in the middle of
epoch 2 and inside a checkpoint save, then resumed with ``--resume`` alone, ends with the final
parameters, metrics and samples of an uninterrupted run; a half-written checkpoint is never
taken; what a resume may change is applied or refused in one line; damaged checkpoint files are
named in one line."""

import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.checkpoints import KILL_HOOK, completed_checkpoints, latest_checkpoint
from tests.cli import read_results, read_samples, run_cli, tiny_overrides

# 24 videos x 5 captions / batch 8 = 15 steps an epoch, 30 in all; a checkpoint every 4 steps
# and at epoch ends, the newest 2 kept. CLIP4Clip's tightTransf draws dropout masks in training,
# so a resume that restored the RNG states wrongly would not end with the same parameters.
TINY = [
    "--task", "retrieval", "--method", "clip4clip",
    "-o", "method.sim_header=tightTransf",
    *tiny_overrides({"train.epochs": 2, "train.checkpoint_every": 4}),
]  # fmt: skip
FINAL = "step_30"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt_resume")


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "uninterrupted"
    result = run_cli("--data-root", str(data_root), "--output-dir", str(out), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def killed_run(data_root: Path, out: Path, kill: str) -> None:
    """A training run into ``out`` that SIGKILLs itself at ``kill`` (the engine's test hook)."""
    result = run_cli(
        "--data-root", str(data_root), "--output-dir", str(out), *TINY, env={KILL_HOOK: kill}
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


def test_only_the_newest_checkpoints_are_kept(uninterrupted):
    assert [p.name for p in completed_checkpoints(uninterrupted)] == ["step_28", FINAL]
    assert sorted(p.name for p in (uninterrupted / "checkpoints").iterdir()) == ["step_28", FINAL]


@pytest.mark.parametrize(
    ("kill", "resumed_at", "left"),
    [
        ("after_step:6", 4, ["step_4"]),  # epoch 1 (steps 1-15)
        ("after_step:22", 20, ["step_16", "step_20"]),  # epoch 2 (steps 16-30)
        ("in_save:8", 4, [".step_8.partial", "step_4"]),  # files of step 8 written, not marked
    ],
)
def test_killed_run_resumes_to_the_uninterrupted_result(
    uninterrupted, data_root, tmp_path, kill, resumed_at, left
):
    out = tmp_path / "run"
    killed_run(data_root, out, kill)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == left
    # a half-written checkpoint is never taken
    assert latest_checkpoint(out).name == f"step_{resumed_at}"
    result = run_cli("--output-dir", str(out), "--resume")  # the run's own config and data
    assert result.returncode == 0, result.stderr[-3000:]
    record, reference = read_results(out), read_results(uninterrupted)
    assert record["training"]["resumed_from"]["step"] == resumed_at
    assert record["training"]["applied_on_resume"] == {}
    final = load_file(out / "checkpoints" / FINAL / "model.safetensors")
    expected = load_file(uninterrupted / "checkpoints" / FINAL / "model.safetensors")
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[name], expected[name]) for name in expected)
    for field in ("metrics", "metrics_postprocessed", "num_samples"):
        assert record[field] == reference[field]
    assert record["training"]["steps"] == reference["training"]["steps"] == 30
    assert record["training"]["final_loss"] == reference["training"]["final_loss"]
    assert read_samples(out) == read_samples(uninterrupted)
    assert [p.name for p in completed_checkpoints(out)] == ["step_28", FINAL]


def test_resume_refuses_a_change_it_cannot_apply(uninterrupted, tmp_path):
    lr = read_results(uninterrupted)["config"]["train"]["lr"]
    result = run_cli("--output-dir", str(uninterrupted), "--resume", "-o", "train.lr=0.5")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "'train.lr'" in line and "0.5" in line and repr(lr) in line
    other = run_cli("--output-dir", str(uninterrupted), "--resume", "--method", "emcl")
    assert other.returncode == 2 and "--method emcl" in other.stderr
    assert other.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "damage", "mode"),
    [
        ("model.safetensors", "truncate", "--eval-only"),
        ("optimizer.bin", "truncate", "--resume"),
        ("trainer_state.json", "control character", "--eval-only"),
    ],
)
def test_damaged_checkpoint_file_is_one_line_naming_it(uninterrupted, tmp_path, name, damage, mode):
    run = tmp_path / "run"
    checkpoint = run / "checkpoints" / FINAL
    checkpoint.mkdir(parents=True)
    for path in (uninterrupted / "checkpoints" / FINAL).iterdir():
        (checkpoint / path.name).write_bytes(path.read_bytes())
    damaged = checkpoint / name
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2] if damage == "truncate" else b'{"epoch": "\x01"}')
    flags = ["--checkpoint", str(run)] if mode == "--eval-only" else ["--output-dir", str(run)]
    result = run_cli(mode, *flags)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(damaged) in result.stderr
