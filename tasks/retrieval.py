"""Text-video retrieval: contrastive training of a registered method, standard evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.data import CaptionDataset, PairDataset, VideoDataset
from harness.data_types import VideoTextPairs
from harness.encoder import VideoTextEncoder
from harness.evaluation import sharded_map
from harness.metrics import (
    best_sentence_scores,
    inverted_softmax,
    multi_sentence_metrics,
    retrieval_metrics,
    retrieval_ranks,
)
from harness.retrieval import RetrievalModel
from harness.samplers import GroupedRoundSampler
from harness.task import EvalOutput
from tasks.common import VideoTask, train_dataloader

TOP_K_SAMPLES = 5


class RetrievalTask(VideoTask):
    """Trains and evaluates a registered retrieval method on a registered dataset."""

    name = "retrieval"

    def setup(self, train: bool = True) -> None:
        dataset = self.load_dataset()
        all_train = dataset.pairs("train")
        self.tokenizer = self.text_tokenizer(all_train.captions)
        self.train_pairs = self.usable(all_train) if train else all_train
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

    def describe(self) -> dict[str, Any]:
        return {
            **self.describe_clips(),
            "max_words": self.config["data"]["max_words"],
            "eval_block": self.config["eval"]["block_size"],
            "ties": self.config["eval"]["ties"],
        }

    def evaluate(self, model: RetrievalModel) -> EvalOutput:
        cfg = self.config["eval"]
        pairs = self.test_pairs
        device = next(model.parameters()).device
        encode = dict(
            batch_size=cfg["batch_size"],
            device=device,
            num_workers=self.config["data"]["num_workers"],
        )
        text = sharded_map(
            CaptionDataset(pairs.captions, self.tokenizer, self.config["data"]["max_words"]),
            lambda b: model.encode_text(b["ids"], b["mask"]),
            **encode,
        )
        video = sharded_map(
            VideoDataset(pairs.video_paths, self.source, pairs.segments),
            lambda b: model.encode_video(b["pixels"], b["video_mask"]),
            **encode,
        )
        sim = model.score(text, video, cfg["block_size"])
        one_to_one = pairs.caption_video == list(range(pairs.num_videos))
        ties = cfg["ties"]
        postprocessed: dict[str, Any] = {}
        inverted = None
        if one_to_one:
            metrics = {
                "t2v": retrieval_metrics(sim, ties=ties),
                "v2t": retrieval_metrics(sim.t(), ties=ties),
            }
            inverted = inverted_softmax(sim, cfg["inverted_softmax_temp"])
            t2v_sim, v2t_sim = inverted
            postprocessed["inverted_softmax"] = {
                "t2v": retrieval_metrics(t2v_sim, ties=ties),
                "v2t": retrieval_metrics(v2t_sim, ties=ties),
            }
        else:
            metrics = multi_sentence_metrics(sim, pairs.caption_video, ties=ties)
        notes = list(self.dataset.notes()) + self.skipped_notes()
        return EvalOutput(
            metrics=metrics,
            samples=self._samples(sim, pairs, ties, inverted),
            num_samples={"texts": pairs.num_captions, "videos": pairs.num_videos},
            metrics_postprocessed=postprocessed,
            skipped_videos=self.skipped,
            notes=notes,
        )

    def _samples(
        self,
        sim: torch.Tensor,
        pairs: VideoTextPairs,
        ties: str,
        inverted: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[dict]:
        """One row per query in each direction: its rank and top videos. ``inverted``: the
        EMCL-Net++ matrices (t2v (T, V), v2t (V, T)) of one-to-one pairs; each row then also
        holds its rank under them (``rank_inverted_softmax``), so that per-query statistics of
        the post-processed metrics can be computed from the samples alone."""
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
        if inverted is not None:
            for rows, matrix in zip((t2v_rows, v2t_rows), inverted, strict=True):
                for row, rank in zip(rows, retrieval_ranks(matrix, ties=ties), strict=True):
                    row["rank_inverted_softmax"] = int(rank)
        return t2v_rows + v2t_rows
