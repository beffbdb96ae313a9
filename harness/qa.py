"""The contract of a video QA method: a video feature and a question feature, an answer
classifier on ``[v_proj(v); t_proj(q)]`` shared by every method, and its training loss (answer
cross-entropy plus a weighted contrastive term on the projected pairs).

A method subclasses :class:`QAModel` and says how its features are made (``encode_video``,
``encode_question``, and for training ``sample_features``/``pool`` over the gathered batch) and
how the contrastive term mixes its rows (``mix_rows``: identity, or an EM step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from harness.heads import Head, symmetric_cross_entropy

if TYPE_CHECKING:
    from harness.encoder import VideoTextEncoder


@dataclass(frozen=True)
class AnswerHead:
    """The task's answer classifier and loss, the same for every QA method: ``proj_dim`` P of
    ``v_proj``/``t_proj`` (None: 4 D), ``classifier_dim`` H of the MLP (None: 4 P), ``dropout``
    before it, ``contrastive_weight`` of the contrastive term beside the answer loss."""

    proj_dim: int | None
    classifier_dim: int | None
    dropout: float
    contrastive_weight: float


class QAModel(Head):
    """Shared encoder, a method's feature pieces and the answer classifier of ``head``."""

    def __init__(self, encoder: VideoTextEncoder, head: AnswerHead, gather_grad: str) -> None:
        super().__init__(encoder, gather_grad)
        self.head = head
        self.contrastive_weight = head.contrastive_weight

    def build_classifier(self, num_answers: int) -> None:
        """Create ``v_proj``, ``t_proj`` (D -> P), ``dropout`` and the answer MLP
        (2P -> H -> ``num_answers``) of ``head``; weights as constructed (the method initialises
        them in its own order)."""
        width = self.encoder.embed_dim
        proj = self.head.proj_dim or 4 * width
        hidden = self.head.classifier_dim or 4 * proj
        self.v_proj = nn.Linear(width, proj)
        self.t_proj = nn.Linear(width, proj)
        self.dropout = nn.Dropout(self.head.dropout)
        self.classifier = nn.Sequential(
            nn.Linear(2 * proj, hidden), nn.ReLU(), nn.Linear(hidden, num_answers)
        )

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> video feature v (B, D)."""
        raise NotImplementedError

    def encode_question(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, L) -> question feature q (B, D)."""
        raise NotImplementedError

    def sample_features(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The per-sample tensors (batch-first) of a training batch that are gathered over
        processes before :meth:`pool`."""
        raise NotImplementedError

    def pool(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Gathered :meth:`sample_features` -> v, q (B, D) of the global batch."""
        raise NotImplementedError

    def mix_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The contrastive term's [videos; questions] rows (2B, P) before the cosine; identity
        unless the method mixes them (an EM step)."""
        return rows

    def answer_logits(
        self, video: torch.Tensor, question: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """v, q (B, D) -> answer logits (B, num_answers) and ``[v_proj(v); t_proj(q)]`` (B, 2P)."""
        joint = torch.cat((self.v_proj(video), self.t_proj(question)), dim=-1)
        return self.classifier(self.dropout(joint)), joint

    def contrastive_loss(self, joint: torch.Tensor) -> torch.Tensor:
        """On ``joint`` (B, 2P) = ``[v_proj(v); t_proj(q)]`` rows of one batch: the 2B projected
        rows go through :meth:`mix_rows`, then the symmetric cross-entropy of
        ``logit_scale * cos(q_i, v_j)`` with question i matching video i."""
        video, question = joint.chunk(2, dim=-1)
        mixed = self.mix_rows(torch.cat((video, question), dim=0))
        video, question = mixed.chunk(2, dim=0)
        video = video / video.norm(dim=-1, keepdim=True)
        question = question / question.norm(dim=-1, keepdim=True)
        return symmetric_cross_entropy(self.logit_scale * question @ video.t())

    def per_sample_features(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`sample_features` of a local batch (ids, mask, pixels, video_mask, label) and
        its labels."""
        return {**self.sample_features(batch), "label": batch["label"]}

    def batch_loss(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Answer cross-entropy plus the weighted contrastive term; the sample features and
        labels are gathered over processes first, so both terms see the global batch."""
        gathered = {k: self.gather(v) for k, v in features.items()}
        labels = gathered.pop("label")
        video, question = self.pool(gathered)
        logits, joint = self.answer_logits(video, question)
        loss = nn.functional.cross_entropy(logits.float(), labels)
        return loss + self.contrastive_weight * self.contrastive_loss(joint.float())
