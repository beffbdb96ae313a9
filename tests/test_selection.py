"""Model selection (eval.select_on): with val, each epoch scores the val split, the test split
is scored once with the best epoch's checkpoint, results.json names that epoch; training is the
same whatever select_on says; select_on=test is labelled on the leaderboards."""

import signal
from pathlib import Path

import pytest

from harness.checkpoints import KILL_HOOK
from tests.cli import read_results, run_cli, tiny_overrides

# eval.postprocess is retrieval's: QA and captioning runs drop it.
SELECTION = {
    "synthvtt.train_videos": 8,
    "synthvtt.val_videos": 8,
    "train.epochs": 2,
    "train.keep_checkpoints": 1,
    "eval.postprocess": "[]",
}
TINY = tiny_overrides(SELECTION)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt_select")


def _train(data_root: Path, out: Path, select_on: str, env: dict | None = None) -> str:
    result = run_cli(
        "--task", "retrieval", "--method", "clip4clip", "--data-root", str(data_root),
        "--output-dir", str(out), *TINY, "-o", f"eval.select_on={select_on}", env=env,
    )  # fmt: skip
    assert result.returncode == (0 if env is None else -signal.SIGKILL), result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def val_run(data_root, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("select") / "val"
    return out, _train(data_root, out, "val")


def test_select_on_val_scores_the_test_split_once_with_the_best_epoch(val_run, data_root, tmp_path):
    folder, stdout = val_run
    assert stdout.count("evaluate: split test") == 1
    assert stdout.count("on split val") == 2  # one selection score per epoch end
    record = read_results(folder)
    selection = record["selection"]
    assert selection["select_on"] == "val" and selection["split"] == "val"
    assert selection["metric"] == "t2v R@1" and selection["test_overlap"] == 0
    assert [h["epoch"] for h in selection["history"]] == [1, 2]
    best = max(selection["history"], key=lambda h: h["value"])  # the first of equals
    assert (selection["epoch"], selection["step"]) == (best["epoch"], best["step"])
    # the best epoch's checkpoint is kept beside the newest one (keep_checkpoints=1)
    checkpoint = folder / selection["checkpoint"]
    assert checkpoint.name == f"step_{best['step']}" and checkpoint.is_dir()
    # the test metrics are those of that checkpoint
    again = tmp_path / "again"
    result = run_cli("--eval-only", "--checkpoint", str(checkpoint), "--output-dir", str(again))
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_results(again)["metrics"] == record["metrics"]
    # selecting draws nothing from the training streams: the same training as select_on=last
    _train(data_root, tmp_path / "last", "last")
    last = read_results(tmp_path / "last")
    assert last["training"]["final_loss"] == record["training"]["final_loss"]
    steps = last["training"]["steps"]
    assert last["selection"] == {"select_on": "last", "split": None, "epoch": 2, "step": steps}


def test_a_killed_run_resumes_its_selection(val_run, data_root, tmp_path):
    # 5 steps an epoch: killed in epoch 2, resumed from the epoch-1 checkpoint and its scores
    out = tmp_path / "killed"
    _train(data_root, out, "val", env={KILL_HOOK: "after_step:7"})
    result = run_cli("--output-dir", str(out), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("on split val") == 1  # epoch 2 only
    record, reference = read_results(out), read_results(val_run[0])
    assert record["selection"] == reference["selection"]
    assert record["metrics"] == reference["metrics"]


def test_select_on_test_is_labelled_on_the_leaderboard(data_root, tmp_path):
    _train(data_root, tmp_path / "runs" / "test", "test")
    assert read_results(tmp_path / "runs" / "test")["selection"]["split"] == "test"
    result = run_cli(
        "--leaderboard", "--runs", str(tmp_path / "runs"), "--leaderboard-dir", str(tmp_path / "lb")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "lb" / "retrieval_synthvtt.md").read_text()
    assert "selected on test" in table


def test_select_on_rule():
    from harness.config_checks import SELECT_ON as SPELLED
    from harness.selection import SELECT_ON

    assert SPELLED == SELECT_ON
    result = run_cli("--task", "retrieval", "-o", "eval.select_on=best", "--show-config")
    assert result.returncode == 2 and "eval.select_on" in result.stderr


@pytest.mark.parametrize(("task", "metric"), [("qa", "accuracy"), ("captioning", "CIDEr")])
def test_selection_by_each_tasks_main_metric(task, metric, data_root, tmp_path):
    extra = ["-o", "captioning.max_len=6"] if task == "captioning" else []
    result = run_cli(
        "--task", task, "--data-root", str(data_root), "--output-dir", str(tmp_path / task),
        *tiny_overrides(SELECTION | {"eval.postprocess": None, "train.epochs": 1}),
        "-o", "eval.select_on=val", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    selection = read_results(tmp_path / task)["selection"]
    assert (selection["metric"], selection["split"], selection["epoch"]) == (metric, "val", 1)
    assert selection["test_overlap"] == 0  # synthvtt's val videos are their own
