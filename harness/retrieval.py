"""The contract of a retrieval method: features per modality, a block scorer and a loss.

A method subclasses :class:`RetrievalModel`. Training calls ``model(batch)`` (so DDP sees a
forward): ``encode_text``/``encode_video`` give the local features (per sample: the gradient
cache runs them in chunks), which are all-gathered with gradients, and the method's ``loss``
sees the global batch. Evaluation calls ``encode_text``/``encode_video`` on shards and
``similarity`` on blocks (see :mod:`harness.similarity`).
"""

from __future__ import annotations

import torch

from harness.heads import Head, symmetric_cross_entropy

__all__ = ["Features", "RetrievalModel", "split_features", "symmetric_cross_entropy"]

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

    def per_sample_features(self, batch: dict[str, torch.Tensor]) -> Features:
        """The text features under ``text.<name>`` and the video features under
        ``video.<name>`` of a local batch (ids, mask, pixels, video_mask)."""
        text = self.encode_text(batch["ids"], batch["mask"])
        video = self.encode_video(batch["pixels"], batch["video_mask"])
        return {
            **{f"{TEXT}{k}": v for k, v in text.items()},
            **{f"{VIDEO}{k}": v for k, v in video.items()},
        }

    def batch_loss(self, features: Features) -> torch.Tensor:
        """:meth:`loss` of the gathered global batch."""
        text, video = split_features({k: self.gather(v) for k, v in features.items()})
        return self.loss(text, video)


TEXT, VIDEO = "text.", "video."


def split_features(features: Features) -> tuple[Features, Features]:
    """:meth:`RetrievalModel.per_sample_features` back into the text and video features."""
    text = {k.removeprefix(TEXT): v for k, v in features.items() if k.startswith(TEXT)}
    video = {k.removeprefix(VIDEO): v for k, v in features.items() if k.startswith(VIDEO)}
    return text, video
