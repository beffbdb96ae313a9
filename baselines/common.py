"""Model pieces that several methods share: L2 normalisation, the loose (mean-pooled) video
vector, the temporal module and the cross encoder with the CLIP-text initialisation (METHODS
§0.4), and EMCL modules built from a config section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from harness.config import ConfigError
from harness.emcl import EMCL, Variant
from harness.encoder import VideoTextEncoder
from harness.temporal import MASK_BIAS, build_aggregator, init_from_clip_text

# EMCL hyper-parameters a config section may set (harness.emcl.EMCL's keyword arguments).
EMCL_KEYS = ("k", "stage_num", "momentum", "lamd", "beta")
# (text, video) pairs per cross-encoder pass at evaluation: each pair holds a (1 + F, D) sequence
# through every layer, so a large scoring block is cut into passes of about this many pairs.
CROSS_PAIRS_PER_PASS = 1024


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``x / ||x||`` over the last axis (..., D), without epsilon (as the references)."""
    return x / x.norm(dim=-1, keepdim=True)


def mean_of_frames(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """frames (B, F, D), mask (B, F) -> (B, D): ``sum_f mask_f frame_f / max(sum mask, 1)``."""
    weights = mask.to(frames.dtype).unsqueeze(-1)
    total = weights.sum(dim=1).clamp(min=1.0)
    return (frames * weights).sum(dim=1) / total


def mean_pooled_video(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """frames (B, F, D), mask (B, F) -> (B, D): ``norm(sum_f mask_f norm(frame_f) / max(sum mask,
    1))``, the loose video vector (CLIP4Clip's meanP pooling, DRL's dp video vector)."""
    return normalize(mean_of_frames(normalize(frames), mask))


def build_temporal(encoder: VideoTextEncoder, kind: str, num_layers: int) -> nn.Module:
    """The temporal module ``kind`` (meanP, seqLSTM or seqTransf) at the encoder's width,
    ``num_layers`` deep, with the CLIP-text init (§0.4); it maps frames (B, F, D) and a mask
    (B, F) to frames (B, F, D)."""
    text_config = encoder.clip.config.text_config
    module = build_aggregator(
        kind,
        width=encoder.embed_dim,
        heads=text_config.num_attention_heads,
        num_layers=num_layers,
        max_positions=text_config.max_position_embeddings,
    )
    init_from_clip_text(module, encoder.clip)
    return module


class CrossEncoder(nn.Module):
    """CLIP4Clip's tightTransf (and DRL's xti): a transformer over ``[text; frames]`` per pair
    and a pooled logit head.

    ``encoder`` is a seqTransf module used for its position table and layers (not its residual
    forward), so the CLIP-text init and the reference temporal key map apply to it unchanged.
    """

    def __init__(
        self, width: int, heads: int, num_layers: int, max_positions: int, dropout: float
    ) -> None:
        super().__init__()
        self.encoder = build_aggregator("seqTransf", width, heads, num_layers, max_positions)
        self.dropout = nn.Dropout(dropout)
        self.ln_pool = nn.LayerNorm(width, eps=1e-12)  # TF-style LayerNorm of the reference
        self.dense = nn.Linear(width, width)
        self.similarity_dense = nn.Linear(width, 1)
        for linear in (self.dense, self.similarity_dense):
            nn.init.normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def forward(self, text: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """text (A, D) EOT features, frames (B, F, D), mask (B, F) -> logits (A, B).

        Pairs are laid out text-major (row ``i * B + j``), as the reference builds them, so a
        seeded dropout draws the same mask. In eval mode, where pairs are independent, the texts
        go through in groups of about :data:`CROSS_PAIRS_PER_PASS` pairs, so memory does not
        grow with the scoring block. Raises ConfigError when ``1 + F`` exceeds the position table.
        """
        texts_per_pass = max(1, CROSS_PAIRS_PER_PASS // frames.shape[0])
        if self.training or text.shape[0] <= texts_per_pass:
            return self._pair_logits(text, frames, mask)
        chunks = torch.split(text, texts_per_pass)
        return torch.cat([self._pair_logits(chunk, frames, mask) for chunk in chunks])

    def _pair_logits(
        self, text: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The logits (A, B) of every pair in one pass (see :meth:`forward`)."""
        a, (b, f, d) = text.shape[0], frames.shape
        positions = self.encoder.position_embeddings.weight
        if f + 1 > positions.shape[0]:
            raise ConfigError(
                f"tightTransf has {positions.shape[0]} positions for 1 + {f} frames; "
                "lower data.max_frames"
            )
        tokens = torch.cat(
            (text[:, None, None, :].expand(a, b, 1, d), frames[None].expand(a, b, f, d)), dim=2
        ).reshape(a * b, f + 1, d)
        keep = torch.cat((torch.ones_like(mask[:, :1]), mask), dim=1).to(frames.dtype)
        bias = (1.0 - keep).repeat(a, 1)[:, None, None, :] * MASK_BIAS
        x = self.dropout(tokens + positions[: f + 1])
        for layer in self.encoder.layers:
            x = layer(x, bias)
        pooled = self.dense(self.ln_pool(x[:, 0]))
        pooled = pooled * torch.sigmoid(1.702 * pooled)  # QuickGELU
        return self.similarity_dense(pooled).view(a, b)


def build_cross_encoder(encoder: VideoTextEncoder, num_layers: int, dropout: float) -> CrossEncoder:
    """A :class:`CrossEncoder` at the encoder's width with the CLIP-text init (§0.4): position
    table and the first ``num_layers`` text layers; ``dropout`` on its input tokens."""
    text_config = encoder.clip.config.text_config
    cross = CrossEncoder(
        width=encoder.embed_dim,
        heads=text_config.num_attention_heads,
        num_layers=num_layers,
        max_positions=text_config.max_position_embeddings,
        dropout=dropout,
    )
    init_from_clip_text(cross.encoder, encoder.clip)
    return cross


def build_emcl(section: Mapping[str, Any], variant: Variant = "emcl_net") -> EMCL:
    """An :class:`~harness.emcl.EMCL` module of ``variant`` with the hyper-parameters of a config
    section (``k``, ``stage_num``, ``lamd``, ``beta`` and ``momentum``; a section without
    ``momentum``, such as the inference plug-in's whose ``mu`` never moves, keeps EMCL's)."""
    return EMCL(**{key: section[key] for key in EMCL_KEYS if key in section}, variant=variant)
