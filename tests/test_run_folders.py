"""Run folders: a finished run is never overwritten; a wrong checkpoint path fails first and
creates nothing; a checkpoint carries what evaluating it needs (method, architecture, tokenizer);
a failed run leaves no folder; files are readable by the group; a piped run prints progress; a
multi-process user error is one line."""

import json
import os
from pathlib import Path

import pytest

from harness.text import WordTokenizer, build_tokenizer, load_tokenizer
from tasks.common import CLIP_BPE
from tests.cli import read_results, read_samples, run_cli, tiny_overrides

TINY = ["--task", "retrieval", "--method", "clip4clip", *tiny_overrides()]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt_folders")


@pytest.fixture(scope="module")
def piped_run(data_root, tmp_path_factory):
    """A finished tiny clip4clip run (its data root from EMCL_BENCH_DATA, output piped): the
    folder and the finished process."""
    out = tmp_path_factory.mktemp("folders") / "run"
    result = run_cli("--output-dir", str(out), *TINY, env={"EMCL_BENCH_DATA": str(data_root)})
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="module")
def clip_run(piped_run) -> Path:
    return piped_run[0]


def one_line(result) -> str:
    """The single stderr line of a run stopped by a user error."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr.strip()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_second_run_into_a_finished_folder_is_refused(clip_run, data_root):
    before = snapshot(clip_run)
    result = run_cli("--output-dir", str(clip_run), "--data-root", str(data_root), *TINY)
    line = one_line(result)
    assert str(clip_run) in line and "--resume" in line
    assert snapshot(clip_run) == before


def test_a_missing_checkpoint_fails_first_and_creates_nothing(tmp_path):
    missing, data = tmp_path / "nonexistent", tmp_path / "data"
    result = run_cli("--eval-only", "--checkpoint", str(missing), "--data-root", str(data))
    assert str(missing) in one_line(result)
    assert not missing.exists() and not data.exists()  # no folder made, no data generated


def test_eval_only_takes_method_and_architecture_from_the_checkpoint(clip_run):
    result = run_cli("--eval-only", "--checkpoint", str(clip_run))  # no --task, no --method
    assert result.returncode == 0, result.stderr[-3000:]
    record, trained = read_results(clip_run / "eval"), read_results(clip_run)
    assert record["method"] == "clip4clip"
    assert record["metrics"] == trained["metrics"]
    assert record["training"]["steps"] == trained["training"]["steps"]
    before = snapshot(clip_run / "eval")
    again = run_cli("--eval-only", "--checkpoint", str(clip_run))
    assert again.returncode == 0, again.stderr[-3000:]
    assert snapshot(clip_run / "eval") == before  # a finished evaluation is kept
    assert read_results(clip_run / "eval-2")["metrics"] == trained["metrics"]


def test_eval_only_uses_the_tokenizer_saved_with_the_checkpoint(clip_run, data_root, tmp_path):
    root = tmp_path / "data"
    folder = next(data_root.glob("synthvtt*"))
    edited = root / folder.name
    edited.mkdir(parents=True)
    for path in folder.iterdir():  # the video folders are linked, the files copied
        if path.is_dir():
            (edited / path.name).symlink_to(path)
        else:
            (edited / path.name).write_bytes(path.read_bytes())
    train = set((edited / "MSRVTT_train.9k.csv").read_text().split()[1:])
    annotations = json.loads((edited / "MSRVTT_data.json").read_text())
    for sentence in annotations["sentences"]:
        if sentence["video_id"] in train:
            sentence["caption"] = "zebra " + sentence["caption"]
    (edited / "MSRVTT_data.json").write_text(json.dumps(annotations))
    # a tokenizer built from the edited captions would number the words differently
    saved = load_tokenizer(next((clip_run / "checkpoints").glob("step_*")) / "tokenizer.json")
    captions = [s["caption"] for s in annotations["sentences"] if s["video_id"] in train]
    assert WordTokenizer.train(captions).vocab_size != saved.vocab_size
    out = tmp_path / "eval"
    result = run_cli(
        "--eval-only", "--checkpoint", str(clip_run), "--data-root", str(root),
        "--output-dir", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_results(out)["metrics"] == read_results(clip_run)["metrics"]
    assert read_samples(out) == read_samples(clip_run)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["-o", "method.sim_header=seqTransf"], ["'method.sim_header'", "seqTransf", "meanP"]),
        (["-o", "data.max_words=8"], ["'data.max_words'", "8", "16"]),
        (["--method", "emcl"], ["--method emcl", "clip4clip"]),
    ],
)
def test_a_changed_model_key_on_eval_only_is_one_line(clip_run, flags, named):
    line = one_line(run_cli("--eval-only", "--checkpoint", str(clip_run), *flags))
    assert all(word in line for word in named), line


def test_a_failed_new_run_leaves_no_folder(data_root, tmp_path):
    out, videos = tmp_path / "run", tmp_path / "no_videos"
    videos.mkdir()
    result = run_cli(
        "--output-dir", str(out), "--data-root", str(data_root), *TINY,
        "-o", f"data.video_root={videos}",
    )  # fmt: skip
    assert str(videos) in one_line(result)
    assert not out.exists()


def test_run_files_follow_the_umask(clip_run):
    umask = os.umask(0o022)
    os.umask(umask)
    files = [p for p in clip_run.rglob("*") if p.is_file()]
    assert {p.stat().st_mode & 0o777 for p in files} == {0o666 & ~umask}
    if not umask & 0o040:
        assert all(p.stat().st_mode & 0o040 for p in files)  # readable by the group


def test_a_piped_run_prints_progress_and_phases(piped_run):
    lines = piped_run[1].stdout.splitlines()
    steps = read_results(piped_run[0])["training"]["steps"]
    progress = [line for line in lines if line.startswith("train step ")]
    assert progress[0].startswith("train step 1/") and progress[-1].startswith(
        f"train step {steps}/{steps} "
    )
    assert all(word in progress[0] for word in ("loss", "lr", "steps/s", "ETA"))
    for phase in ("data: setting up", "train: ", "evaluate: "):
        assert any(phase in line for line in lines), phase


def test_the_record_says_where_its_data_was(clip_run, data_root):
    assert read_results(clip_run)["config"]["data"]["root"] == str(data_root.resolve())


def test_a_multi_process_user_error_is_one_line(tmp_path):
    missing = tmp_path / "nonexistent"
    result = run_cli("--eval-only", "--checkpoint", str(missing), processes=2)
    assert result.returncode != 0  # the launcher's own status
    ours = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(ours) == 1 and str(missing) in ours[0]
    assert "exitcode  : 2" in result.stderr  # each process exited 2


@pytest.mark.parametrize("spec", ["word", "clip"])
def test_a_saved_tokenizer_reads_back_with_the_same_ids(tmp_path, spec):
    texts = ["a red circle moves left, then a big blue square grows", "Zebra crossings!"]
    tokenizer = (
        build_tokenizer("word", corpus=texts) if spec == "word" else build_tokenizer(CLIP_BPE)
    )
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert type(loaded) is type(tokenizer)
    for name in ("vocab_size", "sot_id", "eot_id", "pad_id"):
        assert getattr(loaded, name) == getattr(tokenizer, name)
    assert [loaded.encode(t) for t in texts] == [tokenizer.encode(t) for t in texts]
