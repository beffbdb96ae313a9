"""EMCL video tokens for captioning: the shared encoder's frame features through the temporal
module, refined by one EMCL step (:class:`harness.emcl.EMCL`) run on each video's own real frame
tokens.

The EM treats the D channels as data points in frame space and finds ``k`` temporal bases, and
each frame token moves ``beta`` times towards its reconstruction from them, i.e. towards a
compact, low-rank summary of how the video's features evolve. Running it per video (rather than
over the frame tokens of a whole batch, or over [video; text] as in retrieval) keeps a video's
caption independent of which other videos share its batch, needs no text at inference, and costs
stage_num x F x D x k per video. In training every video's call moves the basis initialisation
``mu`` by momentum once. The step has no parameters and passes gradients through the identity
path only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from baselines.common import build_temporal
from harness.captioning import CaptioningModel
from harness.emcl import EMCL
from harness.encoder import VideoTextEncoder


class EMCLCaptioner(CaptioningModel):
    """Temporal module (``agg_module``, ``temporal_layers``, CLIP-text initialised) -> per-video
    EMCL (``emcl``: k, stage_num, momentum, lamd, beta) -> the task's decoder
    (``decoder_layers``, ``dropout``, ``max_len``) over a ``vocab_size`` vocabulary."""

    def __init__(
        self,
        encoder: VideoTextEncoder,
        vocab_size: int,
        *,
        agg_module: str,
        temporal_layers: int,
        emcl: Mapping[str, Any],
        decoder_layers: int,
        dropout: float,
        max_len: int,
    ) -> None:
        super().__init__(encoder)
        self.aggregator = build_temporal(encoder, agg_module, temporal_layers)
        self.emcl = EMCL(**emcl)
        self.build_decoder(vocab_size, decoder_layers, dropout, max_len)

    def video_tokens(
        self, pixels: torch.Tensor, video_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> refined frame tokens (B, F, D) and
        ``video_mask``. Padded frames take no part in their video's EM step (their rows are left
        as they are; the decoder never attends to them)."""
        tokens = self.aggregator(self.encoder.encode_frames(pixels).cls, video_mask)
        real = video_mask.bool()
        refined = torch.cat([self.emcl(t[m]) for t, m in zip(tokens, real, strict=True)])
        return tokens.masked_scatter(real.unsqueeze(-1), refined.to(tokens.dtype)), video_mask
