"""synthvtt: a small generation read back through the MSR-VTT loaders, decoded with PyAV,
deterministic, generated once, recovered after an interruption, and calibrated as documented."""

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from harness.errors import DataError
from tasks.datasets import synthvtt
from tasks.datasets.msrvtt import load_msrvtt_pairs, load_msrvtt_qa

SMALL = {"train_videos": 40, "val_videos": 10, "test_videos": 20}
ANNOTATIONS = (
    "MSRVTT_data.json",
    "MSRVTT_train.9k.csv",
    "MSRVTT_val.csv",
    "MSRVTT_JSFUSION_test.csv",
    "qa/train.jsonl",
    "qa/val.jsonl",
    "qa/test.jsonl",
    "qa/train_ans2label.json",
    "twins.json",
    "meta.json",
)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return synthvtt.ensure_synthvtt(tmp_path_factory.mktemp("synth"), seed=0, **SMALL)


def _annotations(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ANNOTATIONS}


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_files_parse_in_msrvtt_formats(small):
    assert small.name == "synthvtt-v1-seed0-40train-10val-20test"
    train = load_msrvtt_pairs(small, "train")
    assert (train.num_videos, train.num_captions) == (40, 200)
    assert all(train.caption_video.count(v) == 5 for v in range(40))
    assert all(p.is_file() and p.suffix == ".mp4" for p in train.video_paths)
    test = load_msrvtt_pairs(small, "test")
    assert test.num_videos == test.num_captions == 20
    assert test.caption_video == list(range(20))
    val = load_msrvtt_pairs(small, "test", test_csv="MSRVTT_val.csv")
    assert val.num_videos == 10
    splits = [set(train.video_ids), set(val.video_ids), set(test.video_ids)]
    assert sum(map(len, splits)) == len(set().union(*splits)) == 70

    lines = (small / "MSRVTT_JSFUSION_test.csv").read_text().splitlines()
    assert lines[0] == "key,vid_key,video_id,sentence"
    assert lines[1].startswith(f"ret0,msr{test.video_ids[0][5:]},{test.video_ids[0]},")
    assert (small / "MSRVTT_train.9k.csv").read_text().splitlines()[0] == "video_id"
    data = json.loads((small / "MSRVTT_data.json").read_text())
    assert len(data["videos"]) == 70 and len(data["sentences"]) == 350
    assert {"video_id", "category", "url", "start time", "end time", "split", "id"} <= set(
        data["videos"][0]
    )
    # Each test caption is one of the video's paraphrases in MSRVTT_data.json.
    paraphrases = {}
    for s in data["sentences"]:
        paraphrases.setdefault(s["video_id"], []).append(s["caption"])
    assert all(c in paraphrases[v] for v, c in zip(test.video_ids, test.captions, strict=True))


def test_questions_in_msrvtt_qa_format(small):
    _, ans2label = load_msrvtt_qa(small / "qa/train.jsonl", small / "qa/train_ans2label.json")
    assert list(ans2label) == sorted(ans2label)
    assert list(ans2label.values()) == list(range(len(ans2label)))
    for split, videos in (("train", 40), ("val", 10), ("test", 20)):
        items, _ = load_msrvtt_qa(small / f"qa/{split}.jsonl", small / "qa/train_ans2label.json")
        assert list(items[0]) == ["answer", "question", "video_id", "answer_type"]
        assert {q["answer_type"] for q in items} == {"color", "shape", "count", "motion", "order"}
        assert len({q["video_id"] for q in items}) == videos
        assert all(q["question"].endswith("?") for q in items)
        assert all(q["answer"] in ans2label for q in items)


def test_videos_decode_to_the_rendered_frames(small):
    scenes = synthvtt.sample_scenes(0, SMALL)
    for scene in scenes[::7]:
        frames = _decode(small / "videos" / f"{scene.video_id}.mp4")
        assert frames.shape == (16, 64, 64, 3)
        # H.264 (yuv420p) is lossy; the content is still the rendered one.
        assert np.abs(frames.astype(int) - synthvtt.render(scene)).mean() < 8


def test_same_seed_same_files_other_seed_other_files(small, tmp_path):
    again = synthvtt.ensure_synthvtt(tmp_path / "a", seed=0, **SMALL)
    assert _annotations(again) == _annotations(small)
    assert (again / "COMPLETE").read_bytes() == (small / "COMPLETE").read_bytes()
    first, second = synthvtt.sample_scenes(0, SMALL), synthvtt.sample_scenes(0, SMALL)
    assert all(
        np.array_equal(synthvtt.render(a), synthvtt.render(b))
        for a, b in zip(first[:10], second[:10], strict=True)
    )
    other = synthvtt.ensure_synthvtt(tmp_path / "b", seed=1, **SMALL)
    assert other.name == "synthvtt-v1-seed1-40train-10val-20test"
    assert (other / "MSRVTT_data.json").read_bytes() != (small / "MSRVTT_data.json").read_bytes()


def test_generation_says_so_in_a_phase_line_and_a_complete_folder_says_nothing(tmp_path, capsys):
    folder = synthvtt.ensure_synthvtt(tmp_path, seed=0, train_videos=2, val_videos=1, test_videos=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1].split(" ")[0] for line in lines] == ["generate:", "generate:"]
    assert str(folder) in lines[0] and "5 videos" in lines[0]
    synthvtt.ensure_synthvtt(tmp_path, seed=0, train_videos=2, val_videos=1, test_videos=2)
    assert capsys.readouterr().out == ""


def test_complete_folder_is_never_regenerated(small, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in small.rglob("*")}

    def fail(*args, **kwargs):
        raise AssertionError("generate() called for a complete folder")

    monkeypatch.setattr(synthvtt, "generate", fail)
    assert synthvtt.ensure_synthvtt(small.parent, seed=0, **SMALL) == small
    assert {p: p.stat().st_mtime_ns for p in small.rglob("*")} == before


def test_interrupted_generation_is_redone(small, tmp_path):
    name = small.name
    leftover = tmp_path / f".{name}.tmp-999999"
    (leftover / "videos").mkdir(parents=True)
    (leftover / "videos" / "video0.mp4").write_bytes(b"half a file")
    partial = tmp_path / name  # a folder without its COMPLETE marker
    (partial / "videos").mkdir(parents=True)
    (partial / "MSRVTT_data.json").write_text("{")

    folder = synthvtt.ensure_synthvtt(tmp_path, seed=0, **SMALL)
    assert folder == partial and (folder / "COMPLETE").is_file()
    assert _annotations(folder) == _annotations(small)
    assert len(list((folder / "videos").glob("*.mp4"))) == 70
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [name]


def _ensure_tiny(root: Path) -> Path:
    return synthvtt.ensure_synthvtt(root, 3, train_videos=6, val_videos=2, test_videos=4)


def test_concurrent_callers_generate_once(tmp_path):
    with multiprocessing.get_context("fork").Pool(2) as pool:
        folders = pool.map(_ensure_tiny, [tmp_path, tmp_path])
    assert folders[0] == folders[1] and (folders[0] / "COMPLETE").is_file()
    assert len(list((folders[0] / "videos").glob("*.mp4"))) == 12
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [folders[0].name]


def test_failed_generation_leaves_no_folder(tmp_path, monkeypatch):
    def broken(folder, *args):
        (folder / "videos").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(synthvtt, "generate", broken)
    with pytest.raises(KeyboardInterrupt):
        synthvtt.ensure_synthvtt(tmp_path, seed=0, **SMALL)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_twins_share_words_and_a_group(small):
    twins = json.loads((small / "twins.json").read_text())
    assert [len(twins[s]) for s in ("train", "val", "test")] == [10, 2, 5]
    for split in ("train", "val", "test"):
        pairs = synthvtt.synthvtt_pairs(small.parent, split, seed=0, **SMALL)
        index = {v: i for i, v in enumerate(pairs.video_ids)}
        captions = {v: [] for v in pairs.video_ids}
        for caption, video in zip(pairs.captions, pairs.caption_video, strict=True):
            captions[pairs.video_ids[video]].append(caption)
        for a, b in twins[split]:
            assert pairs.groups[index[a]] == pairs.groups[index[b]]
            for x, y in zip(captions[a], captions[b], strict=True):
                assert x != y and sorted(x.split()) == sorted(y.split())
        paired = {v for pair in twins[split] for v in pair}
        singles = [pairs.groups[index[v]] for v in pairs.video_ids if v not in paired]
        assert len(set(singles)) == len(singles)
        assert len(set(pairs.groups)) == pairs.num_videos - len(twins[split])


def test_meta_documents_chance_oracle_and_twins(small):
    meta = json.loads((small / "meta.json").read_text())
    assert meta["generator_version"] == synthvtt.GENERATOR_VERSION and meta["seed"] == 0
    assert meta["sizes"] == SMALL
    assert meta["chance"]["test"]["t2v_R@1"] == 5.0
    oracle = meta["oracle"]["test"]
    assert oracle["t2v"]["r1"] > 80 and 0 <= oracle["t2v"]["unique_queries"] <= 100
    assert oracle["t2v_order_blind"]["r1"] < oracle["t2v"]["r1"]  # order carries information
    assert meta["twins"]["test"] == {"pairs": 5, "videos_in_pairs_percent": 50.0}
    assert set(meta["chance"]["test"]["qa"]) == {"color", "shape", "count", "motion", "order"}


def test_default_size_is_calibrated():
    """The documented calibration of the default benchmark (sampling only, no video written)."""
    # Each split has its own random stream: the test split does not depend on the others' sizes.
    sizes = dict(synthvtt.DEFAULT_SIZES, train_videos=1, val_videos=1)
    test = [s for s in synthvtt.sample_scenes(0, sizes) if s.split == "test"]
    assert len(test) == 1000 and sum(s.twin is not None for s in test) == 500
    oracle = synthvtt.oracle_ceiling([s.meaning() for s in test])
    assert oracle["r1"] > 80 and oracle["unique_queries"] > 80
    twin_meanings = {s.video_id: s.meaning() for s in test}
    for s in test:
        if s.twin:
            assert twin_meanings[s.twin] != s.meaning()
            assert sorted(twin_meanings[s.twin]) == sorted(s.meaning())


def test_bad_arguments_and_data_root(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="test_videos"):
        synthvtt.ensure_synthvtt(tmp_path, test_videos=0)
    with pytest.raises(ValueError, match="split"):
        synthvtt.synthvtt_pairs(tmp_path, "dev")
    monkeypatch.setenv("EMCL_BENCH_DATA", str(tmp_path))
    assert synthvtt.default_data_root() == tmp_path
    monkeypatch.delenv("EMCL_BENCH_DATA")
    assert synthvtt.default_data_root() == Path(os.path.expanduser("~/.cache/emcl-bench"))


def _entry(root: Path, split: str = "test") -> synthvtt.SynthVTT:
    section = {"seed": 0, **SMALL}
    config = {"synthvtt": section, "data": {"root": str(root), "video_root": None}}
    return synthvtt.SynthVTT({**config, "eval": {"split": split}})


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("meta.json", b'{"chance": ', "not valid JSON"),
        ("meta.json", b'{"chance": {"test": {}}}', "no number at chance.test.t2v_R@1"),
        ("meta.json", b'{"chance": "\xff"}', "cannot read it as UTF-8 text"),
        ("twins.json", b'{"test": [["video1"]]}', "expected {split: [[video id, video id], ...]}"),
        ("twins.json", b"[", "not valid JSON"),
    ],
)
def test_damaged_folder_files_are_one_line_errors_at_setup(small, tmp_path, name, content, reason):
    """meta.json is read when the entry is built (before any training), twins.json with the
    pairs; each error names the file and how to get a whole folder again."""
    copy = tmp_path / small.name
    shutil.copytree(small, copy, ignore=shutil.ignore_patterns("videos"))
    (copy / name).write_bytes(content)
    with pytest.raises(DataError) as exc:
        _entry(tmp_path).pairs("test")
    message = str(exc.value)
    assert "\n" not in message and str(copy / name) in message and reason in message
    assert "delete the synthvtt folder" in message


def test_notes_come_from_meta_and_train_has_none(small):
    oracle = json.loads((small / "meta.json").read_text())["oracle"]["test"]
    expected = (
        f"synthvtt test: chance T2V R@1 5.0, oracle ceiling R@1 {oracle['t2v']['r1']:.1f} "
        f"(order-blind oracle {oracle['t2v_order_blind']['r1']:.1f})"
    )
    assert _entry(small.parent).notes() == [expected]
    assert _entry(small.parent, "train").notes() == []  # meta.json has no train chance level
