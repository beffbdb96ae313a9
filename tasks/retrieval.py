"""Text-video retrieval: contrastive training of a registered method, standard evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from harness import distributed
from harness.data import CaptionDataset, PairDataset, VideoDataset
from harness.data_types import VideoTextPairs
from harness.metrics import (
    best_sentence_scores,
    inverted_softmax,
    multi_sentence_metrics,
    retrieval_metrics,
    retrieval_ranks,
)
from harness.registry import DATASETS, METHODS
from harness.retrieval import RetrievalModel
from harness.similarity import blocked_similarity
from harness.task import EvalOutput, Task
from tasks.common import (
    build_encoder_for,
    build_text_tokenizer,
    clip_source,
    drop_unreadable,
    train_dataloader,
)

TOP_K_SAMPLES = 5


class GroupedRoundSampler(Sampler[int]):
    """Caption order for one epoch that keeps grouped videos (e.g. order twins) adjacent.

    The epoch runs in rounds: in round r every video with more than r captions contributes its
    r-th caption (captions shuffled per video), groups in shuffled order, the videos of a group
    next to each other. So a batch holds both twins (hard negatives for each other) and no video
    twice, except where a batch straddles two rounds.
    """

    def __init__(self, pairs: VideoTextPairs, seed: int) -> None:
        self.pairs = pairs
        self.seed = seed
        self.epoch = 0
        groups = pairs.groups if pairs.groups is not None else list(range(pairs.num_videos))
        self.members: dict[int, list[int]] = {}
        for video, group in enumerate(groups):
            self.members.setdefault(group, []).append(video)
        self.captions_of: list[list[int]] = [[] for _ in range(pairs.num_videos)]
        for caption, video in enumerate(pairs.caption_video):
            self.captions_of[video].append(caption)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order ``__iter__`` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.pairs.num_captions

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        shuffled = [list(rng.permutation(c)) for c in self.captions_of]
        group_ids = list(self.members)
        order: list[int] = []
        for r in range(max(len(c) for c in shuffled)):
            for g in rng.permutation(len(group_ids)):
                for video in self.members[group_ids[g]]:
                    if r < len(shuffled[video]):
                        order.append(int(shuffled[video][r]))
        return iter(order)


class ShardedBatches(Sampler[list[int]]):
    """Fixed contiguous eval batches dealt round-robin to processes (same for any count)."""

    def __init__(self, size: int, batch: int) -> None:
        starts = list(range(0, size, batch))
        self.batches = [list(range(s, min(s + batch, size))) for s in starts]
        # a process left without a batch repeats the first one (the gather drops duplicates),
        # so that every process takes part in the same collectives
        mine = [self.batches[i] for i in distributed.shard(len(self.batches))]
        self.mine = mine or self.batches[:1]

    def __len__(self) -> int:
        return len(self.mine)

    def __iter__(self):
        return iter(self.mine)


class RetrievalTask(Task):
    """Trains and evaluates a registered retrieval method on a registered dataset."""

    name = "retrieval"

    def setup(self) -> None:
        cfg = self.config
        self.dataset = DATASETS.get(cfg["dataset"])(cfg)
        self.source = clip_source(cfg, self.dataset.folder)
        self.train_pairs = self.dataset.pairs("train")
        self.test_pairs = self.dataset.pairs(cfg["eval"]["split"])
        self.skipped: list[dict[str, str]] = []
        self.tokenizer = build_text_tokenizer(cfg, self.train_pairs.captions)

    def build_model(self) -> RetrievalModel:
        encoder = build_encoder_for(self.config, self.tokenizer)
        method_cls = METHODS.get(self.config["method"]["name"])
        return method_cls(encoder, self.config)

    def usable(self, pairs: VideoTextPairs) -> VideoTextPairs:
        """``pairs`` without unreadable videos under ``data.on_bad_video=skip`` (else as is)."""
        kept, skipped = drop_unreadable(self.config, pairs, self.source)
        self.skipped += skipped
        return kept

    def train_loader(self, per_process_batch: int) -> tuple[DataLoader, Sampler]:
        self.train_pairs = self.usable(self.train_pairs)
        dataset = PairDataset(
            self.train_pairs, self.tokenizer, self.config["data"]["max_words"], self.source
        )
        sampler = GroupedRoundSampler(self.train_pairs, self.config["seed"])
        return train_dataloader(self.config, dataset, sampler, per_process_batch), sampler

    def after_step(self, model: RetrievalModel) -> None:
        model.clamp_logit_scale()

    def describe(self) -> dict[str, Any]:
        data = self.config["data"]
        return {
            "split": self.config["eval"]["split"],
            "max_frames": data["max_frames"],
            "max_words": data["max_words"],
            "video_framerate": data["video_framerate"],
            "image_size": data["image_size"],
            "frame_sampling": "uniform",
            "eval_block": self.config["eval"]["block_size"],
            "ties": self.config["eval"]["ties"],
            "frame_cache": str(self.source.cache.cache_dir) if self.source.cache else None,
            "encoder": self.config["encoder"]["pretrained"]
            or f"random:{self.config['encoder']['size']}",
        }

    def evaluate(self, model: RetrievalModel) -> EvalOutput:
        cfg = self.config["eval"]
        pairs = self.test_pairs = self.usable(self.test_pairs)
        device = next(model.parameters()).device
        text = self._features(
            CaptionDataset(pairs.captions, self.tokenizer, self.config["data"]["max_words"]),
            lambda b: model.encode_text(b["ids"], b["mask"]),
            device,
        )
        video = self._features(
            VideoDataset(pairs.video_paths, self.source, pairs.segments),
            lambda b: model.encode_video(b["pixels"], b["video_mask"]),
            device,
        )
        sim = blocked_similarity(model.similarity, text, video, cfg["block_size"])
        one_to_one = pairs.caption_video == list(range(pairs.num_videos))
        ties = cfg["ties"]
        extra: dict[str, Any] = {"skipped_videos": self.skipped}
        inverted = None
        if one_to_one:
            metrics = {
                "t2v": retrieval_metrics(sim, ties=ties),
                "v2t": retrieval_metrics(sim.t(), ties=ties),
            }
            inverted = inverted_softmax(sim, cfg["inverted_softmax_temp"])
            t2v_sim, v2t_sim = inverted
            extra["metrics_postprocessed"] = {
                "inverted_softmax": {
                    "t2v": retrieval_metrics(t2v_sim, ties=ties),
                    "v2t": retrieval_metrics(v2t_sim, ties=ties),
                }
            }
        else:
            metrics = multi_sentence_metrics(sim, pairs.caption_video, ties=ties)
        notes = list(self.dataset.notes())
        if self.skipped:
            notes.append(f"skipped {len(self.skipped)} unreadable videos (listed in results.json)")
        return EvalOutput(
            metrics=metrics,
            samples=self._samples(sim, pairs, ties, inverted),
            num_samples={"texts": pairs.num_captions, "videos": pairs.num_videos},
            extra=extra,
            notes=notes,
        )

    def _features(self, dataset: Dataset, encode, device: torch.device) -> dict[str, torch.Tensor]:
        """Encode ``dataset`` in fixed batches shared out over processes; full, ordered result."""
        loader = DataLoader(
            dataset,
            batch_sampler=ShardedBatches(len(dataset), self.config["eval"]["batch_size"]),
            num_workers=self.config["data"]["num_workers"],
        )
        index, parts = [], []
        for batch in loader:
            index.append(batch["index"])
            features = encode({k: v.to(device) for k, v in batch.items()})
            parts.append({k: _to_cpu_fp32(v) for k, v in features.items()})
        if parts:
            local = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            local_index = torch.cat(index)
        else:
            local, local_index = {}, torch.zeros(0, dtype=torch.long)
        return distributed.gather_by_index(local_index, local, len(dataset))

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


def _to_cpu_fp32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().float().cpu() if tensor.is_floating_point() else tensor.detach().cpu()
