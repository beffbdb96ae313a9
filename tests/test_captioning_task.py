"""Captioning: decoding (beam search vs greedy) and end to end through run.py on a small synthvtt
(train, results and samples, baseline, eval-only with 1 and 2 processes)."""

import json
from pathlib import Path

import pytest
import torch

from baselines.captioning_emcl import EMCLCaptioner
from harness.decoding import beam_search, greedy_decode
from harness.encoder import VideoTextEncoder, build_clip
from harness.text import WordTokenizer
from tests.cli import read_results, run_cli, tiny_overrides

SMALL = tiny_overrides(
    {
        "synthvtt.train_videos": 48,
        "synthvtt.test_videos": 24,
        "synthvtt.val_videos": 8,
        "train.batch_size": 16,
        "eval.batch_size": 8,
        "eval.block_size": None,
        "data.max_frames": None,
    }
)
METRICS = {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
TOKENIZER = WordTokenizer.train(["a b c d e f g h i j k l m n o p"])


def tiny_captioner(max_len: int) -> EMCLCaptioner:
    torch.manual_seed(0)
    clip = build_clip(
        None, "tiny", image_size=32, patch_size=16, vocab_size=TOKENIZER.vocab_size, sot_id=2,
        eot_id=3, pad_id=0,
    )  # fmt: skip
    model = EMCLCaptioner(
        VideoTextEncoder(clip),
        TOKENIZER.vocab_size,
        agg_module="seqTransf",
        temporal_layers=1,
        emcl={"k": 4, "stage_num": 3, "momentum": 0.9, "lamd": 1.0, "beta": 1.0},
        decoder_layers=1,
        dropout=0.0,
        max_len=max_len,
    ).eval()
    with torch.no_grad():  # peaked distributions that depend on the video: captions differ
        for weight in (model.embed.weight, *model.decoder.parameters()):
            weight.normal_(0, 0.5)
    return model


def test_beam_search_with_one_beam_is_greedy_decoding():
    model = tiny_captioner(max_len=7)
    pixels, mask = torch.randn(6, 4, 3, 32, 32), torch.ones(6, 4, dtype=torch.long)
    mask[0, 2:] = 0
    with torch.no_grad():
        memory, mask = model.encode_video(pixels, mask)
        greedy = greedy_decode(model, memory, mask, TOKENIZER, 7)
        for penalty in (0.0, 1.0, 2.5):
            assert torch.equal(beam_search(model, memory, mask, TOKENIZER, 7, 1, penalty), greedy)
        beams = beam_search(model, memory, mask, TOKENIZER, 7, 4, 1.0)
    assert greedy.shape == beams.shape == (6, 7)
    assert len({tuple(row) for row in greedy.tolist()}) > 1
    for ids in (greedy, beams):  # SOT and padding never generated; only padding after EOT
        for row in ids.tolist():
            assert TOKENIZER.sot_id not in row
            end = row.index(3) + 1 if 3 in row else len(row)
            assert 0 not in row[:end] and set(row[end:]) <= {0}


class TableModel:
    """Next-token log-probabilities from the last token: after SOT, "a" 0.5 and "b" 0.4; after
    "a" everything evenly; after "b" EOT 0.99."""

    def logits(self, ids, memory, mask):
        table = torch.full((TOKENIZER.vocab_size, TOKENIZER.vocab_size), 1e-6)
        a, b = TOKENIZER.encode("a b")
        table[TOKENIZER.sot_id, [a, b]] = torch.tensor([0.5, 0.4])
        table[a, 3:] = 1.0
        table[b, TOKENIZER.eot_id] = 0.99
        return table.log()[ids]


def test_beam_search_finds_the_likelier_caption_greedy_misses():
    memory, mask = torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.long)
    greedy = greedy_decode(TableModel(), memory, mask, TOKENIZER, 4)
    beam = beam_search(TableModel(), memory, mask, TOKENIZER, 4, 2, 0.0)
    # "a" then EOT (the first of the even tokens): 0.5 / 17 < 0.4 * 0.99 for "b" then EOT
    a, b = TOKENIZER.encode("a b")
    assert greedy[0].tolist() == [a, TOKENIZER.eot_id, 0, 0]
    assert beam[0].tolist() == [b, TOKENIZER.eot_id, 0, 0]
    assert TOKENIZER.decode(beam[0]) == "b"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt")


@pytest.fixture(scope="module")
def trained_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "train"
    result = run_cli(
        "--task", "captioning", "--data-root", str(data_root), "--output-dir", str(out), *SMALL
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def read_samples(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").open()]


def test_training_run_writes_caption_metrics_baseline_and_samples(trained_run):
    record = read_results(trained_run)
    assert record["task"] == "captioning" and record["protocol"]["decode"] == "beam"
    assert set(record["metrics"]) == METRICS
    assert all(0 <= record["metrics"][k] <= 100 for k in METRICS - {"CIDEr"})
    constant = record["baselines"]["constant_caption"]
    assert set(constant) == METRICS | {"caption"} and constant["CIDEr"] > 0
    assert record["num_samples"] == {"videos": 24, "references": 120}
    samples = read_samples(trained_run)
    assert len(samples) == 24 and len({s["video_id"] for s in samples}) == 24
    assert all(isinstance(s["prediction"], str) and len(s["references"]) == 5 for s in samples)
    for key in ("ROUGE-L", "CIDEr"):  # per-video scores average to the corpus score
        mean = sum(s["scores"][key] for s in samples) / len(samples)
        assert mean == pytest.approx(record["metrics"][key], rel=1e-9)
    assert any("constant caption" in line for line in record["notes"])


def test_eval_only_identical_for_one_and_two_processes(trained_run, tmp_path):
    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"eval{processes}"
        result = run_cli(
            "--task", "captioning", "--eval-only", "--checkpoint", str(trained_run),
            "--output-dir", str(out), processes=processes,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[processes] = out
    assert read_results(outputs[2])["num_processes"] == 2
    for key in ("metrics", "baselines", "num_samples"):
        assert read_results(outputs[1])[key] == read_results(outputs[2])[key]
    assert read_samples(outputs[1]) == read_samples(outputs[2]) == read_samples(trained_run)
    assert read_results(outputs[1])["metrics"] == read_results(trained_run)["metrics"]


def test_training_on_two_processes_ends_near_one_process(trained_run, data_root, tmp_path):
    """The captioning loss never reaches CLIP's text tower: on two processes DDP must not wait
    for those parameters (the run failed at its second step). The per-process loss is a mean
    over that process's caption tokens, so the two runs differ only by that weighting."""
    out = tmp_path / "two"
    result = run_cli(
        "--task", "captioning", "--data-root", str(data_root), "--output-dir", str(out), *SMALL,
        processes=2,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = read_results(trained_run)["training"], read_results(out)["training"]
    assert two["steps"] == one["steps"]
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=0.05)
