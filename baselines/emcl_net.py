"""EMCL-Net retrieval head (METHODS §4.1-4.4): temporal aggregation, text-conditioned frame
pooling and the EM step over every block of pooled videos and texts."""

from __future__ import annotations

import torch

from baselines.common import build_emcl, build_temporal
from harness.config import Config
from harness.emcl import emcl_net_similarity
from harness.encoder import VideoTextEncoder
from harness.retrieval import Features, RetrievalModel, symmetric_cross_entropy


class EMCLNet(RetrievalModel):
    """EOT sentence features against aggregated frame features, scored through EMCL."""

    def __init__(self, encoder: VideoTextEncoder, config: Config) -> None:
        super().__init__(encoder, config["train"]["gather_grad"])
        method = config["method"]
        self.aggregator = build_temporal(encoder, method["agg_module"], method["temporal_layers"])
        self.emcl = build_emcl(method)
        self.temp = method["temp"]
        self.eval_block = config["eval"]["block_size"]

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> Features:
        """``{"sentence": (B, D)}``: the EOT feature, not normalised."""
        return {"sentence": self.encoder.encode_text(ids, mask).sentence.float()}

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> Features:
        """``{"frames": (B, F, D), "video_mask": (B, F)}`` after temporal aggregation."""
        frames = self.encoder.encode_frames(pixels).cls.float()
        return {"frames": self.aggregator(frames, video_mask), "video_mask": video_mask}

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """EMCL-Net scores (Bt, Bv) of one block; the EM step runs over this block only."""
        return emcl_net_similarity(
            text["sentence"], video["frames"], video["video_mask"], self.emcl, self.temp
        )

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """Symmetric cross-entropy on ``logit_scale * S`` over the global batch."""
        return symmetric_cross_entropy(self.logit_scale * self.similarity(text, video))
