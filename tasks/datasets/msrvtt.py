"""MSR-VTT and MSRVTT-QA annotation files (METHODS.md §6.1, §4.9) read into plain Python types.

The same loaders read the real files and the embedded synthetic benchmark (synthvtt), which is
written in these formats.
"""

from __future__ import annotations

import csv
from pathlib import Path

from harness.data_types import VideoTextPairs
from harness.errors import DataError
from tasks.datasets.annotations import (
    DatasetEntry,
    caption_text,
    check_split,
    choose,
    open_text,
    pairs_from_items,
    parse_json,
    read_json,
    require_file,
)

TITLE = "MSR-VTT"
QA_TITLE = "MSRVTT-QA"
RETRIEVAL_SOURCE = "it comes from CLIP4Clip's msrvtt_data.zip"
QA_SOURCE = "it comes with the EMCL-QA annotations, video_question_answering/data/MSRVTT"
JSFUSION_COLUMNS = ("key", "vid_key", "video_id", "sentence")
# Whether the test csv of each ``msrvtt.test_split`` holds the test captions (JSFusion: one
# caption per video) or lists videos whose json captions are all evaluated (multi-sentence).
CAPTIONS_IN_TEST_CSV = {"1k-A": True, "full": False}
QA_FIELDS = ("answer", "question", "video_id", "answer_type")


def load_msrvtt_pairs(
    root: Path,
    split: str,
    video_root: Path | None = None,
    train_csv: str = "MSRVTT_train.9k.csv",
    test_csv: str = "MSRVTT_JSFUSION_test.csv",
    data_json: str = "MSRVTT_data.json",
    captions_in_csv: bool | None = None,
) -> VideoTextPairs:
    """Caption-video pairs of one MSR-VTT split from the annotation files in ``root``.

    ``split="train"``: every sentence of ``data_json`` whose video is listed in ``train_csv``, in
    json order (the "expanded sentences" mode); one video entry per distinct video, in order of
    first appearance. ``split="test"`` with ``captions_in_csv``: ``test_csv`` is in JSFusion
    format (key, vid_key, video_id, sentence) and gives its rows, caption i <-> video i; without
    it, ``test_csv`` lists videos in a video_id column (``MSRVTT_test.full.csv``,
    ``MSRVTT_val.full.csv``) and gives every json sentence of its videos as for training, several
    captions per video (multi-sentence evaluation); None: JSFusion when it has a sentence column.
    Videos are ``{video_root or root/"videos"}/{id}.mp4``, or ``{id}.webm`` where only that
    exists. Raises a one-line DataError for a missing or malformed annotation file (missing
    column or key, empty caption, a video listed twice) and ValueError for another ``split``.
    """
    root = Path(root)
    videos_dir = Path(video_root) if video_root is not None else root / "videos"
    if split == "train":
        items = _json_sentences(root / train_csv, root / data_json)
    elif split == "test":
        header, rows = _read_csv(root / test_csv, ("video_id",))
        if captions_in_csv is None:
            captions_in_csv = "sentence" in header
        if captions_in_csv:
            return _jsfusion_pairs(root / test_csv, header, rows, videos_dir)
        items = _json_sentences(root / test_csv, root / data_json)
    else:
        raise ValueError(f"MSR-VTT split must be 'train' or 'test', got {split!r}")
    paths = {video: video_file(videos_dir, video) for video, _ in items}
    return pairs_from_items(items, paths)


def load_video_ids(path: Path) -> list[str]:
    """The ``video_id`` column of a split csv (``MSRVTT_train.9k.csv`` and the like), in order."""
    return [row["video_id"] for row in _read_csv(Path(path), ("video_id",))[1]]


def video_file(videos_dir: Path, video_id: str) -> Path:
    """``videos_dir/{video_id}.mp4``, or the ``.webm`` file when only that one exists."""
    mp4 = videos_dir / f"{video_id}.mp4"
    webm = videos_dir / f"{video_id}.webm"
    return webm if not mp4.exists() and webm.exists() else mp4


def load_qa_questions(path_jsonl: Path) -> list[dict]:
    """MSRVTT-QA questions of one jsonl file, in file order, all answers kept (in vocabulary or
    not): dicts with at least the keys answer, question, video_id and answer_type. Raises a
    one-line DataError for a missing file or a malformed line."""
    questions = []
    with open_text(Path(path_jsonl), QA_TITLE, QA_SOURCE) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            item = parse_json(line, f"{path_jsonl}:{lineno}")
            for field in QA_FIELDS:
                if not isinstance(item, dict) or field not in item:
                    raise DataError(f"{path_jsonl}:{lineno}: missing key {field!r}")
            questions.append(item)
    return questions


def load_answer_vocabulary(ans2label_path: Path) -> dict[str, int]:
    """The answer vocabulary ``{answer: label}`` of ``train_ans2label.json`` (one-line errors for
    a missing file or one that is not a JSON object of string -> int)."""
    ans2label = read_json(Path(ans2label_path), QA_TITLE, QA_SOURCE)
    if not isinstance(ans2label, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in ans2label.items()
    ):
        raise DataError(f"{ans2label_path}: expected a JSON object mapping answer -> int label")
    return ans2label


def load_msrvtt_qa(path_jsonl: Path, ans2label_path: Path) -> tuple[list[dict], dict[str, int]]:
    """MSRVTT-QA questions of ``path_jsonl`` (:func:`load_qa_questions`) and the vocabulary of
    ``ans2label_path`` (:func:`load_answer_vocabulary`)."""
    require_file(Path(ans2label_path), QA_TITLE, QA_SOURCE)
    return load_qa_questions(path_jsonl), load_answer_vocabulary(ans2label_path)


def _json_sentences(ids_csv: Path, data_json: Path) -> list[tuple[str, str]]:
    """(video_id, caption) of every json sentence whose video ``ids_csv`` lists, in json order."""
    wanted = set(load_video_ids(ids_csv))
    data = read_json(data_json, TITLE, RETRIEVAL_SOURCE)
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise DataError(f"{data_json}: missing key 'sentences' (a list of captions)")
    items = []
    for n, sentence in enumerate(data["sentences"]):
        for key in ("video_id", "caption"):
            if not isinstance(sentence, dict) or key not in sentence:
                raise DataError(f"{data_json}: sentences[{n}] has no key {key!r}")
        if sentence["video_id"] in wanted:
            video = sentence["video_id"]
            items.append((video, caption_text(sentence["caption"], data_json, video)))
    if not items:
        raise DataError(f"{data_json}: no sentence belongs to a video listed in {ids_csv}")
    return items


def _jsfusion_pairs(
    test_csv: Path, header: list[str], rows: list[dict[str, str]], videos_dir: Path
) -> VideoTextPairs:
    for column in JSFUSION_COLUMNS:
        if column not in header:
            raise DataError(
                f"{test_csv}: missing column {column!r}: a test of one caption per video reads "
                f"its captions from the csv (expected header {','.join(JSFUSION_COLUMNS)})"
            )
    video_ids = [row["video_id"] for row in rows]
    return VideoTextPairs(
        video_ids=video_ids,
        video_paths=[video_file(videos_dir, v) for v in video_ids],
        captions=[caption_text(row["sentence"], test_csv, row["video_id"]) for row in rows],
        caption_video=list(range(len(rows))),
    )


def _read_csv(path: Path, columns: tuple[str, ...]) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of the MSR-VTT csv ``path``, which must have ``columns`` (one-line
    DataErrors for a missing or malformed file)."""
    with open_text(path, TITLE, RETRIEVAL_SOURCE, newline="") as f:
        reader = csv.DictReader(f)
        try:
            header = list(reader.fieldnames or [])
            rows = list(reader)
        except csv.Error as exc:  # e.g. a field over the csv module's size limit
            raise DataError(f"{path}:{reader.line_num}: not a valid csv file ({exc})") from None
    for column in columns:
        if column not in header:
            raise DataError(
                f"{path}: missing column {column!r} (expected header {','.join(columns)})"
            )
    for lineno, row in enumerate(rows, start=2):
        if any(row[c] is None for c in header):
            raise DataError(f"{path}:{lineno}: row has fewer fields than the header")
    _check_unique_videos(path, rows)
    return header, rows


def _check_unique_videos(path: Path, rows: list[dict[str, str]]) -> None:
    """A one-line DataError naming ``path`` and the line when a row names the video of an earlier
    row: a split lists each video once, and a repeated test row would change the protocol (one
    more query, or a gallery video counted twice)."""
    first_line: dict[str, int] = {}
    for lineno, row in enumerate(rows, start=2):
        video = row["video_id"]
        if video in first_line:
            earlier = first_line[video]
            what = (
                f"repeats line {earlier} (video {video!r})"
                if row == rows[earlier - 2]
                else f"lists video {video!r} again (first on line {earlier})"
            )
            raise DataError(
                f"{path}:{lineno}: {what}; a split lists each video once: remove one of the rows"
            )
        first_line[video] = lineno


class MSRVTT(DatasetEntry):
    """The ``msrvtt`` dataset entry: expanded training pairs of the ``msrvtt.train_split`` list
    (9k, 7k or full) and the ``msrvtt.test_split`` test (1k-A: JSFusion, one caption per video;
    full: 2,990 videos with all their json captions, multi-sentence).

    Reads ``data.root`` (MSRVTT_data.json and the csv files of CLIP4Clip's msrvtt_data.zip) and
    ``data.video_root`` (default ``<root>/videos``); file names come from the ``msrvtt`` section.
    Split ``val`` is the 1k-A test for ``test_split: 1k-A`` (as in the reference repos) and
    ``MSRVTT_val.full.csv`` for ``full``.
    """

    section = "msrvtt"
    title = TITLE
    contents = "MSRVTT_data.json and the MSR-VTT csv files"

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        train, test = self.options["train_split"], self.options["test_split"]
        self.csv_of = {
            "train": choose("msrvtt.train_split", train, self.options["train_csv"]),
            "val": choose("msrvtt.test_split", test, self.options["val_csv"]),
            "test": choose("msrvtt.test_split", test, self.options["test_csv"]),
        }
        self.captions_in_csv = CAPTIONS_IN_TEST_CSV.get(test)

    def pairs(self, split: str) -> VideoTextPairs:
        """Caption-video pairs of ``split`` (train, val or test)."""
        check_split(split, TITLE)
        pairs = load_msrvtt_pairs(
            self.root,
            "train" if split == "train" else "test",
            self.video_root,
            train_csv=self.csv_of["train"],
            test_csv=self.csv_of[split],
            data_json=self.options["data_json"],
            captions_in_csv=self.captions_in_csv,
        )
        one_to_one = pairs.caption_video == list(range(pairs.num_videos))
        kind = "one caption per video" if one_to_one else "every json caption of each video"
        self.note(split, f"{self.csv_of[split]}, {pairs.num_videos} videos, {kind}")
        return pairs

    def captioning_pairs(self, split: str) -> VideoTextPairs:
        """Every json caption of the videos of the standard captioning ``split``: train =
        MSRVTT_train.full.csv (6,513 videos), val = MSRVTT_val.full.csv (497), test =
        MSRVTT_test.full.csv (2,990), whatever ``msrvtt.train_split`` / ``test_split`` say."""
        check_split(split, TITLE)
        options = {"train": "train_csv", "val": "val_csv", "test": "test_csv"}[split]
        csv_name = self.options[options]["full"]
        pairs = load_msrvtt_captions(
            self.root, csv_name, self.video_root, self.options["data_json"]
        )
        self.note(split, f"captioning: {csv_name}, {pairs.num_videos} videos, all json captions")
        return pairs


def load_msrvtt_captions(
    root: Path, ids_csv: str, video_root: Path | None = None, data_json: str = "MSRVTT_data.json"
) -> VideoTextPairs:
    """Every ``data_json`` sentence of the videos listed in the ``video_id`` column of ``ids_csv``
    (json order; videos in order of first appearance), e.g. the references of captioning."""
    root = Path(root)
    videos_dir = Path(video_root) if video_root is not None else root / "videos"
    items = _json_sentences(root / ids_csv, root / data_json)
    return pairs_from_items(items, {video: video_file(videos_dir, video) for video, _ in items})
