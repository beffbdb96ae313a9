"""Text-video retrieval: contrastive training of a registered method, standard evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.data import CaptionDataset, PairDataset, VideoDataset
from harness.data_types import VideoTextPairs
from harness.encoder import CheckpointError, VideoTextEncoder
from harness.evaluation import sharded_map
from harness.metrics import (
    best_sentence_scores,
    multi_sentence_metrics,
    retrieval_metrics,
    retrieval_ranks,
)
from harness.metrics.postprocess import QB_NORM
from harness.results import atomic_write_text
from harness.retrieval import Features, RetrievalModel
from harness.samplers import GroupedRoundSampler
from harness.task import EvalOutput
from tasks import integrity, postprocessing
from tasks.common import VideoTask, train_dataloader

TOP_K_SAMPLES = 5


BANK_FILE = "qb_norm_bank.json"  # in each checkpoint folder


class RetrievalTask(VideoTask):
    """Trains and evaluates a registered retrieval method on a registered dataset."""

    name = "retrieval"
    main_metric = ("t2v", "R@1")

    saved_bank: list[str] | None = None

    def use_checkpoint(self, folder: Path) -> None:
        super().use_checkpoint(folder)
        path = folder / BANK_FILE
        if path.is_file():  # checkpoints written before QB-Norm existed have none
            try:
                self.saved_bank = json.loads(path.read_text())["captions"]
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(
                    f"{path} is damaged ({exc}): restore it from the run's other checkpoint"
                ) from None

    def save_with_checkpoint(self, folder: Path) -> None:
        super().save_with_checkpoint(folder)
        atomic_write_text(folder / BANK_FILE, json.dumps({"captions": self.bank_captions}))

    def setup(self, train: bool = True) -> None:
        dataset = self.load_dataset()
        all_train = dataset.pairs("train")
        self.tokenizer = self.text_tokenizer(all_train.captions)
        self.train_pairs = self.usable(all_train) if train else all_train
        self.train_video_ids = list(all_train.video_ids)
        # QB-Norm's query bank: the checkpoint's own (later edits of the training captions
        # change nothing), else a seeded draw of training captions
        bank = postprocessing.bank_indices(
            all_train.num_captions, self.config["eval"]["qb_norm_bank"], self.config["seed"]
        )
        self.bank_captions = self.saved_bank or [all_train.captions[i] for i in bank]
        self.test_pairs = self.usable(dataset.pairs(self.config["eval"]["split"]))

    def make_method(
        self, method_cls: type[RetrievalModel], encoder: VideoTextEncoder
    ) -> RetrievalModel:
        return method_cls(encoder, self.config)

    def train_loader(self, per_process_batch: int) -> DataLoader:
        dataset = PairDataset(
            self.train_pairs, self.tokenizer, self.config["data"]["max_words"], self.source
        )
        sampler = GroupedRoundSampler(self.train_pairs, self.config["seed"])
        return train_dataloader(self.config, dataset, sampler, per_process_batch)

    def evaluated_videos(self) -> list[str]:
        return list(self.test_pairs.video_ids)

    def describe(self) -> dict[str, Any]:
        return {
            **self.describe_clips(),
            "max_words": self.config["data"]["max_words"],
            "eval_block": self.config["eval"]["block_size"],
            "ties": self.config["eval"]["ties"],
            "postprocess": postprocessing.settings(self.config, len(self.bank_captions)),
        }

    def _encode(
        self, model: RetrievalModel, pairs: VideoTextPairs, batch_size: int, count: int | None
    ) -> tuple[Features, Features]:
        """The features of the first ``count`` (None: all) captions and videos of ``pairs``."""
        device = next(model.parameters()).device
        encode = dict(
            batch_size=batch_size, device=device, num_workers=self.config["data"]["num_workers"]
        )
        captions = pairs.captions[:count]
        text = sharded_map(
            CaptionDataset(captions, self.tokenizer, self.config["data"]["max_words"]),
            lambda b: model.encode_text(b["ids"], b["mask"]),
            **encode,
        )
        segments = pairs.segments[:count] if pairs.segments else None
        video = sharded_map(
            VideoDataset(pairs.video_paths[:count], self.source, segments),
            lambda b: model.encode_video(b["pixels"], b["video_mask"]),
            **encode,
        )
        return text, video

    def _bank_scores(self, model: RetrievalModel, video: Features) -> np.ndarray | None:
        """QB-Norm's bank scores (B training captions, V test videos); None unless chosen."""
        cfg = self.config["eval"]
        if QB_NORM not in cfg["postprocess"]:
            return None
        bank = sharded_map(
            CaptionDataset(self.bank_captions, self.tokenizer, self.config["data"]["max_words"]),
            lambda b: model.encode_text(b["ids"], b["mask"]),
            batch_size=cfg["batch_size"],
            device=next(model.parameters()).device,
            num_workers=self.config["data"]["num_workers"],
        )
        return model.score(bank, video, cfg["block_size"]).cpu().numpy()

    def evaluate(self, model: RetrievalModel) -> EvalOutput:
        cfg = self.config["eval"]
        pairs = self.test_pairs
        text, video = self._encode(model, pairs, cfg["batch_size"], None)
        sim = model.score(text, video, cfg["block_size"])
        one_to_one = pairs.caption_video == list(range(pairs.num_videos))
        ties = cfg["ties"]
        # the post-processings follow the reference, which applies them to one-to-one sets only
        post = (
            postprocessing.postprocessor(
                self.config, float(model.logit_scale), self._bank_scores(model, video)
            )
            if one_to_one
            else postprocessing.none
        )
        raw = sim.float().cpu().numpy()
        matrices = post(raw)
        if one_to_one:
            metrics = {
                "t2v": retrieval_metrics(sim, ties=ties),
                "v2t": retrieval_metrics(sim.t(), ties=ties),
            }
        else:
            metrics = multi_sentence_metrics(sim, pairs.caption_video, ties=ties)
        postprocessed = {
            name: {
                direction: retrieval_metrics(matrix, ties=ties)
                for direction, matrix in zip(("t2v", "v2t"), both, strict=True)
                if matrix is not None
            }
            for name, both in matrices.items()
        }
        checks = {
            "query_independence": integrity.query_independence(
                model.score, text, video, cfg["block_size"], raw, post, matrices
            ),
            "gallery_order": integrity.gallery_order(
                model.score, text, video, cfg["block_size"], raw, self.config["seed"]
            ),
            "eval_batch": integrity.eval_batch(
                lambda batch, count: self._encode(model, pairs, batch, count),
                text,
                video,
                cfg["batch_size"],
                cfg["block_size"],
            ),
            "split_hygiene": integrity.split_hygiene(pairs.video_ids, self.train_video_ids),
        }
        notes = list(self.dataset.notes()) + self.skipped_notes()
        return EvalOutput(
            metrics=metrics,
            samples=self._samples(sim, pairs, ties, matrices),
            num_samples={"texts": pairs.num_captions, "videos": pairs.num_videos},
            metrics_postprocessed=postprocessed,
            integrity=checks,
            skipped_videos=self.skipped,
            notes=notes,
        )

    def _samples(
        self,
        sim: torch.Tensor,
        pairs: VideoTextPairs,
        ties: str,
        matrices: postprocessing.Matrices,
    ) -> list[dict]:
        """One row per query in each direction: its rank and top videos. ``matrices``: the
        post-processed matrices (t2v (T, V), v2t (V, T) or None) of one-to-one pairs; each row
        then also holds its rank under each (``rank_<name>``, e.g. ``rank_inverted_softmax``),
        so that per-query statistics of the post-processed metrics can be computed from the
        samples alone."""
        t2v_rank = retrieval_ranks(sim, ties=ties, target=pairs.caption_video)
        top = sim.topk(min(TOP_K_SAMPLES, pairs.num_videos), dim=1).indices
        t2v_rows = [
            {
                "direction": "t2v",
                "query": i,
                "caption": pairs.captions[i],
                "video_id": pairs.video_ids[video],
                "rank": int(t2v_rank[i]),
                "top": [pairs.video_ids[j] for j in top[i].tolist()],
            }
            for i, video in enumerate(pairs.caption_video)
        ]
        by_video = best_sentence_scores(sim, pairs.caption_video)
        v2t_rank = retrieval_ranks(by_video, ties=ties)
        v2t_rows = [
            {"direction": "v2t", "query": v, "video_id": pairs.video_ids[v], "rank": int(r)}
            for v, r in enumerate(v2t_rank.tolist())
        ]
        for name, both in matrices.items():
            for rows, matrix in zip((t2v_rows, v2t_rows), both, strict=True):
                if matrix is None:
                    continue
                for row, rank in zip(rows, retrieval_ranks(matrix, ties=ties), strict=True):
                    row[f"rank_{name}"] = int(rank)
        return t2v_rows + v2t_rows
