"""The contract of a retrieval method: features per modality, a block scorer and a loss.

A method subclasses :class:`RetrievalModel`. Training calls ``model(batch)`` (so DDP sees a
forward): local features are all-gathered with gradients and the method's ``loss`` sees the
global batch. Evaluation calls ``encode_text``/``encode_video`` on shards and ``similarity`` on
blocks (see :mod:`harness.similarity`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from harness.distributed import all_gather_with_grad

if TYPE_CHECKING:
    from harness.encoder import VideoTextEncoder

Features = dict[str, torch.Tensor]
MAX_LOGIT_SCALE = math.log(100.0)


def symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``(CE(S) + CE(S^T)) / 2`` with the diagonal as targets; ``logits`` (B, B)."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (
        nn.functional.cross_entropy(logits, target)
        + nn.functional.cross_entropy(logits.t(), target)
    )


class RetrievalModel(nn.Module):
    """Shared encoder plus a method head. Subclasses implement the four abstract methods."""

    #: texts x videos per scoring block at evaluation; None when blocks do not change scores.
    eval_block: int | None = None

    def __init__(self, encoder: VideoTextEncoder, gather_grad: str = "local") -> None:
        super().__init__()
        self.encoder = encoder
        self.gather_grad = gather_grad

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

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp of the learnt log-scale, as used on training logits."""
        return self.encoder.logit_scale.exp()

    def clamp_logit_scale(self) -> None:
        """Keep the learnt log-scale at most ln(100) (done after every optimizer step)."""
        with torch.no_grad():
            self.encoder.logit_scale.clamp_(max=MAX_LOGIT_SCALE)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of a local batch, with features gathered over processes."""
        text = self.encode_text(batch["ids"], batch["mask"])
        video = self.encode_video(batch["pixels"], batch["video_mask"])
        text = {k: all_gather_with_grad(v, self.gather_grad) for k, v in text.items()}
        video = {k: all_gather_with_grad(v, self.gather_grad) for k, v in video.items()}
        return self.loss(text, video)
