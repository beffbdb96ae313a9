"""Video captioning: a registered captioning method (see :mod:`harness.captioning`) makes video
tokens that a causal transformer decoder cross-attends to, trained with teacher-forced
cross-entropy, decoded greedily or by beam search (:mod:`harness.decoding`), scored with
pycocoevalcap against every reference caption of each test video, next to a constant-caption
baseline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader

from harness.captioning import CaptioningModel
from harness.data import PairDataset, VideoDataset
from harness.data_types import VideoTextPairs
from harness.decoding import beam_search, greedy_decode
from harness.distributed import on_main_process
from harness.encoder import VideoTextEncoder
from harness.errors import DataError
from harness.evaluation import sharded_map
from harness.metrics import CaptionScores, caption_metrics, caption_scores
from harness.samplers import GroupedRoundSampler
from harness.task import EvalOutput
from tasks.common import VideoTask, method_settings, train_dataloader


@runtime_checkable
class CaptioningDataset(Protocol):
    """What the captioning task needs from a dataset entry."""

    def captioning_pairs(self, split: str) -> VideoTextPairs:
        """Every reference caption of every video of ``split`` (train, val or test)."""
        ...


def references_by_video(pairs: VideoTextPairs) -> dict[str, list[str]]:
    """``{video_id: [its captions]}`` of ``pairs``, videos and captions in their order."""
    refs: dict[str, list[str]] = {v: [] for v in pairs.video_ids}
    for caption, video in zip(pairs.captions, pairs.caption_video, strict=True):
        refs[pairs.video_ids[video]].append(caption)
    return refs


class CaptioningTask(VideoTask):
    """Trains a registered captioning method on a dataset entry that implements
    :class:`CaptioningDataset` and evaluates its captions of the ``eval.split`` videos."""

    name = "captioning"
    main_metric = ("CIDEr",)
    model_keys = (*VideoTask.model_keys, "captioning.decoder_layers", "captioning.max_len")
    no_zero_shot = (
        "captions come from a trained caption decoder, so captioning has no zero-shot "
        "evaluation: pass --checkpoint RUN (a trained run folder)"
    )

    def setup(self, train: bool = True) -> None:
        cfg = self.config
        dataset = self.load_dataset(
            CaptioningDataset, "has no captioning references; use --dataset synthvtt or msrvtt"
        )
        all_train = dataset.captioning_pairs("train")
        self.tokenizer = self.text_tokenizer(all_train.captions)
        counts = Counter(all_train.captions)
        self.constant_caption, count = counts.most_common(1)[0]
        self.constant_share = f"{count} of {all_train.num_captions}"
        self.train_pairs = self.usable(all_train) if train else all_train
        self.test_pairs = self.usable(dataset.captioning_pairs(cfg["eval"]["split"]))
        if self.test_pairs.num_videos == 0:
            raise DataError(
                f"split {cfg['eval']['split']!r} of dataset {cfg['dataset']!r} has no video to "
                "caption (all of them skipped as unreadable)"
            )

    def make_method(
        self, method_cls: type[CaptioningModel], encoder: VideoTextEncoder
    ) -> CaptioningModel:
        cap = self.config["captioning"]
        return method_cls(
            encoder,
            self.tokenizer.vocab_size,
            **method_settings(self.config),
            decoder_layers=cap["decoder_layers"],
            dropout=cap["dropout"],
            max_len=cap["max_len"],
        )

    def train_loader(self, per_process_batch: int) -> DataLoader:
        # SOT + max_len tokens: a target is at most max_len tokens, EOT included.
        length = self.config["captioning"]["max_len"] + 1
        dataset = PairDataset(self.train_pairs, self.tokenizer, length, self.source)
        # Rounds of one caption per video: a batch holds distinct videos.
        sampler = GroupedRoundSampler(self.train_pairs, self.config["seed"])
        return train_dataloader(self.config, dataset, sampler, per_process_batch)

    def generate(
        self, model: CaptioningModel, pixels: torch.Tensor, video_mask: torch.Tensor
    ) -> torch.Tensor:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> caption ids (B, max_len) by the
        configured decoder."""
        cap = self.config["captioning"]
        memory, memory_mask = model.encode_video(pixels, video_mask)
        if cap["decode"] == "greedy":
            return greedy_decode(model, memory, memory_mask, self.tokenizer, cap["max_len"])
        return beam_search(
            model,
            memory,
            memory_mask,
            self.tokenizer,
            cap["max_len"],
            cap["beam_size"],
            float(cap["length_penalty"]),
        )

    def evaluated_videos(self) -> list[str]:
        return list(self.test_pairs.video_ids)

    def describe(self) -> dict[str, Any]:
        cap = self.config["captioning"]
        return {
            **self.describe_clips(),
            "decode": cap["decode"],
            "beam_size": cap["beam_size"] if cap["decode"] == "beam" else 1,
            "length_penalty": cap["length_penalty"] if cap["decode"] == "beam" else None,
            "max_len": cap["max_len"],
            "references": "every caption of each evaluated video",
            "metrics": "pycocoevalcap (PTB tokenizer, CIDEr-D), percentages",
        }

    def evaluate(self, model: CaptioningModel) -> EvalOutput:
        pairs = self.test_pairs
        ids = sharded_map(
            VideoDataset(pairs.video_paths, self.source, pairs.segments),
            lambda b: {"ids": self.generate(model, b["pixels"], b["video_mask"])},
            batch_size=self.config["eval"]["batch_size"],
            device=next(model.parameters()).device,
            num_workers=self.config["data"]["num_workers"],
        )["ids"]
        predictions = {
            video: self.tokenizer.decode(row)
            for video, row in zip(pairs.video_ids, ids, strict=True)
        }
        references = references_by_video(pairs)
        spice = self.config["captioning"]["spice"]

        def score() -> tuple[CaptionScores, dict[str, float]]:
            constant = {video: self.constant_caption for video in references}
            return (
                caption_scores(predictions, references, spice=spice),
                caption_metrics(constant, references, spice=spice),
            )

        scores, constant_metrics = on_main_process(score)
        metrics = scores.corpus
        baselines = {"constant_caption": {"caption": self.constant_caption, **constant_metrics}}
        return EvalOutput(
            metrics=metrics,
            # "scores": the video's own ROUGE-L and CIDEr-D, whose means are the corpus values
            samples=[
                {
                    "video_id": video,
                    "prediction": predictions[video],
                    "references": refs,
                    "scores": scores.per_video[video],
                }
                for video, refs in references.items()
            ],
            num_samples={"videos": pairs.num_videos, "references": pairs.num_captions},
            baselines=baselines,
            skipped_videos=self.skipped,
            notes=self._notes(metrics, constant_metrics),
        )

    def _notes(self, metrics: Mapping[str, float], constant: Mapping[str, float]) -> list[str]:
        cap = self.config["captioning"]
        decode = (
            f"beam search (beam {cap['beam_size']}, length penalty {cap['length_penalty']})"
            if cap["decode"] == "beam"
            else "greedy decoding"
        )
        notes = [
            f"{decode}, at most {cap['max_len']} tokens; scored against every reference caption "
            "of each video",
            f"baseline constant caption {self.constant_caption!r} (most frequent training "
            f"caption, {self.constant_share}): "
            f"CIDEr {constant['CIDEr']:.2f}, BLEU-4 {constant['BLEU-4']:.2f} "
            f"(model: CIDEr {metrics['CIDEr']:.2f}, BLEU-4 {metrics['BLEU-4']:.2f})",
        ]
        return notes + self.skipped_notes()
