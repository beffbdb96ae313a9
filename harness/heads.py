"""What the method heads of every task share: the encoder they sit on, the learnt logit scale
and its clamp, the all-gather convention, and the symmetric contrastive loss."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from harness.encoder import VideoTextEncoder

MAX_LOGIT_SCALE = math.log(100.0)


def symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``(CE(S) + CE(S^T)) / 2`` with the diagonal as targets; ``logits`` (B, B)."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (
        nn.functional.cross_entropy(logits, target)
        + nn.functional.cross_entropy(logits.t(), target)
    )


class Head(nn.Module):
    """A method's model: the shared encoder plus the method's own modules.

    ``gather_grad`` is the all-gather backward convention of its training loss
    (:func:`harness.distributed.all_gather_with_grad`).
    """

    def __init__(self, encoder: VideoTextEncoder, gather_grad: str = "local") -> None:
        super().__init__()
        self.encoder = encoder
        self.gather_grad = gather_grad

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp of the learnt log-scale, as used on training logits."""
        return self.encoder.logit_scale.exp()

    def clamp_logit_scale(self) -> None:
        """Keep the learnt log-scale at most ln(100) (done after every optimizer step)."""
        with torch.no_grad():
            self.encoder.logit_scale.clamp_(max=MAX_LOGIT_SCALE)
