"""The contract of a retrieval method: features per modality, a block scorer and a loss.

A method subclasses :class:`RetrievalModel`. Training calls ``model(batch)`` (so DDP sees a
forward): local features are all-gathered with gradients and the method's ``loss`` sees the
global batch. Evaluation calls ``encode_text``/``encode_video`` on shards and ``similarity`` on
blocks (see :mod:`harness.similarity`).
"""

from __future__ import annotations

import torch

from harness.distributed import all_gather_with_grad
from harness.heads import Head, symmetric_cross_entropy

__all__ = ["Features", "RetrievalModel", "symmetric_cross_entropy"]

Features = dict[str, torch.Tensor]


class RetrievalModel(Head):
    """Shared encoder plus a method head. Subclasses implement the four abstract methods."""

    #: texts x videos per scoring block at evaluation; None when blocks do not change scores.
    eval_block: int | None = None

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> Features:
        """Per-caption features from ids/mask (B, L); every value is batch-first."""
        raise NotImplementedError

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> Features:
        """Per-video features from pixels (B, F, 3, H, W) and mask (B, F)."""
        raise NotImplementedError

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """Evaluation scores (Bt, Bv) of a block, without the logit scale."""
        raise NotImplementedError

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """Training loss on the global batch (text i matches video i)."""
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of a local batch, with features gathered over processes."""
        text = self.encode_text(batch["ids"], batch["mask"])
        video = self.encode_video(batch["pixels"], batch["video_mask"])
        text = {k: all_gather_with_grad(v, self.gather_grad) for k, v in text.items()}
        video = {k: all_gather_with_grad(v, self.gather_grad) for k, v in video.items()}
        return self.loss(text, video)
