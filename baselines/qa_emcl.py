"""EMCL-QA (METHODS §4.9): question tokens and temporally aggregated frames of the shared encoder,
attention pooling of each, the task's answer classifier on ``[v_proj(v); t_proj(q)]``, and an
EM step on those projected rows inside the contrastive term."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from baselines.common import build_temporal
from harness.emcl import EMCL
from harness.encoder import VideoTextEncoder
from harness.qa import AnswerHead, QAModel
from harness.temporal import init_weights


def _weight_head(width: int) -> nn.Sequential:
    """The reference's ``t_w`` / ``v_w``: one attention logit per position."""
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))


def attention_pool(features: torch.Tensor, mask: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """features (B, N, D), mask (B, N) -> (B, D): ``sum_i softmax_i(head(x_i)) mask_i x_i``.

    The softmax runs over all N positions, padded ones included, and their share is then
    dropped (EMCL-QA's masking, METHODS §10.12).
    """
    weights = torch.softmax(head(features).squeeze(-1).float(), dim=-1)
    masked = features * mask.unsqueeze(-1).to(features.dtype)
    return torch.einsum("bnd,bn->bd", masked.float(), weights)


class EMCLQA(QAModel):
    """EMCL-QA on the shared encoder.

    ``head``: the task's answer classifier over ``num_answers``; ``gather_grad``: the all-gather
    backward; ``agg_module``/``temporal_layers``: the temporal module over the frames (CLIP-text
    initialised); ``emcl``: the EM step's settings (k, stage_num, momentum, lamd, beta).
    """

    def __init__(
        self,
        encoder: VideoTextEncoder,
        num_answers: int,
        head: AnswerHead,
        gather_grad: str,
        *,
        agg_module: str,
        temporal_layers: int,
        emcl: Mapping[str, Any],
    ) -> None:
        super().__init__(encoder, head, gather_grad)
        width = encoder.embed_dim
        self.aggregator = build_temporal(encoder, agg_module, temporal_layers)
        self.mean_proj = nn.Linear(width, width)
        self.t_w = _weight_head(width)
        self.v_w = _weight_head(width)
        self.build_classifier(num_answers)
        # the reference's initialisation order (it fixes every random draw of a seeded run)
        for head in (self.mean_proj, self.t_w, self.v_w, self.v_proj, self.t_proj):
            head.apply(init_weights)
        self.classifier.apply(init_weights)
        self.emcl = EMCL(**emcl)

    def question_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, L) -> projected features of every token (B, L, D)."""
        return self.encoder.encode_text(ids, mask).words

    def video_frames(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """pixels (B, F, 3, H, W), mask (B, F) -> ``mean_proj(T(V + pos)) + V`` (B, F, D)."""
        frames = self.encoder.encode_frames(pixels).cls
        # Our temporal modules add the residual themselves; the reference puts mean_proj before it.
        return self.mean_proj(self.aggregator(frames, video_mask) - frames) + frames

    def encode_question(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, L) -> pooled question feature q (B, D)."""
        return attention_pool(self.question_tokens(ids, mask), mask, self.t_w)

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """pixels (B, F, 3, H, W), mask (B, F) -> pooled video feature v (B, D)."""
        return attention_pool(self.video_frames(pixels, video_mask), video_mask, self.v_w)

    def sample_features(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Token features (B, L, D) with their mask and frame features (B, F, D) with theirs:
        pooling runs on the gathered batch."""
        return {
            "tokens": self.question_tokens(batch["ids"], batch["mask"]),
            "mask": batch["mask"],
            "frames": self.video_frames(batch["pixels"], batch["video_mask"]),
            "video_mask": batch["video_mask"],
        }

    def pool(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention pooling of the gathered frames and tokens -> v, q (B, D)."""
        video = attention_pool(features["frames"], features["video_mask"], self.v_w)
        question = attention_pool(features["tokens"], features["mask"], self.t_w)
        return video, question

    def mix_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """One EM step over the 2B projected [videos; questions] rows (2B, P)."""
        return self.emcl(rows)
