"""Plain CLIP video tokens for captioning: the decoder cross-attends to one token, the mean of
the CLIP frame features (no temporal module, no EM step). Beside the EMCL captioner it shows what
temporal modelling and the EM refinement add."""

from __future__ import annotations

import torch

from baselines.common import mean_of_frames
from harness.captioning import CaptioningModel
from harness.encoder import VideoTextEncoder


class CLIPCaptioner(CaptioningModel):
    """Mean-pooled CLIP frames as a single memory token, the task's decoder (``decoder_layers``,
    ``dropout``, ``max_len``) over a ``vocab_size`` vocabulary."""

    def __init__(
        self,
        encoder: VideoTextEncoder,
        vocab_size: int,
        *,
        decoder_layers: int,
        dropout: float,
        max_len: int,
    ) -> None:
        super().__init__(encoder)
        self.build_decoder(vocab_size, decoder_layers, dropout, max_len)

    def video_tokens(
        self, pixels: torch.Tensor, video_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> the mean frame feature (B, 1, D) and an
        all-ones mask (B, 1)."""
        mean = mean_of_frames(self.encoder.encode_frames(pixels).cls, video_mask)
        return mean.unsqueeze(1), video_mask.new_ones(video_mask.shape[0], 1)
