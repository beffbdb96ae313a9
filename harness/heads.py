"""What the method heads of every task share: the encoder they sit on, the learnt logit scale
and its clamp, the all-gather convention, the split of a training step into per-sample features
and a batch loss (which the gradient cache needs), and the symmetric contrastive loss."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from harness.distributed import all_gather_with_grad, scale_gradient

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
    (:func:`harness.distributed.all_gather_with_grad`); ``reference_world_size`` (set from
    ``train.reference_world_size`` when the task builds the model) replaces it by the local
    convention of that many processes, whatever the real count.

    A training step is ``batch_loss(per_sample_features(batch))``: the first part may only
    compute each sample's tensors from that sample (it runs in chunks under the gradient cache,
    :mod:`harness.gradient_cache`), the second does everything that mixes samples. A head whose
    training step has no such split keeps the defaults, which refuse the cache.
    """

    reference_world_size: int | None = None

    def __init__(self, encoder: VideoTextEncoder, gather_grad: str = "global") -> None:
        super().__init__()
        self.encoder = encoder
        self.gather_grad = gather_grad

    def per_sample_features(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every per-sample tensor (batch-first, row i from sample i alone) that
        :meth:`batch_loss` needs from the local ``batch``."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample training features")

    def batch_loss(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The scalar training loss from this process's :meth:`per_sample_features`; gathers
        over processes (:meth:`gather`) where the loss needs the global batch."""
        raise NotImplementedError(f"{type(self).__name__} has no batch loss")

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of a local batch (so that DDP sees a forward)."""
        return self.batch_loss(self.per_sample_features(batch))

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """This process's rows (b, ...) -> the global batch (world x b, ...), with the gradient
        of the run's convention; under ``reference_world_size`` W the summed gradient scaled by
        1/W, which is what W processes with the local convention apply after DDP's average."""
        if not tensor.is_floating_point():  # masks, labels: no gradient to carry
            return all_gather_with_grad(tensor, "local")
        if self.reference_world_size is None:
            return all_gather_with_grad(tensor, self.gather_grad)
        tensor = scale_gradient(tensor, 1.0 / self.reference_world_size)
        return all_gather_with_grad(tensor, "sum")

    def negatives_per_query(self, global_batch: int, world: int) -> int | None:
        """How many negatives each query's contrastive term sees in a training step with
        ``global_batch`` samples over ``world`` processes (in-batch: the rest of the global
        batch); None for a loss without negatives."""
        return global_batch - 1

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp of the learnt log-scale, as used on training logits."""
        return self.encoder.logit_scale.exp()

    def clamp_logit_scale(self) -> None:
        """Keep the learnt log-scale at most ln(100) (done after every optimizer step)."""
        with torch.no_grad():
            self.encoder.logit_scale.clamp_(max=MAX_LOGIT_SCALE)
