"""Zero-shot evaluation (``run.py --eval-only`` without ``--checkpoint``): CLIP4Clip meanP built
from a tiny random OpenAI-layout TorchScript archive scores exactly as plain ``transformers``
``CLIPModel`` features by cosine; the record says ``training: zero-shot`` and the leaderboard
groups it with reported zero-shot rows; tasks without a zero-shot (QA) refuse in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import baselines  # noqa: F401  (registers the methods)
import tasks  # noqa: F401  (registers the tasks and datasets)
from harness.data import CaptionDataset, VideoDataset
from harness.leaderboard.protocol import protocol_from_yaml, protocol_of_run
from harness.registry import TASKS
from harness.video import pixels_from_uint8
from tests.cli import read_results, run_cli, tiny_overrides
from tests.openai_layout import openai_state_dict, save_jit_archive, tiny_clip

IMAGE, PATCH = 64, 32  # synthvtt's frame size
POSITIONS = 24  # a checkpoint's text positions need only hold the run's words (synthvtt: 16)
DATA = tiny_overrides({"train.epochs": None, "train.batch_size": None, "eval.block_size": None})


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """The tiny CLIPModel and its OpenAI-layout TorchScript archive."""
    model = tiny_clip(IMAGE, PATCH, positions=POSITIONS)
    path = tmp_path_factory.mktemp("clip") / "tiny.pt"
    save_jit_archive(openai_state_dict(model), path)
    return path, model


@pytest.fixture(scope="module")
def zero_shot_run(clip_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zero_shot") / "run"
    data_root = tmp_path_factory.mktemp("synthvtt_zero_shot")
    result = run_cli(
        "--task", "retrieval", "--method", "clip4clip", "--eval-only",
        "-o", f"encoder.pretrained={clip_file[0]}",
        "--data-root", str(data_root), "--output-dir", str(out), *DATA,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def plain_clip_scores(model, config: dict) -> np.ndarray:
    """Cosines (texts, videos) of the test split from ``CLIPModel``'s own feature functions:
    the end-of-text feature against the normalised mean of the normalised frame features."""
    task = TASKS.get("retrieval")(config)
    task.setup(train=False)
    pairs, max_words = task.test_pairs, config["data"]["max_words"]
    captions = CaptionDataset(pairs.captions, task.tokenizer, max_words)
    videos = VideoDataset(pairs.video_paths, task.source, pairs.segments)
    with torch.no_grad():
        text = [_projected(model.get_text_features(**_text_inputs(c))) for c in captions]
        video = []
        for item in videos:
            pixels = pixels_from_uint8(item["frames"], item["video_mask"])
            frames = _projected(model.get_image_features(pixel_values=pixels))
            frames = frames / frames.norm(dim=-1, keepdim=True)
            mean = frames[item["video_mask"].bool()].mean(dim=0)
            video.append(mean / mean.norm())
    t = torch.cat(text)
    t = t / t.norm(dim=-1, keepdim=True)
    return (t @ torch.stack(video).t()).numpy()


def _projected(features) -> torch.Tensor:
    """The projected features: transformers 5 returns them as ``pooler_output``, 4 as is."""
    return getattr(features, "pooler_output", features)


def _text_inputs(item: dict) -> dict:
    return {"input_ids": item["ids"][None], "attention_mask": item["mask"][None]}


def rank_metrics(sim: np.ndarray) -> dict[str, float]:
    """R@1/5/10 and median/mean rank of the diagonal matches of ``sim`` (queries x items)."""
    ranks = 1 + (sim > np.diag(sim)[:, None]).sum(axis=1)
    recall = {f"R@{k}": 100.0 * float(np.mean(ranks <= k)) for k in (1, 5, 10)}
    return {**recall, "MdR": float(np.median(ranks)), "MnR": float(ranks.mean())}


def test_zero_shot_meanp_equals_plain_clip_cosines(zero_shot_run, clip_file):
    record = read_results(zero_shot_run)
    sim = plain_clip_scores(clip_file[1], record["config"])
    for direction, matrix in (("t2v", sim), ("v2t", sim.T)):
        expected = rank_metrics(matrix)
        got = {k: record["metrics"][direction][k] for k in expected}
        assert got == pytest.approx(expected), direction


def test_zero_shot_record_joins_the_reported_zero_shot_rows(zero_shot_run, clip_file):
    record = read_results(zero_shot_run)
    assert record["training"] == "zero-shot"
    assert record["protocol"]["encoder"] == str(clip_file[0])
    assert record["config"]["data"]["tokenizer"] == "word"  # synthvtt's; = auto when pretrained
    protocol = protocol_of_run(record)
    assert protocol.training == "zero-shot"
    options = dict(protocol.dataset_options)
    assert "train_videos" not in options and options["test_videos"] == "16"
    reported = protocol_from_yaml(
        {
            "split": "test",
            "dataset_options": {**options, "test_videos": 16},
            "training": "zero-shot",
            "backbone": "tiny.pt",
            "frames": 4,
            "words": record["protocol"]["max_words"],
            "resolution": IMAGE,
        },
        "reported.yaml entry",
    )
    assert protocol == reported


def one_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr.strip()


def test_qa_has_no_zero_shot(clip_file, tmp_path):
    result = run_cli(
        "--task", "qa", "--eval-only", "-o", f"encoder.pretrained={clip_file[0]}",
        "--output-dir", str(tmp_path / "qa"),
    )  # fmt: skip
    assert "QA has no zero-shot evaluation" in one_line(result)
    assert not (tmp_path / "qa").exists()


def test_zero_shot_needs_a_pretrained_encoder(tmp_path):
    result = run_cli("--task", "retrieval", "--eval-only", "--output-dir", str(tmp_path / "r"))
    assert "encoder.pretrained, which is null" in one_line(result)


def test_zero_shot_config_file_round_trip(zero_shot_run):
    # the run folder's config.yaml is the record's config: a later --eval-only can reuse it
    saved = yaml.safe_load((zero_shot_run / "config.yaml").read_text())
    assert saved == read_results(zero_shot_run)["config"]
