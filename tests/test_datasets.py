"""Dataset entries (MSVD, LSMDC, ActivityNet, DiDeMo, VATEX, MSR-VTT variants, MSRVTT-QA) on
miniatures in their published formats, the real split lists, and the one-line errors."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from harness.config import ConfigError, load_yaml, merge_defaults
from harness.data_types import VideoTextPairs
from harness.errors import DataError, UserError
from harness.video import write_test_video
from tasks.datasets.activitynet import ActivityNet
from tasks.datasets.annotations import read_id_list
from tasks.datasets.didemo import DiDeMo
from tasks.datasets.lsmdc import LSMDC
from tasks.datasets.msrvtt import MSRVTT
from tasks.datasets.msrvtt_qa import MSRVTTQA
from tasks.datasets.msvd import MSVD, emcl_net_cut_off
from tasks.datasets.vatex import VATEX
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "tasks" / "configs"


def _config(name: str, root: Path | None, video_root: Path | None = None, **options) -> dict:
    """The defaults a run of dataset ``name`` resolves to, with ``data.root = root``."""
    config = merge_defaults(
        load_yaml(CONFIGS / "base.yaml"), load_yaml(CONFIGS / "datasets" / f"{name}.yaml")
    )
    config["data"]["root"] = None if root is None else str(root)
    config["data"]["video_root"] = None if video_root is None else str(video_root)
    config[name].update(options)
    return config


def _write_videos(folder: Path, names: list[str]) -> None:
    """Tiny placeholder videos (2 frames, 16x16) at ``folder/name`` (sub-folders created)."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_test_video(path, np.zeros((2, 16, 16, 3), np.uint8), fps=2)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


# ---------------------------------------------------------------------------------------------
# VideoTextPairs.segments


def test_segments_are_validated_and_follow_their_videos():
    base = dict(
        video_ids=["a", "b", "c"],
        video_paths=[Path("a.mp4"), Path("b.mp4"), Path("c.mp4")],
        captions=["x", "y", "z", "w"],
        caption_video=[0, 1, 2, 1],
    )
    with pytest.raises(ValueError, match="2 segments for 3 videos"):
        VideoTextPairs(**base, segments=[None, (0.0, 1.0)])
    with pytest.raises(ValueError, match="segment \\(5.0, 2.0\\) of video 'b'"):
        VideoTextPairs(**base, segments=[None, (5.0, 2.0), None])
    with pytest.raises(ValueError, match="0 <= start < end"):
        VideoTextPairs(**base, segments=[None, None, (-1, 3)])
    pairs = VideoTextPairs(**base, groups=[7, 8, 9], segments=[(0.0, 31.0), None, (2.0, 4.5)])
    kept = pairs.keep_videos([2, 1])
    assert kept.video_ids == ["c", "b"] and kept.segments == [(2.0, 4.5), None]
    assert kept.groups == [9, 8]
    assert kept.captions == ["y", "z", "w"] and kept.caption_video == [1, 0, 1]


# ---------------------------------------------------------------------------------------------
# MSVD


MSVD_CAPTIONS = {
    "vidB_1_5": [["a", "dog", "runs"], ["the", "dog", "is", "running"]],
    "-4wsuPCjDBc_5_15": [["a", "man", "cooks"], ["someone", "cooks"], ["a", "chef"]],
    "vidC_0_9": [["a", "cat"], ["a", "kitten", "plays"], ["cat", "play"], ["a", "pet"]],
    "vidT_2_3": [["train", "video"], ["a", "train", "clip"]],
}


def _msvd_root(tmp_path: Path) -> Path:
    root = tmp_path / "msvd"
    root.mkdir()
    with (root / "raw-captions.pkl").open("wb") as f:
        pickle.dump(MSVD_CAPTIONS, f)
    _write_lines(root / "train_list.txt", ["vidT_2_3"])
    _write_lines(root / "val_list.txt", ["vidB_1_5"])
    # list order, not pickle order; a trailing blank line is ignored
    _write_lines(root / "test_list.txt", ["-4wsuPCjDBc_5_15", "vidB_1_5", "vidC_0_9", ""])
    _write_videos(
        root / "videos",
        ["-4wsuPCjDBc_5_15.avi", "part2/vidB_1_5.avi", "vidT_2_3.mp4", "val/vidB_1_5.mp4"],
    )
    return root


def test_msvd_multi_sentence_pairs_in_list_order(tmp_path):
    root = _msvd_root(tmp_path)
    msvd = MSVD(_config("msvd", root))
    test = msvd.pairs("test")
    assert test.video_ids == ["-4wsuPCjDBc_5_15", "vidB_1_5", "vidC_0_9"]
    assert test.captions[:4] == ["a man cooks", "someone cooks", "a chef", "a dog runs"]
    assert test.caption_video == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    videos = root / "videos"
    # found by stem anywhere below the video root (sorted walk: part2/ before val/)
    assert test.video_paths[:2] == [videos / "-4wsuPCjDBc_5_15.avi", videos / "part2/vidB_1_5.avi"]
    # a listed video without a file keeps a path the clip loader will report
    assert test.video_paths[2] == videos / "vidC_0_9.avi"
    assert msvd.notes() == [
        f"msvd test: 1 of 3 listed videos have no file under {videos} (first: vidC_0_9)"
    ]
    assert test.segments is None
    train = msvd.pairs("train")
    assert train.captions == ["train video", "a train clip"] and train.caption_video == [0, 0]


def _reference_groups(counts: list[int]) -> list[list[int]]:
    """Sentence rows per video group as EMCL-Net's evaluation forms them (METHODS.md §4.6):
    the loader stores last-sentence indices, the evaluation subtracts one and adds one back."""
    cut_off_points, total = [], 0
    for count in counts:
        total += count
        cut_off_points.append(total - 1)
    lens = [c - 1 + 1 for c in cut_off_points]
    return [list(range(s, e)) for s, e in zip([0] + lens[:-1], lens, strict=True)]


def test_msvd_emcl_net_cut_off_bug_matches_the_reference_grouping(tmp_path):
    root = _msvd_root(tmp_path)
    correct = MSVD(_config("msvd", root)).pairs("test")
    entry = MSVD(_config("msvd", root, emcl_net_cut_off_bug=True))
    buggy = entry.pairs("test")
    groups = _reference_groups([3, 2, 4])
    assert buggy.caption_video == [g for g, rows in enumerate(groups) for _ in rows]
    assert buggy.caption_video == [0, 0, 1, 1, 2, 2, 2, 2]
    assert buggy.captions == correct.captions[:-1]  # the final sentence is dropped
    # the last sentence of video 0 ("a chef") is now a query for video 1
    assert (buggy.captions[2], buggy.video_ids[buggy.caption_video[2]]) == ("a chef", "vidB_1_5")
    assert buggy.video_ids == correct.video_ids and buggy.video_paths == correct.video_paths
    assert any("EMCL-Net cut-off bug reproduced: 2 sentences" in n for n in entry.notes())
    assert entry.pairs("train").caption_video == [0, 0]  # training pairs are not affected


def test_msvd_cut_off_bug_needs_two_sentences_per_video():
    pairs = VideoTextPairs(["a", "b"], [Path("a"), Path("b")], ["x", "y", "z"], [0, 0, 1])
    with pytest.raises(ValueError) as exc:
        emcl_net_cut_off(pairs)
    assert "msvd.emcl_net_cut_off_bug=false" in _one_line(exc)


def test_msvd_errors(tmp_path):
    root = _msvd_root(tmp_path)
    (root / "raw-captions.pkl").unlink()
    with pytest.raises(DataError) as exc:
        MSVD(_config("msvd", root)).pairs("test")
    message = _one_line(exc)
    assert "raw-captions.pkl" in message and 'README section "Datasets: MSVD"' in message
    (root / "raw-captions.pkl").write_bytes(pickle.dumps({"vidB_1_5": ["a dog runs"]}))
    with pytest.raises(ValueError, match="'vidB_1_5' must be a list of token lists"):
        MSVD(_config("msvd", root)).pairs("val")
    (root / "raw-captions.pkl").write_bytes(pickle.dumps({"vidB_1_5": [["a", "dog"]]}))
    with pytest.raises(ValueError) as exc:
        MSVD(_config("msvd", root)).pairs("test")
    assert "'-4wsuPCjDBc_5_15'" in _one_line(exc) and "Datasets: MSVD" in str(exc.value)
    # a pickle that would construct objects is refused, not executed
    (root / "raw-captions.pkl").write_bytes(pickle.dumps({"vidB_1_5": [Path("x")]}))
    with pytest.raises(ValueError, match="refusing to load"):
        MSVD(_config("msvd", root)).pairs("val")
    (root / "raw-captions.pkl").write_bytes(pickle.dumps(MSVD_CAPTIONS))
    with pytest.raises(DataError) as exc:
        MSVD(_config("msvd", root, video_root=tmp_path / "nowhere")).pairs("val")
    message = _one_line(exc)
    assert "video folder not found" in message and str(tmp_path / "nowhere") in message
    with pytest.raises(ValueError, match="MSVD has no split 'dev'"):
        MSVD(_config("msvd", root)).pairs("dev")


# ---------------------------------------------------------------------------------------------
# VATEX


def test_vatex_english_captions_multi_sentence(tmp_path):
    data = {
        "Ptf_2VRj-V0_000122_000132": {"enCap": ["a man sings", "someone sings"], "chCap": ["x"]},
        "CBL6uetTPHg_000089_000099": {"enCap": ["a girl dances"] * 3, "chCap": ["y"]},
    }
    (tmp_path / "vatex_data.json").write_text(json.dumps(data))
    ids = list(data)
    _write_lines(tmp_path / "train_list.txt", ids)
    _write_lines(tmp_path / "val_list.txt", ids[:1])
    _write_lines(tmp_path / "test_list.txt", ids[::-1])
    _write_videos(tmp_path / "clips", [f"{i}.mp4" for i in ids])
    vatex = VATEX(_config("vatex", tmp_path, video_root=tmp_path / "clips"))
    test = vatex.pairs("test")
    assert test.video_ids == ids[::-1]
    assert test.captions == ["a girl dances"] * 3 + ["a man sings", "someone sings"]
    assert test.caption_video == [0, 0, 0, 1, 1]
    assert test.video_paths == [tmp_path / "clips" / f"{i}.mp4" for i in ids[::-1]]
    assert vatex.notes() == []

    _write_lines(tmp_path / "val_list.txt", ["unknown_000000_000010"])
    with pytest.raises(ValueError) as exc:
        vatex.pairs("val")
    assert "'unknown_000000_000010'" in _one_line(exc)
    assert 'README section "Datasets: VATEX"' in str(exc.value)
    (tmp_path / "vatex_data.json").write_text(json.dumps({"a": {"chCap": ["x"]}}))
    with pytest.raises(ValueError, match="video 'a' has no list of strings 'enCap'"):
        VATEX(_config("vatex", tmp_path)).pairs("test")


# ---------------------------------------------------------------------------------------------
# LSMDC


def test_lsmdc_pairs_drop_missing_and_excluded_clips(tmp_path):
    clip = "1004_Juno_00.00.32.849-00.00.38.830"
    pianist = "0017_Pianist_00.23.28.872-00.23.34.843"  # excluded by EMCL-Net
    lines = [
        f"{clip}\t00.00.32.849\t00.00.38.830\t00.00.32.849\t00.00.38.830\tSOMEONE walks in.",
        f"{pianist}\t0\t1\t0\t1\tSOMEONE plays.",
        "1004_Juno_00.01.00.000-00.01.02.000\t0\t1\t0\t1\tNo file for this clip.",
        "1005_Up_00.02.00.000-00.02.03.500\t0\t1\t0\t1\tA house flies.",
        f"{clip}\t0\t1\t0\t1\tSOMEONE sits.",
    ]
    _write_lines(tmp_path / "LSMDC16_annos_training.csv", lines)
    _write_lines(tmp_path / "LSMDC16_challenge_1000_publictect.csv", lines[:2] + lines[3:4])
    _write_videos(
        tmp_path / "videos",
        [
            f"1004_Juno/{clip}.avi",
            f"0017_Pianist/{pianist}.avi",
            "1005_Up/1005_Up_00.02.00.000-00.02.03.500.avi",
        ],
    )
    lsmdc = LSMDC(_config("lsmdc", tmp_path))
    train = lsmdc.pairs("train")
    assert train.video_ids == [clip, "1005_Up_00.02.00.000-00.02.03.500"]
    assert train.captions == ["SOMEONE walks in.", "A house flies.", "SOMEONE sits."]
    assert train.caption_video == [0, 1, 0]
    assert train.video_paths[0] == tmp_path / "videos" / "1004_Juno" / f"{clip}.avi"
    test = lsmdc.pairs("test")
    assert test.caption_video == list(range(test.num_videos)) == [0, 1]  # one-to-one
    assert lsmdc.notes() == [
        "lsmdc train: 2 of 5 pairs dropped as the reference loaders do "
        "(excluded clips: 1, no video file: 1)",
        "lsmdc test: 1 of 3 pairs dropped as the reference loaders do (excluded clips: 1)",
    ]
    kept_all = LSMDC(_config("lsmdc", tmp_path, exclude_clips=[])).pairs("test")
    assert kept_all.video_ids == [clip, pianist, "1005_Up_00.02.00.000-00.02.03.500"]


def test_lsmdc_errors(tmp_path):
    with pytest.raises(DataError) as exc:
        LSMDC(_config("lsmdc", tmp_path)).pairs("test")
    message = _one_line(exc)
    assert "LSMDC16_challenge_1000_publictect.csv" in message
    assert 'README section "Datasets: LSMDC"' in message
    _write_lines(tmp_path / "LSMDC16_annos_val.csv", ["a\t0\t1\t0\t1\tok", "b\t0\t1\tbroken"])
    with pytest.raises(ValueError) as exc:
        LSMDC(_config("lsmdc", tmp_path)).pairs("val")
    assert "LSMDC16_annos_val.csv:2: expected 6 tab-separated fields" in _one_line(exc)
    _write_lines(tmp_path / "LSMDC16_annos_val.csv", ["a\t0\t1\t0\t1\tok"])
    _write_videos(tmp_path / "videos", ["other.avi"])
    with pytest.raises(DataError) as exc:
        LSMDC(_config("lsmdc", tmp_path)).pairs("val")
    message = _one_line(exc)
    assert "none of the videos of LSMDC16_annos_val.csv" in message
    assert str(tmp_path / "videos") in message and "Datasets: LSMDC" in message


# ---------------------------------------------------------------------------------------------
# ActivityNet


def test_activitynet_paragraphs_whole_video_segments(tmp_path):
    captions = {
        "v_QOlSCBRmfWY": {
            "duration": 82.73,
            "timestamps": [[0.83, 19.86], [17.37, 60.81]],
            "sentences": ["A young woman is seen.", " She then dances. "],
        },
        "v_ehGHCYKzyZ8": {"duration": 61.0, "timestamps": [[0, 61]], "sentences": ["A man."]},
        "v_notlisted00": {"duration": 5.0, "timestamps": [], "sentences": []},
        "v_nofile00000": {"duration": 5.0, "timestamps": [[0, 5]], "sentences": ["Gone."]},
    }
    ids = ["v_ehGHCYKzyZ8", "v_QOlSCBRmfWY", "v_ehGHCYKzyZ8", "v_notinjson00", "v_nofile00000"]
    (tmp_path / "val_1.json").write_text(json.dumps(captions))
    (tmp_path / "val_ids.json").write_text(json.dumps(ids))
    _write_videos(tmp_path / "videos", ["v_QOlSCBRmfWY.mkv", "a/v_ehGHCYKzyZ8.mp4"])
    entry = ActivityNet(_config("activitynet", tmp_path))
    test = entry.pairs("test")
    assert test.video_ids == ["v_ehGHCYKzyZ8", "v_QOlSCBRmfWY"]  # ids order, duplicate once
    assert test.captions == ["A man.", "A young woman is seen.  She then dances. "]
    assert test.caption_video == [0, 1]
    assert test.segments == [(0.0, 61.0), (0.0, 83.0)]  # (0, ceil(duration))
    assert test.video_paths == [
        tmp_path / "videos" / "a" / "v_ehGHCYKzyZ8.mp4",
        tmp_path / "videos" / "v_QOlSCBRmfWY.mkv",
    ]
    assert entry.pairs("val") == test  # val = test = val_1
    assert entry.notes() == [
        f"activitynet {split}: 2 of 4 listed videos dropped as the reference loaders do "
        "(no captions: 1, no video file: 1)"
        for split in ("test", "val")
    ]
    with pytest.raises(DataError) as exc:
        entry.pairs("train")
    message = _one_line(exc)
    assert "train_ids.json" in message and 'README section "Datasets: ActivityNet"' in message
    (tmp_path / "train_ids.json").write_text(json.dumps(ids))
    (tmp_path / "train.json").write_text(json.dumps({"v_x": {"duration": 0, "sentences": []}}))
    with pytest.raises(ValueError, match="'v_x' needs a positive number 'duration'"):
        entry.pairs("train")


# ---------------------------------------------------------------------------------------------
# DiDeMo


def test_didemo_paragraphs_in_json_order_with_forced_segment(tmp_path):
    data = [
        {"video": "b@N00_2.mov", "description": "a dog jumps", "times": [[0, 0], [0, 1]]},
        {"video": "a@N01_1.mov", "description": "the camera pans", "times": [[2, 3]]},
        {"video": "b@N00_2.mov", "description": "the dog lands", "times": [[4, 5]]},
        {"video": "c@N02_3.mov", "description": "not listed", "times": [[1, 1]]},
        {"video": "d@N03_4.mov", "description": "no video file", "times": [[1, 1]]},
    ]
    (tmp_path / "test_data.json").write_text(json.dumps(data))
    _write_lines(
        tmp_path / "test_list.txt", ["a@N01_1.mov", "b@N00_2.mov", "d@N03_4.mov", "e@N04_5.mov"]
    )
    _write_videos(tmp_path / "videos", ["a@N01_1.mov.mp4", "b@N00_2.mov.mp4", "c@N02_3.mov.mp4"])
    entry = DiDeMo(_config("didemo", tmp_path))
    test = entry.pairs("test")
    assert test.video_ids == ["b@N00_2.mov", "a@N01_1.mov"]  # first appearance in the json
    assert test.captions == ["a dog jumps the dog lands", "the camera pans"]
    assert test.caption_video == [0, 1]
    assert test.segments == [(0.0, 31.0), (0.0, 31.0)]
    assert test.video_paths[0] == tmp_path / "videos" / "b@N00_2.mov.mp4"
    assert entry.notes() == [
        "didemo test: 2 of 4 listed videos dropped as the reference loaders do "
        "(no captions: 1, no video file: 1)"
    ]
    with pytest.raises(DataError) as exc:
        entry.pairs("val")
    message = _one_line(exc)
    assert "val_list.txt" in message and 'README section "Datasets: DiDeMo"' in message
    (tmp_path / "train_list.txt").write_text("a@N01_1.mov\n")
    (tmp_path / "train_data.json").write_text(json.dumps([{"video": "a@N01_1.mov"}]))
    with pytest.raises(
        ValueError, match=r"train_data.json: item \[0\] has no string 'description'"
    ):
        entry.pairs("train")


# ---------------------------------------------------------------------------------------------
# MSR-VTT split variants


def _msrvtt_root(tmp_path: Path) -> Path:
    sentences = []
    for n in range(8):  # videos 0-3 train, 4-5 val (full), 6-7 test (full); interleaved order
        sentences += [{"video_id": f"video{n}", "caption": f"caption {k} of {n}"} for k in (0, 1)]
    sentences = sentences[1::2] + sentences[::2]
    (tmp_path / "MSRVTT_data.json").write_text(json.dumps({"videos": [], "sentences": sentences}))
    lists = {
        "MSRVTT_train.9k.csv": [0, 1, 2, 3],
        "MSRVTT_train.7k.csv": [1, 2],
        "MSRVTT_train.full.csv": [0, 1, 2],
        "MSRVTT_val.full.csv": [4, 5],
        "MSRVTT_test.full.csv": [7, 6],
    }
    for name, ids in lists.items():
        _write_lines(tmp_path / name, ["video_id"] + [f"video{i}" for i in ids])
    _write_lines(
        tmp_path / "MSRVTT_JSFUSION_test.csv",
        ["key,vid_key,video_id,sentence", "ret0,msr7,video7,a test caption"],
    )
    return tmp_path


def test_msrvtt_train_and_test_variants(tmp_path):
    root = _msrvtt_root(tmp_path)
    default = MSRVTT(_config("msrvtt", root))
    assert default.pairs("train").num_videos == 4
    one_k = default.pairs("test")
    assert one_k.captions == ["a test caption"] and one_k.caption_video == [0]
    assert default.pairs("val") == one_k  # 1k-A: val is the test, as in the reference repos
    assert (
        default.notes()[0]
        == "msrvtt train: MSRVTT_train.9k.csv, 4 videos, every json caption of each video"
    )

    seven = MSRVTT(_config("msrvtt", root, train_split="7k")).pairs("train")
    assert seven.video_ids == ["video1", "video2"] and seven.num_captions == 4
    full = MSRVTT(_config("msrvtt", root, train_split="full", test_split="full"))
    assert full.pairs("train").video_ids == ["video0", "video1", "video2"]
    test = full.pairs("test")
    # every json sentence of the listed videos, json order; videos by first appearance
    assert test.video_ids == ["video6", "video7"]
    assert test.captions == ["caption 1 of 6", "caption 1 of 7", "caption 0 of 6", "caption 0 of 7"]
    assert test.caption_video == [0, 1, 0, 1]  # several captions per video: multi-sentence
    assert test.video_paths == [root / "videos" / "video6.mp4", root / "videos" / "video7.mp4"]
    assert full.pairs("val").video_ids == ["video4", "video5"]
    assert "msrvtt test: MSRVTT_test.full.csv, 2 videos" in full.notes()[-2]

    with pytest.raises(ConfigError) as exc:
        MSRVTT(_config("msrvtt", root, test_split="1k-B"))
    assert "'msrvtt.test_split' must be one of 1k-A, full" in _one_line(exc)
    with pytest.raises(ValueError) as exc:
        MSRVTT(_config("msrvtt", None))
    assert "--data-root" in _one_line(exc) and 'README section "Datasets: MSR-VTT"' in str(
        exc.value
    )


def test_msrvtt_caption_test_without_sentences_is_an_error_not_multi_sentence(tmp_path):
    root = _msrvtt_root(tmp_path)
    _write_lines(root / "MSRVTT_JSFUSION_test.csv", ["key,vid_key,video_id", "ret0,msr7,video7"])
    with pytest.raises(DataError) as exc:
        MSRVTT(_config("msrvtt", root)).pairs("test")  # 1k-A: one caption per video
    message = _one_line(exc)
    assert f"{root / 'MSRVTT_JSFUSION_test.csv'}: missing column 'sentence'" in message
    # full: the test csv lists videos, and every json caption of each is evaluated
    full = MSRVTT(_config("msrvtt", root, test_split="full")).pairs("test")
    assert full.caption_video == [0, 1, 0, 1]


# ---------------------------------------------------------------------------------------------
# MSRVTT-QA


def test_msrvtt_qa_entry_on_the_real_val_questions(shared_data, tmp_path):
    root = shared_data / "msrvtt_qa"
    qa = MSRVTTQA(_config("msrvtt_qa", root, video_root=shared_data / "videos"))
    questions = qa.qa_questions("val")
    assert len(questions) == 12278 and questions[0]["video_id"] == "video6513"
    vocabulary = qa.qa_vocabulary()
    assert len(vocabulary) == 1500 and sorted(vocabulary.values()) == list(range(1500))
    assert qa.video_path("video7500") == shared_data / "videos" / "video7500.mp4"
    assert qa.video_path("video7500").is_file()
    with pytest.raises(DataError) as exc:
        qa.qa_questions("test")
    message = _one_line(exc)
    assert "test.jsonl" in message and 'README section "Datasets: MSRVTT-QA"' in message
    with pytest.raises(ValueError, match="MSRVTT-QA has no split 'dev'"):
        qa.qa_questions("dev")
    empty = MSRVTTQA(_config("msrvtt_qa", tmp_path))
    with pytest.raises(DataError, match="train_ans2label.json"):
        empty.qa_vocabulary()


# ---------------------------------------------------------------------------------------------
# Shared behaviour


@pytest.mark.parametrize(
    ("entry", "name", "title", "first_file"),
    [
        (MSVD, "msvd", "MSVD", "test_list.txt"),
        (VATEX, "vatex", "VATEX", "test_list.txt"),
        (LSMDC, "lsmdc", "LSMDC", "LSMDC16_challenge_1000_publictect.csv"),
        (ActivityNet, "activitynet", "ActivityNet", "val_ids.json"),
        (DiDeMo, "didemo", "DiDeMo", "test_list.txt"),
        (MSRVTT, "msrvtt", "MSR-VTT", "MSRVTT_JSFUSION_test.csv"),
    ],
)
def test_missing_files_and_root_are_one_line_errors(tmp_path, entry, name, title, first_file):
    readme = f'README section "Datasets: {title}"'
    with pytest.raises(UserError) as exc:
        entry(_config(name, tmp_path)).pairs("test")
    message = _one_line(exc)
    assert isinstance(exc.value, DataError)
    assert str(tmp_path / first_file) in message and readme in message
    with pytest.raises(UserError) as exc:
        entry(_config(name, None))
    message = _one_line(exc)
    assert isinstance(exc.value, ConfigError)
    assert f"dataset {name} needs --data-root DIR" in message and readme in message
    with pytest.raises(ConfigError, match=f"{title} has no split 'dev'.*eval.split"):
        entry(_config(name, tmp_path)).pairs("dev")


@pytest.mark.parametrize(
    ("name", "words", "frames"),
    [
        ("msvd", 32, 12),
        ("lsmdc", 32, 12),
        ("vatex", 32, 12),
        ("msrvtt", 32, 12),
        ("msrvtt_qa", 32, 12),
        ("activitynet", 64, 64),
        ("didemo", 64, 64),
    ],
)
def test_dataset_defaults(name, words, frames):
    config = _config(name, Path("."))
    assert (config["data"]["max_words"], config["data"]["max_frames"]) == (words, frames)
    assert config["data"]["video_framerate"] == 1.0


# ---------------------------------------------------------------------------------------------
# The real split lists


def test_real_msvd_split_lists(shared_data):
    folder = shared_data / "msvd"
    ids = {s: read_id_list(folder / f"{s}_list.txt", "MSVD", "") for s in ("train", "val", "test")}
    assert {s: len(v) for s, v in ids.items()} == {"train": 1200, "val": 100, "test": 670}
    assert ids["test"][:2] == ["eyhzdC936uk_15_27", "f-24IxG9ijw_25_40"]
    assert all(len(set(v)) == len(v) for v in ids.values())
    assert not (set(ids["train"]) & set(ids["val"]) or set(ids["train"]) & set(ids["test"]))
    assert not set(ids["val"]) & set(ids["test"])


def test_real_vatex_split_lists(shared_data):
    folder = shared_data / "vatex"
    names = ("train_list", "val_list", "test_list", "test1k5_sec_list")
    ids = {n: read_id_list(folder / f"{n}.txt", "VATEX", "") for n in names}
    assert {n: len(set(v)) for n, v in ids.items()} == {
        "train_list": 25991,
        "val_list": 1500,
        "test_list": 1500,
        "test1k5_sec_list": 1500,
    }
    assert ids["test_list"][0] == "sf2PPeXQrUA_000000_000010"
    train, val, test = (set(ids[n]) for n in names[:3])
    assert not (train & val or train & test or val & test)
    # the unused 1k5 list mixes 724 test and 776 val videos
    sec = set(ids["test1k5_sec_list"])
    assert (len(sec & test), len(sec & val), len(sec & train)) == (724, 776, 0)
