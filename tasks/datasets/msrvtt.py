"""MSR-VTT and MSRVTT-QA annotation files (METHODS.md §6.1, §4.9) read into plain Python types.

The same loaders read the real files and the embedded synthetic benchmark (synthvtt), which is
written in these formats.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from harness.data_types import VideoTextPairs

RETRIEVAL_SOURCE = 'it comes from CLIP4Clip\'s msrvtt_data.zip; see README section "Datasets"'
QA_SOURCE = 'it comes with the MSRVTT-QA annotations; see README section "Datasets"'
TEST_COLUMNS = ("key", "vid_key", "video_id", "sentence")
QA_FIELDS = ("answer", "question", "video_id", "answer_type")


def load_msrvtt_pairs(
    root: Path,
    split: str,
    video_root: Path | None = None,
    train_csv: str = "MSRVTT_train.9k.csv",
    test_csv: str = "MSRVTT_JSFUSION_test.csv",
    data_json: str = "MSRVTT_data.json",
) -> VideoTextPairs:
    """Caption-video pairs of one MSR-VTT split from the annotation files in ``root``.

    ``split="train"``: every sentence of ``data_json`` whose video is listed in ``train_csv``, in
    json order (the "expanded sentences" mode); one video entry per distinct video, in order of
    first appearance. ``split="test"``: the rows of ``test_csv`` (columns key, vid_key, video_id,
    sentence), caption i <-> video i. Videos are ``{video_root or root/"videos"}/{id}.mp4``, or
    ``{id}.webm`` where only that exists. Raises FileNotFoundError for a missing annotation file
    and ValueError for a malformed one (missing column or key, empty caption).
    """
    root = Path(root)
    videos_dir = Path(video_root) if video_root is not None else root / "videos"
    if split == "train":
        ids, captions = _train_sentences(root / train_csv, root / data_json)
        first_seen: dict[str, int] = {}
        caption_video = [first_seen.setdefault(v, len(first_seen)) for v in ids]
        video_ids = list(first_seen)
    elif split == "test":
        video_ids, captions = _test_sentences(root / test_csv)
        caption_video = list(range(len(video_ids)))
    else:
        raise ValueError(f"MSR-VTT split must be 'train' or 'test', got {split!r}")
    return VideoTextPairs(
        video_ids=video_ids,
        video_paths=[video_file(videos_dir, v) for v in video_ids],
        captions=captions,
        caption_video=caption_video,
    )


def load_video_ids(path: Path) -> list[str]:
    """The ``video_id`` column of a split csv (``MSRVTT_train.9k.csv`` and the like), in order."""
    return [row["video_id"] for row in _read_csv(Path(path), ("video_id",))]


def video_file(videos_dir: Path, video_id: str) -> Path:
    """``videos_dir/{video_id}.mp4``, or the ``.webm`` file when only that one exists."""
    mp4 = videos_dir / f"{video_id}.mp4"
    webm = videos_dir / f"{video_id}.webm"
    return webm if not mp4.exists() and webm.exists() else mp4


def load_msrvtt_qa(path_jsonl: Path, ans2label_path: Path) -> tuple[list[dict], dict[str, int]]:
    """MSRVTT-QA questions and the answer vocabulary.

    ``path_jsonl`` holds one JSON object per line with the fields answer, question, video_id and
    answer_type; ``ans2label_path`` a JSON object answer -> label. Returns the question dicts (in
    file order, all answers kept, in vocabulary or not) and the vocabulary. Raises
    FileNotFoundError for a missing file and ValueError for a malformed line or vocabulary.
    """
    path_jsonl, ans2label_path = Path(path_jsonl), Path(ans2label_path)
    _require(path_jsonl, "MSRVTT-QA", QA_SOURCE)
    _require(ans2label_path, "MSRVTT-QA", QA_SOURCE)
    questions = []
    with path_jsonl.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            item = _parse_json(line, f"{path_jsonl}:{lineno}")
            for field in QA_FIELDS:
                if not isinstance(item, dict) or field not in item:
                    raise ValueError(f"{path_jsonl}:{lineno}: missing key {field!r}")
            questions.append(item)
    ans2label = _parse_json(ans2label_path.read_text(encoding="utf-8"), str(ans2label_path))
    if not isinstance(ans2label, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in ans2label.items()
    ):
        raise ValueError(f"{ans2label_path}: expected a JSON object mapping answer -> int label")
    return questions, ans2label


def _train_sentences(train_csv: Path, data_json: Path) -> tuple[list[str], list[str]]:
    train_ids = set(load_video_ids(train_csv))
    _require(data_json, "MSR-VTT annotation", RETRIEVAL_SOURCE)
    data = _parse_json(data_json.read_text(encoding="utf-8"), str(data_json))
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise ValueError(f"{data_json}: missing key 'sentences' (a list of captions)")
    ids, captions = [], []
    for n, sentence in enumerate(data["sentences"]):
        for key in ("video_id", "caption"):
            if not isinstance(sentence, dict) or key not in sentence:
                raise ValueError(f"{data_json}: sentences[{n}] has no key {key!r}")
        if sentence["video_id"] in train_ids:
            ids.append(sentence["video_id"])
            captions.append(_caption(sentence["caption"], data_json, sentence["video_id"]))
    if not ids:
        raise ValueError(f"{data_json}: no sentence belongs to a video listed in {train_csv}")
    return ids, captions


def _test_sentences(test_csv: Path) -> tuple[list[str], list[str]]:
    rows = _read_csv(test_csv, TEST_COLUMNS)
    return (
        [row["video_id"] for row in rows],
        [_caption(row["sentence"], test_csv, row["video_id"]) for row in rows],
    )


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    _require(path, "MSR-VTT annotation", RETRIEVAL_SOURCE)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        for column in columns:
            if column not in header:
                raise ValueError(
                    f"{path}: missing column {column!r} (expected header {','.join(columns)})"
                )
        rows = list(reader)
    for lineno, row in enumerate(rows, start=2):
        if any(row[c] is None for c in columns):
            raise ValueError(f"{path}:{lineno}: row has fewer fields than the header")
    return rows


def _caption(text: Any, path: Path, video_id: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{path}: empty caption for video {video_id!r}")
    return text


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _require(path: Path, what: str, source: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path} ({source})")


class MSRVTT:
    """The ``msrvtt`` dataset entry: 9k expanded training pairs, JSFusion 1k-A test pairs.

    Reads ``data.root`` (MSRVTT_data.json and the csv files of CLIP4Clip's msrvtt_data.zip) and
    ``data.video_root`` (default ``<root>/videos``); file names come from the ``msrvtt`` section.
    """

    def __init__(self, config: dict) -> None:
        if not config["data"]["root"]:
            raise ValueError(
                "dataset msrvtt needs --data-root DIR (the folder with MSRVTT_data.json and the "
                'MSR-VTT csv files; see README section "Datasets")'
            )
        self.root = Path(config["data"]["root"])
        self.video_root = (
            Path(config["data"]["video_root"]) if config["data"]["video_root"] else None
        )
        self.files = config["msrvtt"]

    def pairs(self, split: str) -> VideoTextPairs:
        """Caption-video pairs of ``split`` (train or test)."""
        return load_msrvtt_pairs(self.root, split, self.video_root, **self.files)

    def notes(self) -> list[str]:
        """Lines shown under the results table."""
        return []
