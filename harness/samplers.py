"""Samplers: the epoch orders of training (the same on every process and after a resume) and the
fixed evaluation batches shared out over processes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from harness import distributed
from harness.data_types import VideoTextPairs


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

    def __iter__(self) -> Iterator[int]:
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

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist())


class ShardedBatches(Sampler[list[int]]):
    """Fixed contiguous batches of ``size`` items dealt round-robin to processes: the batches
    (and so every per-batch result) are the same for any process count."""

    def __init__(self, size: int, batch: int) -> None:
        starts = list(range(0, size, batch))
        self.batches = [list(range(s, min(s + batch, size))) for s in starts]
        # a process left without a batch repeats the first one (the gather drops duplicates),
        # so that every process takes part in the same collectives
        mine = [self.batches[i] for i in distributed.shard(len(self.batches))]
        self.mine = mine or self.batches[:1]

    def __len__(self) -> int:
        return len(self.mine)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.mine)
