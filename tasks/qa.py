"""Open-ended video question answering with EMCL-QA (METHODS §4.9): a classifier over the answer
vocabulary on pooled question and video features, trained with an EMCL contrastive loss beside
the answer loss. Evaluation reports accuracy over all questions and over in-vocabulary ones,
per answer type, next to majority-answer baselines.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from harness import distributed
from harness.config import Config, ConfigError
from harness.data import CaptionDataset, PairDataset, VideoDataset
from harness.data_types import VideoTextPairs
from harness.distributed import all_gather_with_grad
from harness.emcl import EMCL
from harness.encoder import VideoTextEncoder
from harness.metrics import qa_accuracy
from harness.registry import DATASETS
from harness.retrieval import MAX_LOGIT_SCALE, symmetric_cross_entropy
from harness.task import EvalOutput, Task
from harness.temporal import build_aggregator, init_from_clip_text, init_weights
from tasks.common import (
    build_encoder_for,
    build_text_tokenizer,
    clip_source,
    drop_unreadable,
    train_dataloader,
)
from tasks.retrieval import ShardedBatches

TOP_K_SAMPLES = 5
QA_METHOD = "emcl"


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


class EpochShuffle(Sampler[int]):
    """A random order of ``size`` items drawn from (seed, epoch): the same on every process and
    after a resume."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order ``__iter__`` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist())


def _weight_head(width: int) -> nn.Sequential:
    """The reference's ``t_w`` / ``v_w``: one attention logit per position."""
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))


def attention_pool(features: torch.Tensor, mask: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """features (B, N, D), mask (B, N) -> (B, D): ``sum_i softmax_i(head(x_i)) mask_i x_i``.

    The softmax runs over all N positions, padded ones included, and their share is then
    dropped (EMCL-QA's masking, METHODS §10.12).
    """
    weights = torch.softmax(head(features).squeeze(-1).float(), dim=-1)
    masked = features * mask.unsqueeze(-1).to(features.dtype)
    return torch.einsum("bnd,bn->bd", masked.float(), weights)


class EMCLQA(nn.Module):
    """EMCL-QA on the shared encoder: question tokens and temporally aggregated frames, attention
    pooling, ``[v_proj(v); t_proj(q)]`` -> dropout -> MLP over the answers.

    ``config["method"]`` gives the temporal module (``agg_module``, ``temporal_layers``), built
    with the CLIP initialisation trick; ``config["qa"]`` the head widths, dropout and the EMCL
    contrastive loss; ``config["train"]["gather_grad"]`` the all-gather backward.
    """

    def __init__(self, encoder: VideoTextEncoder, num_answers: int, config: Config) -> None:
        super().__init__()
        method, qa = config["method"], config["qa"]
        width = encoder.embed_dim
        text_config = encoder.clip.config.text_config
        self.encoder = encoder
        self.gather_grad = config["train"]["gather_grad"]
        self.aggregator = build_aggregator(
            method["agg_module"],
            width=width,
            heads=text_config.num_attention_heads,
            num_layers=method["temporal_layers"],
            max_positions=text_config.max_position_embeddings,
        )
        init_from_clip_text(self.aggregator, encoder.clip)
        proj = qa["proj_dim"] or 4 * width
        hidden = qa["classifier_dim"] or 4 * proj
        self.mean_proj = nn.Linear(width, width)
        self.t_w = _weight_head(width)
        self.v_w = _weight_head(width)
        self.v_proj = nn.Linear(width, proj)
        self.t_proj = nn.Linear(width, proj)
        self.dropout = nn.Dropout(qa["dropout"])
        self.classifier = nn.Sequential(
            nn.Linear(2 * proj, hidden), nn.ReLU(), nn.Linear(hidden, num_answers)
        )
        for head in (self.mean_proj, self.t_w, self.v_w, self.v_proj, self.t_proj):
            head.apply(init_weights)
        self.classifier.apply(init_weights)
        self.emcl = EMCL(**qa["emcl"])
        self.contrastive_weight = qa["contrastive_weight"]

    def question_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, L) -> projected features of every token (B, L, D)."""
        return self.encoder.encode_text(ids, mask).words

    def video_frames(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """pixels (B, F, 3, H, W), mask (B, F) -> ``mean_proj(T(V + pos)) + V`` (B, F, D)."""
        frames = self.encoder.encode_frames(pixels).cls
        # Our temporal modules add the residual themselves; the reference puts mean_proj before it.
        return self.mean_proj(self.aggregator(frames, video_mask) - frames) + frames

    def encode_question(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, L) -> pooled question feature q (B, D)."""
        return attention_pool(self.question_tokens(ids, mask), mask, self.t_w)

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """pixels (B, F, 3, H, W), mask (B, F) -> pooled video feature v (B, D)."""
        return attention_pool(self.video_frames(pixels, video_mask), video_mask, self.v_w)

    def answer_logits(
        self, video: torch.Tensor, question: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """v, q (B, D) -> answer logits (B, num_answers) and ``[v_proj(v); t_proj(q)]`` (B, 2P)."""
        joint = torch.cat((self.v_proj(video), self.t_proj(question)), dim=-1)
        return self.classifier(self.dropout(joint)), joint

    def contrastive_loss(self, joint: torch.Tensor) -> torch.Tensor:
        """The EMCL loss on ``joint`` (B, 2P) = ``[v_proj(v); t_proj(q)]`` rows of one batch: the
        2B projected rows go through one EM step, then the symmetric cross-entropy of
        ``logit_scale * cos(q_i, v_j)`` with question i matching video i."""
        video, question = joint.chunk(2, dim=-1)
        mixed = self.emcl(torch.cat((video, question), dim=0))
        video, question = mixed.chunk(2, dim=0)
        video = video / video.norm(dim=-1, keepdim=True)
        question = question / question.norm(dim=-1, keepdim=True)
        scale = self.encoder.logit_scale.exp()
        return symmetric_cross_entropy(scale * question @ video.t())

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of a local batch (ids, mask, pixels, video_mask, label): token and frame
        features are gathered over processes, so both losses see the global batch."""
        tokens = self.question_tokens(batch["ids"], batch["mask"])
        frames = self.video_frames(batch["pixels"], batch["video_mask"])
        tokens, mask, frames, video_mask, labels = (
            all_gather_with_grad(x, self.gather_grad)
            for x in (tokens, batch["mask"], frames, batch["video_mask"], batch["label"])
        )
        question = attention_pool(tokens, mask, self.t_w)
        video = attention_pool(frames, video_mask, self.v_w)
        logits, joint = self.answer_logits(video, question)
        loss = nn.functional.cross_entropy(logits.float(), labels)
        return loss + self.contrastive_weight * self.contrastive_loss(joint.float())

    def clamp_logit_scale(self) -> None:
        """Keep the learnt log-scale at most ln(100) (after every optimizer step)."""
        with torch.no_grad():
            self.encoder.logit_scale.clamp_(max=MAX_LOGIT_SCALE)


class QATask(Task):
    """Trains EMCL-QA on a dataset entry that implements :class:`QADataset` and evaluates it."""

    name = "qa"

    def setup(self) -> None:
        cfg = self.config
        if cfg["method"]["name"] != QA_METHOD:
            raise ConfigError(
                f"task qa trains EMCL-QA only: drop --method {cfg['method']['name']} "
                f"(or use --method {QA_METHOD})"
            )
        for key in ("proj_dim", "classifier_dim"):
            value = cfg["qa"][key]
            if value is not None and not (isinstance(value, int) and value > 0):
                raise ConfigError(f"config key 'qa.{key}' must be null or a positive int")
        self.dataset = DATASETS.get(cfg["dataset"])(cfg)
        if not isinstance(self.dataset, QADataset):
            raise ConfigError(
                f"dataset {cfg['dataset']!r} has no question annotations; use a QA dataset "
                "(e.g. --dataset synthvtt or msrvtt_qa)"
            )
        self.vocabulary = self.dataset.qa_vocabulary()
        self.answers = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        if [self.vocabulary[a] for a in self.answers] != list(range(len(self.answers))):
            raise ValueError(
                f"answer vocabulary of dataset {cfg['dataset']!r} must number its answers "
                "0..n-1 without gaps (check train_ans2label.json)"
            )
        self.source = clip_source(cfg, self.dataset.folder)
        train_items = self.dataset.qa_questions("train")
        in_vocab = [q for q in train_items if q["answer"] in self.vocabulary]
        self.train_out_of_vocab = len(train_items) - len(in_vocab)
        self.train_split = QASplit.build(in_vocab, self.dataset.video_path)
        self.test_split = QASplit.build(
            self.dataset.qa_questions(cfg["eval"]["split"]), self.dataset.video_path
        )
        self.skipped: list[dict[str, str]] = []
        self.tokenizer = build_text_tokenizer(cfg, [q["question"] for q in train_items])

    def build_model(self) -> EMCLQA:
        encoder = build_encoder_for(self.config, self.tokenizer)
        return EMCLQA(encoder, len(self.answers), self.config)

    def usable(self, split: QASplit) -> QASplit:
        """``split`` without the questions on unreadable videos under
        ``data.on_bad_video=skip`` (else as is)."""
        _, skipped = drop_unreadable(self.config, split.pairs, self.source)
        if not skipped:
            return split
        self.skipped += skipped
        bad = {s["path"] for s in skipped}
        paths = split.pairs.video_paths
        kept = [
            q
            for q, v in zip(split.items, split.pairs.caption_video, strict=True)
            if str(paths[v]) not in bad
        ]
        return QASplit.build(kept, self.dataset.video_path)

    def train_loader(self, per_process_batch: int) -> tuple[DataLoader, Sampler]:
        split = self.train_split = self.usable(self.train_split)
        pairs = PairDataset(
            split.pairs, self.tokenizer, self.config["data"]["max_words"], self.source
        )
        labels = [self.vocabulary[a] for a in split.field("answer")]
        sampler = EpochShuffle(len(labels), self.config["seed"])
        return train_dataloader(
            self.config, QATrainDataset(pairs, labels), sampler, per_process_batch
        ), sampler

    def after_step(self, model: EMCLQA) -> None:
        model.clamp_logit_scale()

    def describe(self) -> dict[str, Any]:
        data = self.config["data"]
        return {
            "split": self.config["eval"]["split"],
            "model": "EMCL-QA",
            "answers": len(self.answers),
            "max_frames": data["max_frames"],
            "max_words": data["max_words"],
            "video_framerate": data["video_framerate"],
            "image_size": data["image_size"],
            "frame_sampling": "uniform",
            "encoder": self.config["encoder"]["pretrained"]
            or f"random:{self.config['encoder']['size']}",
            "accuracy": "all questions, out-of-vocabulary answers count as wrong",
            "accuracy_in_vocab": "questions whose answer is in the vocabulary (EMCL-QA reference)",
        }

    def evaluate(self, model: EMCLQA) -> EvalOutput:
        split = self.test_split = self.usable(self.test_split)
        if not split.items:
            raise ValueError(
                f"split {self.config['eval']['split']!r} of dataset {self.config['dataset']!r} "
                "has no question to evaluate (none in the file, or all their videos skipped)"
            )
        pairs = split.pairs
        batch = self.config["eval"]["batch_size"]
        device = next(model.parameters()).device
        video = self._sharded(
            VideoDataset(pairs.video_paths, self.source),
            lambda b: {"v": model.encode_video(b["pixels"], b["video_mask"])},
            device,
        )["v"]
        question = self._sharded(
            CaptionDataset(pairs.captions, self.tokenizer, self.config["data"]["max_words"]),
            lambda b: {"q": model.encode_question(b["ids"], b["mask"])},
            device,
        )["q"]
        video_of = torch.tensor(pairs.caption_video, dtype=torch.long)
        k = min(TOP_K_SAMPLES, len(self.answers))

        def top_answers(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            rows = b["index"].cpu()
            logits, _ = model.answer_logits(
                video[video_of[rows]].to(device), question[rows].to(device)
            )
            return {"top": logits.float().topk(k, dim=-1).indices}

        indices = (
            {"index": torch.tensor(rows)} for rows in ShardedBatches(len(split.items), batch)
        )
        top = _gather_sharded(indices, top_answers, len(split.items), device)["top"]
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
            extra={"baselines": baselines, "skipped_videos": self.skipped},
            notes=self._notes(scores, baselines),
        )

    def _sharded(
        self, dataset: Dataset, encode: Callable, device: torch.device
    ) -> dict[str, torch.Tensor]:
        loader = DataLoader(
            dataset,
            batch_sampler=ShardedBatches(len(dataset), self.config["eval"]["batch_size"]),
            num_workers=self.config["data"]["num_workers"],
        )
        return _gather_sharded(loader, encode, len(dataset), device)

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
        if self.skipped:
            notes.append(f"skipped {len(self.skipped)} unreadable videos (listed in results.json)")
        return notes


def _gather_sharded(
    batches: Iterable[dict[str, torch.Tensor]],
    compute: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    total: int,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Run ``compute`` on this process's batches (each with an ``index`` (b,) entry) and collect
    its outputs of every process, ordered by index: ``{name: (total, ...)}`` on every process."""
    index, parts = [], []
    for batch in batches:
        index.append(batch["index"].cpu())
        outputs = compute({k: v.to(device) for k, v in batch.items()})
        parts.append({k: _to_cpu(v) for k, v in outputs.items()})
    if parts:
        local = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        local_index = torch.cat(index)
    else:
        local, local_index = {}, torch.zeros(0, dtype=torch.long)
    return distributed.gather_by_index(local_index, local, total)


def _to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().float().cpu() if tensor.is_floating_point() else tensor.detach().cpu()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
