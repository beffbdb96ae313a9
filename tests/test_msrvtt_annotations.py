"""MSR-VTT and MSRVTT-QA loaders on the real annotation files, and their one-line errors."""

import csv
import json
import shutil

import pytest

from harness.errors import DataError, UserError
from tasks.datasets.msrvtt import load_msrvtt_pairs, load_msrvtt_qa, load_video_ids


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_real_split_csvs(shared_data):
    root = shared_data / "msrvtt"
    counts = {
        "MSRVTT_train.9k.csv": 9000,
        "MSRVTT_train.7k.csv": 7010,
        "MSRVTT_train.full.csv": 6513,
        "MSRVTT_val.full.csv": 497,
        "MSRVTT_test.full.csv": 2990,
    }
    ids = {name: load_video_ids(root / name) for name in counts}
    assert {name: len(v) for name, v in ids.items()} == counts
    assert (
        ids["MSRVTT_val.full.csv"][0] == "video6513"
        and ids["MSRVTT_val.full.csv"][-1] == "video7009"
    )
    assert set(ids["MSRVTT_train.7k.csv"]) <= set(ids["MSRVTT_train.9k.csv"])


def test_real_jsfusion_test_pairs(shared_data, tmp_path):
    root = shared_data / "msrvtt"
    pairs = load_msrvtt_pairs(root, "test")
    assert pairs.num_captions == pairs.num_videos == len(set(pairs.video_ids)) == 1000
    assert pairs.caption_video == list(range(1000))
    assert (pairs.video_ids[0], pairs.captions[0]) == (
        "video9770",
        "a person is connecting something to system",
    )
    assert pairs.video_paths[0] == root / "videos" / "video9770.mp4"
    assert not set(pairs.video_ids) & set(load_video_ids(root / "MSRVTT_train.9k.csv"))
    moved = load_msrvtt_pairs(root, "test", video_root=tmp_path)
    assert moved.video_paths[1] == tmp_path / "video9771.mp4"


def test_train_pairs_expand_every_sentence_in_json_order(shared_data, tmp_path):
    shutil.copy(shared_data / "msrvtt" / "MSRVTT_train.9k.csv", tmp_path)
    sentences = [
        ("video12", "a man cooks"),
        ("video9770", "a test video caption"),  # 1k-A test video: not in the 9k list
        ("video3", "a dog runs"),
        ("video12", "someone is cooking"),
        ("video3", "a dog is running"),
        ("video12", "a chef prepares food"),
    ]
    data = {
        "videos": [],
        "sentences": [
            {"caption": c, "video_id": v, "sen_id": n} for n, (v, c) in enumerate(sentences)
        ],
    }
    (tmp_path / "MSRVTT_data.json").write_text(json.dumps(data))
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "video3.webm").write_bytes(b"")  # only a .webm: the fallback is used
    (videos / "video12.webm").write_bytes(b"")
    (videos / "video12.mp4").write_bytes(b"")  # both: the .mp4 wins

    pairs = load_msrvtt_pairs(tmp_path, "train")
    assert pairs.video_ids == ["video12", "video3"]
    assert pairs.captions == [c for v, c in sentences if v != "video9770"]
    assert pairs.caption_video == [0, 1, 0, 1, 0]
    assert pairs.video_paths == [videos / "video12.mp4", videos / "video3.webm"]
    assert pairs.groups is None


def test_missing_annotation_file_says_where_it_comes_from(tmp_path):
    with pytest.raises(DataError) as exc:
        load_msrvtt_pairs(tmp_path, "test")
    message = _one_line(exc)
    assert "MSRVTT_JSFUSION_test.csv" in message and "msrvtt_data.zip" in message
    assert 'README section "Datasets: MSR-VTT"' in message
    (tmp_path / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\n")
    with pytest.raises(DataError, match="MSRVTT_data.json"):
        load_msrvtt_pairs(tmp_path, "train")
    with pytest.raises(ValueError, match="'train' or 'test'") as exc:
        load_msrvtt_pairs(tmp_path, "val")
    assert not isinstance(exc.value, UserError)  # only code passes a split here: a bug


def _write_csv(path, rows):
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def test_malformed_files_name_file_and_key(tmp_path):
    _write_csv(
        tmp_path / "MSRVTT_JSFUSION_test.csv",
        [["key", "video_id", "sentence"], ["ret0", "video1", "a cat"]],
    )
    with pytest.raises(DataError) as exc:
        load_msrvtt_pairs(tmp_path, "test")
    assert "MSRVTT_JSFUSION_test.csv" in _one_line(exc) and "'vid_key'" in str(exc.value)

    _write_csv(tmp_path / "MSRVTT_train.9k.csv", [["video_id"], ["video1"]])
    data_json = tmp_path / "MSRVTT_data.json"
    data_json.write_text(json.dumps({"videos": []}))
    with pytest.raises(DataError) as exc:
        load_msrvtt_pairs(tmp_path, "train")
    assert "MSRVTT_data.json" in _one_line(exc) and "'sentences'" in str(exc.value)
    data_json.write_text(json.dumps({"sentences": [{"video_id": "video1"}]}))
    with pytest.raises(DataError, match=r"sentences\[0\] has no key 'caption'"):
        load_msrvtt_pairs(tmp_path, "train")
    data_json.write_text('{"sentences": [')
    with pytest.raises(DataError, match="not valid JSON"):
        load_msrvtt_pairs(tmp_path, "train")
    data_json.write_text(json.dumps({"sentences": [{"video_id": "video2", "caption": "a dog"}]}))
    with pytest.raises(DataError, match="no sentence belongs"):
        load_msrvtt_pairs(tmp_path, "train")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"video_id\nvideo1\xff\n", "cannot read it as UTF-8 text"),
        (b'video_id\n"' + b"v" * 200_000 + b'"\n', "not a valid csv file"),
    ],
)
def test_undecodable_files_are_user_errors(tmp_path, content, reason):
    (tmp_path / "MSRVTT_train.9k.csv").write_bytes(content)
    with pytest.raises(UserError) as exc:
        load_msrvtt_pairs(tmp_path, "train")
    assert isinstance(exc.value, DataError)
    assert str(tmp_path / "MSRVTT_train.9k.csv") in _one_line(exc) and reason in str(exc.value)


JSFUSION_HEADER = ["key", "vid_key", "video_id", "sentence"]


@pytest.mark.parametrize(
    ("extra_row", "reason"),
    [
        (["ret0", "msr1", "video1", "a cat"], "MSRVTT_JSFUSION_test.csv:4: repeats line 2"),
        (
            ["ret2", "msr1", "video1", "a dog"],
            "MSRVTT_JSFUSION_test.csv:4: lists video 'video1' again (first on line 2)",
        ),
    ],
)
def test_a_test_video_twice_names_file_and_line(tmp_path, extra_row, reason):
    rows = [JSFUSION_HEADER, ["ret0", "msr1", "video1", "a cat"], ["ret1", "msr2", "video2", "a"]]
    _write_csv(tmp_path / "MSRVTT_JSFUSION_test.csv", [*rows, extra_row])
    with pytest.raises(DataError) as exc:
        load_msrvtt_pairs(tmp_path, "test")
    assert f"{tmp_path / reason}" in _one_line(exc) and "lists each video once" in str(exc.value)


def test_a_video_list_with_a_video_twice_names_file_and_line(tmp_path):
    _write_csv(
        tmp_path / "MSRVTT_test.full.csv", [["video_id"], ["video7"], ["video6"], ["video7"]]
    )
    with pytest.raises(DataError) as exc:
        load_msrvtt_pairs(tmp_path, "test", test_csv="MSRVTT_test.full.csv")
    assert f"{tmp_path / 'MSRVTT_test.full.csv'}:4: repeats line 2" in _one_line(exc)


def test_a_caption_test_without_its_sentence_column_names_file_and_column(tmp_path):
    _write_csv(tmp_path / "MSRVTT_JSFUSION_test.csv", [["key", "vid_key", "video_id"]])
    with pytest.raises(DataError) as exc:
        load_msrvtt_pairs(tmp_path, "test", captions_in_csv=True)
    message = _one_line(exc)
    assert f"{tmp_path / 'MSRVTT_JSFUSION_test.csv'}: missing column 'sentence'" in message


def test_empty_caption_names_file_and_video(tmp_path):
    _write_csv(
        tmp_path / "MSRVTT_JSFUSION_test.csv",
        [
            ["key", "vid_key", "video_id", "sentence"],
            ["ret0", "msr1", "video1", "a cat"],
            ["ret1", "msr2", "video2", " "],
        ],
    )
    with pytest.raises(DataError) as exc:
        load_msrvtt_pairs(tmp_path, "test")
    assert "MSRVTT_JSFUSION_test.csv" in _one_line(exc) and "'video2'" in str(exc.value)

    _write_csv(tmp_path / "MSRVTT_train.9k.csv", [["video_id"], ["video1"]])
    (tmp_path / "MSRVTT_data.json").write_text(
        json.dumps({"sentences": [{"video_id": "video1", "caption": "", "sen_id": 0}]})
    )
    with pytest.raises(DataError, match=r"MSRVTT_data.json: empty caption for video 'video1'"):
        load_msrvtt_pairs(tmp_path, "train")


def test_real_msrvtt_qa_val(shared_data):
    root = shared_data / "msrvtt_qa"
    questions, ans2label = load_msrvtt_qa(root / "val.jsonl", root / "train_ans2label.json")
    assert len(questions) == 12278
    assert len({q["video_id"] for q in questions}) == 497
    assert questions[0] == {
        "answer": "couch",
        "question": "what are three people sitting on?",
        "video_id": "video6513",
        "answer_type": "what",
    }
    assert len(ans2label) == 1500 and list(ans2label) == sorted(ans2label)
    assert sorted(ans2label.values()) == list(range(1500))
    in_vocabulary = sum(q["answer"] in ans2label for q in questions)
    assert in_vocabulary == 11419 and round(100 * in_vocabulary / len(questions), 1) == 93.0


def test_msrvtt_qa_errors(tmp_path, shared_data):
    ans2label = shared_data / "msrvtt_qa" / "train_ans2label.json"
    with pytest.raises(DataError) as exc:
        load_msrvtt_qa(tmp_path / "test.jsonl", ans2label)
    assert "test.jsonl" in _one_line(exc) and "Datasets" in str(exc.value)
    bad = tmp_path / "val.jsonl"
    bad.write_text(
        json.dumps(
            {"answer": "dog", "question": "what runs?", "video_id": "video1", "answer_type": "what"}
        )
        + "\n"
        + json.dumps({"answer": "cat", "video_id": "video1", "answer_type": "what"})
        + "\n"
    )
    with pytest.raises(DataError) as exc:
        load_msrvtt_qa(bad, ans2label)
    assert f"{bad}:2" in _one_line(exc) and "'question'" in str(exc.value)
    vocabulary = tmp_path / "ans2label.json"
    vocabulary.write_text(json.dumps(["dog", "cat"]))
    bad.write_text(
        json.dumps({"answer": "dog", "question": "?", "video_id": "v", "answer_type": "what"})
    )
    with pytest.raises(DataError, match="ans2label.json: expected a JSON object"):
        load_msrvtt_qa(bad, vocabulary)
