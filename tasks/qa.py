"""Open-ended video question answering (METHODS §4.9): a registered QA method (see
:mod:`harness.qa`) classifies each question over the answer vocabulary from a video feature and a
question feature, trained with a contrastive term beside the answer loss. Evaluation reports
accuracy over all questions and over in-vocabulary ones, per answer type, next to
majority-answer baselines.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader, Dataset

from harness.data import CaptionDataset, PairDataset, VideoDataset
from harness.data_types import VideoTextPairs
from harness.encoder import VideoTextEncoder
from harness.errors import DataError
from harness.evaluation import IndexDataset, sharded_map
from harness.metrics import qa_accuracy
from harness.qa import AnswerHead, QAModel
from harness.samplers import EpochShuffle
from harness.task import EvalOutput
from tasks.common import VideoTask, method_settings, train_dataloader

TOP_K_SAMPLES = 5


@runtime_checkable
class QADataset(Protocol):
    """What the QA task needs from a dataset entry (MSRVTT-QA conventions); ``folder`` is where
    the frame cache of ``run.py --prepare`` lives."""

    folder: Path

    def qa_questions(self, split: str) -> list[dict[str, str]]:
        """The questions of ``split``: dicts with answer, question, video_id and answer_type."""
        ...

    def qa_vocabulary(self) -> dict[str, int]:
        """The answer vocabulary: answer -> label, labels 0..n-1 (``train_ans2label.json``)."""
        ...

    def video_path(self, video_id: str) -> Path:
        """The video file of ``video_id``."""
        ...


@dataclasses.dataclass(frozen=True)
class QASplit:
    """The questions of one split: ``pairs`` holds the question texts as captions with their
    videos (each video once); ``items`` the question dicts in the same order."""

    items: list[dict[str, str]]
    pairs: VideoTextPairs

    @classmethod
    def build(cls, items: list[dict[str, str]], video_path: Callable[[str], Path]) -> QASplit:
        """Index ``items`` (MSRVTT-QA dicts) by video, videos in order of first appearance."""
        first_seen: dict[str, int] = {}
        caption_video = [first_seen.setdefault(q["video_id"], len(first_seen)) for q in items]
        pairs = VideoTextPairs(
            video_ids=list(first_seen),
            video_paths=[video_path(v) for v in first_seen],
            captions=[q["question"] for q in items],
            caption_video=caption_video,
        )
        return cls(items=items, pairs=pairs)

    def field(self, key: str) -> list[str]:
        """One field (answer, answer_type, ...) of every question, in order."""
        return [q[key] for q in self.items]


class QATrainDataset(Dataset):
    """Training items: question i tokenized with its clip (``pairs``) and its answer ``label``."""

    def __init__(self, pairs: PairDataset, labels: list[int]) -> None:
        self.pairs = pairs
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.pairs[index]
        item["label"] = self.labels[index]
        return item


class QATask(VideoTask):
    """Trains a registered QA method on a dataset entry that implements :class:`QADataset` and
    evaluates it."""

    name = "qa"
    main_metric = ("accuracy",)
    model_keys = (*VideoTask.model_keys, "qa.proj_dim", "qa.classifier_dim")
    no_zero_shot = (
        "QA answers come from a trained answer classifier, so QA has no zero-shot evaluation: "
        "pass --checkpoint RUN (a trained run folder)"
    )

    def setup(self, train: bool = True) -> None:
        cfg = self.config
        dataset = self.load_dataset(
            QADataset,
            "has no question annotations; use a QA dataset (e.g. --dataset synthvtt or msrvtt_qa)",
        )
        self.vocabulary = dataset.qa_vocabulary()
        self.answers = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        if [self.vocabulary[a] for a in self.answers] != list(range(len(self.answers))):
            raise DataError(
                f"answer vocabulary of dataset {cfg['dataset']!r} must number its answers "
                "0..n-1 without gaps (check train_ans2label.json)"
            )
        train_items = dataset.qa_questions("train")
        in_vocab = [q for q in train_items if q["answer"] in self.vocabulary]
        self.train_out_of_vocab = len(train_items) - len(in_vocab)
        self.tokenizer = self.text_tokenizer([q["question"] for q in train_items])
        train_split = QASplit.build(in_vocab, dataset.video_path)
        self.train_split = self.usable_split(train_split) if train else train_split
        test_items = dataset.qa_questions(cfg["eval"]["split"])
        self.test_split = self.usable_split(QASplit.build(test_items, dataset.video_path))
        if not self.test_split.items:
            raise DataError(
                f"split {cfg['eval']['split']!r} of dataset {cfg['dataset']!r} has no question "
                "to evaluate (none in the file, or all their videos skipped)"
            )

    def make_method(self, method_cls: type[QAModel], encoder: VideoTextEncoder) -> QAModel:
        return method_cls(
            encoder,
            len(self.answers),
            AnswerHead(**self.config["qa"]),
            self.config["train"]["gather_grad"],
            **method_settings(self.config),
        )

    def usable_split(self, split: QASplit) -> QASplit:
        """``split`` without the questions on unreadable videos under
        ``data.on_bad_video=skip`` (else as is)."""
        kept = self.usable(split.pairs)
        if kept.num_videos == split.pairs.num_videos:
            return split
        good = set(kept.video_ids)
        return QASplit.build(
            [q for q in split.items if q["video_id"] in good], self.dataset.video_path
        )

    def train_loader(self, per_process_batch: int) -> DataLoader:
        split = self.train_split
        pairs = PairDataset(
            split.pairs, self.tokenizer, self.config["data"]["max_words"], self.source
        )
        labels = [self.vocabulary[a] for a in split.field("answer")]
        sampler = EpochShuffle(len(labels), self.config["seed"])
        return train_dataloader(
            self.config, QATrainDataset(pairs, labels), sampler, per_process_batch
        )

    def evaluated_videos(self) -> list[str]:
        return list(self.test_split.pairs.video_ids)

    def describe(self) -> dict[str, Any]:
        return {
            **self.describe_clips(),
            "answers": len(self.answers),
            "max_words": self.config["data"]["max_words"],
            "accuracy": "all questions, out-of-vocabulary answers count as wrong",
            "accuracy_in_vocab": "questions whose answer is in the vocabulary (EMCL-QA reference)",
        }

    def evaluate(self, model: QAModel) -> EvalOutput:
        split = self.test_split
        pairs = split.pairs
        encode = dict(
            batch_size=self.config["eval"]["batch_size"],
            device=next(model.parameters()).device,
            num_workers=self.config["data"]["num_workers"],
        )
        video = sharded_map(
            VideoDataset(pairs.video_paths, self.source),
            lambda b: {"v": model.encode_video(b["pixels"], b["video_mask"])},
            **encode,
        )["v"]
        question = sharded_map(
            CaptionDataset(pairs.captions, self.tokenizer, self.config["data"]["max_words"]),
            lambda b: {"q": model.encode_question(b["ids"], b["mask"])},
            **encode,
        )["q"]
        video_of = torch.tensor(pairs.caption_video, dtype=torch.long)
        k = min(TOP_K_SAMPLES, len(self.answers))
        device = encode["device"]

        def top_answers(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            rows = b["index"].cpu()
            logits, _ = model.answer_logits(
                video[video_of[rows]].to(device), question[rows].to(device)
            )
            return {"top": logits.float().topk(k, dim=-1).indices}

        top = sharded_map(IndexDataset(len(split.items)), top_answers, **encode)["top"]
        predictions = [self.answers[int(label)] for label in top[:, 0]]
        answers, types = split.field("answer"), split.field("answer_type")
        scores = qa_accuracy(predictions, answers, types, self.vocabulary)
        baselines = self._baselines(answers, types)
        return EvalOutput(
            metrics={key: scores[key] for key in ("accuracy", "accuracy_in_vocab", "per_type")},
            samples=[
                {
                    "question_id": i,
                    "video_id": q["video_id"],
                    "question": q["question"],
                    "answer": q["answer"],
                    "answer_type": q["answer_type"],
                    "prediction": prediction,
                    "correct": prediction == q["answer"],
                    "in_vocab": q["answer"] in self.vocabulary,
                    "top": [self.answers[int(label)] for label in labels],
                }
                for i, (q, prediction, labels) in enumerate(
                    zip(split.items, predictions, top, strict=True)
                )
            ],
            num_samples={
                "questions": scores["num_questions"],
                "in_vocab": scores["num_in_vocab"],
                "videos": pairs.num_videos,
            },
            baselines=baselines,
            skipped_videos=self.skipped,
            notes=self._notes(scores, baselines),
        )

    def _baselines(self, answers: list[str], types: list[str]) -> dict[str, Any]:
        """Accuracy of answering every question with the most frequent training answer, overall
        and of the question's answer type."""
        train = self.train_split
        overall = Counter(train.field("answer")).most_common(1)[0][0]
        by_type: dict[str, Counter] = {}
        for answer, kind in zip(train.field("answer"), train.field("answer_type"), strict=True):
            by_type.setdefault(kind, Counter())[answer] += 1
        per_type = {kind: counts.most_common(1)[0][0] for kind, counts in by_type.items()}

        def score(predictions: list[str]) -> dict[str, Any]:
            result = qa_accuracy(predictions, answers, types, self.vocabulary)
            return {key: result[key] for key in ("accuracy", "accuracy_in_vocab", "per_type")}

        return {
            "majority_answer": {"answer": overall, **score([overall] * len(answers))},
            "majority_answer_per_type": {
                "answers": per_type,
                **score([per_type.get(kind, overall) for kind in types]),
            },
        }

    def _notes(self, scores: dict[str, Any], baselines: dict[str, Any]) -> list[str]:
        majority, typed = baselines["majority_answer"], baselines["majority_answer_per_type"]
        notes = [
            f"accuracy: all {scores['num_questions']} questions (out-of-vocabulary answers count "
            f"as wrong); accuracy_in_vocab: the {scores['num_in_vocab']} whose answer is among "
            f"the {len(self.answers)} answers (EMCL-QA reference convention)",
            f"baseline majority answer {majority['answer']!r}: accuracy "
            f"{majority['accuracy']:.2f} (in vocab {_fmt(majority['accuracy_in_vocab'])})",
            f"baseline majority answer per answer type: accuracy {typed['accuracy']:.2f} "
            f"(in vocab {_fmt(typed['accuracy_in_vocab'])})",
        ]
        if self.train_out_of_vocab:
            notes.append(
                f"{self.train_out_of_vocab} training questions have an answer outside the "
                "vocabulary and were not trained on"
            )
        return notes + self.skipped_notes()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
