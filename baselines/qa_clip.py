"""Plain CLIP for video QA: the mean of the CLIP frame features as the video, CLIP's sentence
feature of the question, the task's answer classifier, and a contrastive term with no EM step.
Beside EMCL-QA it shows what the temporal module, attention pooling and EM add."""

from __future__ import annotations

import torch

from baselines.common import mean_of_frames
from harness.encoder import VideoTextEncoder
from harness.qa import AnswerHead, QAModel
from harness.temporal import init_weights


class CLIPQA(QAModel):
    """Plain CLIP features and the task's answer classifier ``head`` over ``num_answers``;
    ``gather_grad``: the all-gather backward. No settings of its own."""

    def __init__(
        self, encoder: VideoTextEncoder, num_answers: int, head: AnswerHead, gather_grad: str
    ) -> None:
        super().__init__(encoder, head, gather_grad)
        self.build_classifier(num_answers)
        for head in (self.v_proj, self.t_proj, self.classifier):
            head.apply(init_weights)

    def encode_question(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, L) -> CLIP's sentence feature (B, D)."""
        return self.encoder.encode_text(ids, mask).sentence

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> mean CLIP frame feature (B, D)."""
        return mean_of_frames(self.encoder.encode_frames(pixels).cls, video_mask)

    def sample_features(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The pooled features themselves: v and q (B, D)."""
        return {
            "video": self.encode_video(batch["pixels"], batch["video_mask"]),
            "question": self.encode_question(batch["ids"], batch["mask"]),
        }

    def pool(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Nothing left to pool: the gathered v, q (B, D)."""
        return features["video"], features["question"]
