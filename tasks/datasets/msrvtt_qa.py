"""The ``msrvtt_qa`` dataset entry: MSRVTT-QA questions on MSR-VTT videos (METHODS.md §4.9)."""

from __future__ import annotations

from pathlib import Path

from tasks.datasets.annotations import DatasetEntry
from tasks.datasets.msrvtt import QA_TITLE, load_answer_vocabulary, load_qa_questions, video_file


class MSRVTTQA(DatasetEntry):
    """MSRVTT-QA for the QA task (the ``QADataset`` protocol of tasks/qa.py): questions per
    split, the answer vocabulary, video files.

    Reads the jsonl files and ``train_ans2label.json`` named in the ``msrvtt_qa`` section from
    ``data.root``; videos are ``{data.video_root or <root>/videos}/{video_id}.mp4`` (``.webm``
    where only that exists), the MSR-VTT video files.
    """

    section = "msrvtt_qa"
    title = QA_TITLE
    contents = "train.jsonl, val.jsonl, test.jsonl and train_ans2label.json"

    def qa_questions(self, split: str) -> list[dict[str, str]]:
        """The questions of ``split`` (train, val or test) in file order, every answer kept (in
        the vocabulary or not): dicts with the keys ``question``, ``answer``, ``video_id``
        ("videoN") and ``answer_type`` ("what", "who", "how", "when", "where")."""
        return load_qa_questions(self.split_file("questions", split))

    def qa_vocabulary(self) -> dict[str, int]:
        """``{answer: label}``: the 1,500 training answers, labels 0..1499 (classifier outputs)."""
        return load_answer_vocabulary(self.root / self.options["answer_vocabulary"])

    def video_path(self, video_id: str) -> Path:
        """The video file of ``video_id`` (not checked: the clip loader reports a missing one)."""
        return video_file(self.video_root, video_id)
