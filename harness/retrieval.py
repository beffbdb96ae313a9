"""The contract of a retrieval method: features per modality, a block scorer and a loss.

A method subclasses :class:`RetrievalModel`. Training calls ``model(batch)`` (so DDP sees a
forward): ``encode_text``/``encode_video`` give the local features (per sample: the gradient
cache runs them in chunks), which are all-gathered with gradients, and the method's ``loss``
sees the global batch. Evaluation calls ``encode_text``/``encode_video`` on shards, then
:meth:`score`: ``prepare_text``/``prepare_video`` once per item (the per-item parts of the
score, such as normalised tokens or learnt weights) and ``similarity`` on blocks of the
prepared features (see :mod:`harness.similarity`), so that no per-item work is repeated for
every tile.
"""

from __future__ import annotations

import torch

from harness.heads import Head, symmetric_cross_entropy
from harness.similarity import blocked_similarity

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

    def prepare_text(self, text: Features) -> Features:
        """The per-text parts of the score from ``encode_text`` features (batch-first, one row
        per text), computed once per text before scoring; by default the features themselves."""
        return text

    def prepare_video(self, video: Features) -> Features:
        """The per-video parts of the score from ``encode_video`` features (batch-first, one row
        per video), computed once per video before scoring; by default the features themselves."""
        return video

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """Evaluation scores (Bt, Bv) of a block of prepared features (``prepare_text`` /
        ``prepare_video`` outputs), without the logit scale."""
        raise NotImplementedError

    def score(self, text: Features, video: Features, block: int | None = None) -> torch.Tensor:
        """Scores (Nt, Nv) of ``encode_text``/``encode_video`` features: each item prepared once,
        then ``similarity`` on ``block`` x ``block`` tiles (None: one call on everything)."""
        text, video = self.prepare_text(text), self.prepare_video(video)
        if block is None:
            return self.similarity(text, video)
        return blocked_similarity(self.similarity, text, video, block)

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """Training loss on the global batch (text i matches video i) of ``encode_text`` /
        ``encode_video`` features (not prepared: a loss that scores them prepares them)."""
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
