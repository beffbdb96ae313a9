"""Blocked text x video scoring with bounded memory, sharded over processes.

A scorer takes a block of text features and a block of video features (dicts of batch-first
tensors) and returns the (texts, videos) block of the similarity matrix. Only one block's
intermediates exist at a time; the full (texts x videos) matrix is the only large allocation.
Row blocks are split round-robin over processes and gathered, so every process ends with the same
matrix whatever the process count (blocks are fixed by the block size, not by the sharding).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness import distributed
from harness.config import ConfigError

Features = dict[str, torch.Tensor]
BlockScorer = Callable[[Features, Features], torch.Tensor]


def take(features: Features, start: int, stop: int) -> Features:
    """Rows ``start:stop`` of every tensor in ``features``."""
    return {k: v[start:stop] for k, v in features.items()}


def blocked_similarity(
    scorer: BlockScorer, text: Features, video: Features, block: int
) -> torch.Tensor:
    """The (Nt, Nv) float32 matrix from ``block`` x ``block`` calls of ``scorer``.

    Block (i, j) covers texts ``[i*block, (i+1)*block)`` and videos ``[j*block, (j+1)*block)``,
    as the reference evaluation loops do (this matters for EMCL, whose EM step mixes a block).
    A ``block`` below 1 is a ConfigError.
    """
    if block < 1:
        raise ConfigError(f"eval.block_size must be at least 1, got {block}")
    num_text = next(iter(text.values())).shape[0]
    num_video = next(iter(video.values())).shape[0]
    row_blocks = range(0, num_text, block)
    mine = [row_blocks[i] for i in distributed.shard(len(row_blocks))]
    index = [torch.arange(start, min(start + block, num_text)) for start in mine]
    local_index = torch.cat(index) if index else torch.zeros(0, dtype=torch.long)
    # Tiles are written into one preallocated matrix: collecting row lists and concatenating them
    # held the matrix two to three times over, plus heap fragments of the interleaved rows.
    device = next(iter(video.values())).device
    local = torch.empty(local_index.numel(), num_video, device=device)
    row = 0
    for rows in index:
        text_block = take(text, int(rows[0]), int(rows[-1]) + 1)
        for v in range(0, num_video, block):
            stop = min(v + block, num_video)
            local[row : row + rows.numel(), v:stop] = scorer(text_block, take(video, v, stop))
        row += rows.numel()
    if distributed.world_size() == 1:
        return local
    return distributed.gather_by_index(local_index, {"sim": local}, num_text)["sim"]
