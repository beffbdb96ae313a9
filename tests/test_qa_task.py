"""Video QA (EMCL-QA) end to end through run.py on a tiny synthvtt: results and samples files,
majority baselines, eval-only with 1 and 2 processes, bf16, resume, skipped videos; and the
model pieces whose conventions matter (masked pooling, EMCL in training only)."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

import baselines  # noqa: F401  (registers the methods run.py resolves)
from baselines.qa_emcl import attention_pool
from harness.registry import UnknownNameError
from harness.samplers import EpochShuffle
from run import parse_args, resolve_config
from tests.cli import read_results, read_samples, run_cli, tiny_overrides

TINY = tiny_overrides({"train.batch_size": 16, "eval.block_size": None})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt_qa")


@pytest.fixture(scope="module")
def qa_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qa") / "train"
    result = run_cli(
        "--task", "qa", "--data-root", str(data_root), "--output-dir", str(out), *TINY
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def qa_folder(data_root: Path) -> Path:
    return next(data_root.glob("synthvtt*")) / "qa"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def test_training_run_writes_accuracy_baselines_and_one_sample_per_question(qa_run, data_root):
    record = read_results(qa_run)
    assert (record["task"], record["dataset"], record["method"]) == ("qa", "synthvtt", "emcl")
    test = read_jsonl(qa_folder(data_root) / "test.jsonl")
    samples = read_samples(qa_run)
    assert [s["question"] for s in samples] == [q["question"] for q in test]
    assert [s["answer"] for s in samples] == [q["answer"] for q in test]
    vocabulary = json.loads((qa_folder(data_root) / "train_ans2label.json").read_text())
    in_vocab = [q["answer"] in vocabulary for q in test]
    assert [s["in_vocab"] for s in samples] == in_vocab
    assert 0 < sum(in_vocab) < len(test)  # the tiny training split misses some test answers
    metrics = record["metrics"]
    assert set(metrics) == {"accuracy", "accuracy_in_vocab", "per_type"}
    correct = sum(s["correct"] for s in samples)
    assert metrics["accuracy"] == pytest.approx(100 * correct / len(test))
    assert metrics["accuracy_in_vocab"] == pytest.approx(100 * correct / sum(in_vocab))
    assert set(metrics["per_type"]) == {q["answer_type"] for q in test}
    motion = [s for s in samples if s["answer_type"] == "motion"]
    assert metrics["per_type"]["motion"]["count"] == len(motion)
    assert metrics["per_type"]["motion"]["accuracy"] == pytest.approx(
        100 * sum(s["correct"] for s in motion) / len(motion)
    )
    assert all(s["prediction"] == s["top"][0] and len(s["top"]) == 5 for s in samples)
    assert record["num_samples"] == {
        "questions": len(test),
        "in_vocab": sum(in_vocab),
        "videos": len({q["video_id"] for q in test}),
    }
    train_answers = Counter(q["answer"] for q in read_jsonl(qa_folder(data_root) / "train.jsonl"))
    majority = record["baselines"]["majority_answer"]
    assert majority["answer"] == train_answers.most_common(1)[0][0]
    assert majority["accuracy"] == pytest.approx(
        100 * sum(q["answer"] == majority["answer"] for q in test) / len(test)
    )
    assert "majority_answer_per_type" in record["baselines"]
    assert any("baseline majority answer" in line for line in record["notes"])
    assert record["protocol"]["answers"] == len(vocabulary)
    assert list((qa_run / "checkpoints").glob("step_*/model.safetensors"))


def test_eval_only_identical_for_one_and_two_processes(qa_run, tmp_path):
    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"eval{processes}"
        result = run_cli(
            "--task", "qa", "--eval-only", "--checkpoint", str(qa_run),
            "--output-dir", str(out), processes=processes,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[processes] = (read_results(out), read_samples(out))
    assert outputs[2][0]["num_processes"] == 2
    assert outputs[1][0]["metrics"] == outputs[2][0]["metrics"] == read_results(qa_run)["metrics"]
    assert outputs[1][1] == outputs[2][1]


def test_resume_continues_training(qa_run, data_root, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(qa_run, out)
    result = run_cli(
        "--task", "qa", "--data-root", str(data_root), "--output-dir", str(out), "--resume",
        *TINY, "-o", "train.epochs=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_results(out)
    assert record["training"]["resumed"] is True
    assert record["training"]["steps"] == 2 * read_results(qa_run)["training"]["steps"]


def test_bf16_eval_skips_unreadable_videos(qa_run, data_root, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(next(data_root.glob("synthvtt*")) / "videos", videos)
    test = read_jsonl(qa_folder(data_root) / "test.jsonl")
    bad = test[0]["video_id"]
    (videos / f"{bad}.mp4").write_bytes(b"not a video")
    out = tmp_path / "skipped"
    result = run_cli(
        "--task", "qa", "--eval-only", "--checkpoint", str(qa_run), "--output-dir", str(out),
        "--mixed-precision", "bf16", "-o", f"data.video_root={videos}",
        "-o", "data.on_bad_video=skip",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_results(out)
    assert [Path(s["path"]).name for s in record["skipped_videos"]] == [f"{bad}.mp4"]
    kept = [q for q in test if q["video_id"] != bad]
    assert record["num_samples"]["questions"] == len(kept)
    assert [s["question"] for s in read_samples(out)] == [q["question"] for q in kept]
    assert 0 <= record["metrics"]["accuracy"] <= 100


def test_a_retrieval_method_is_not_a_qa_method():
    with pytest.raises(UnknownNameError, match="unknown method 'xclip' of task qa") as error:
        resolve_config(parse_args(["--task", "qa", "--method", "xclip"]))
    assert "registered: clip, emcl" in str(error.value) and "\n" not in str(error.value)


def test_attention_pool_softmaxes_over_padding_then_drops_it():
    torch.manual_seed(0)
    features = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    head = torch.nn.Linear(3, 1)
    weights = torch.softmax(head(features).squeeze(-1), dim=-1)  # padding keeps softmax mass
    expected = (weights.unsqueeze(-1) * features * mask.unsqueeze(-1)).sum(dim=1)
    torch.testing.assert_close(attention_pool(features, mask, head), expected)


def test_epoch_shuffle_is_a_seeded_permutation_per_epoch():
    sampler = EpochShuffle(10, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
