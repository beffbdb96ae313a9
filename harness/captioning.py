"""The contract of a video captioning method: video tokens (memory) from the shared encoder and a
pre-LN causal transformer decoder over the caption tokens that cross-attends to them, trained with
teacher-forced cross-entropy. The decoder is the same for every method; a method subclasses
:class:`CaptioningModel`, builds its own video pieces first and then calls
:meth:`CaptioningModel.build_decoder`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from harness.heads import Head
from harness.temporal import init_weights

if TYPE_CHECKING:
    from harness.encoder import VideoTextEncoder

# Targets of the cross-entropy that are padding.
IGNORE = -100


class CaptioningModel(Head):
    """Shared encoder, a method's video pieces, ``memory_norm`` and the caption decoder."""

    def __init__(self, encoder: VideoTextEncoder) -> None:
        super().__init__(encoder)
        # The captioning loss never reaches the text tower or the logit scale. DDP waits for a
        # gradient from every trainable parameter, and a multi-process run without one fails
        # at its second step; frozen, they are left out of the optimizer, which skipped them.
        encoder.freeze_text_tower()

    def negatives_per_query(self, global_batch: int, world: int) -> None:
        """None: the captioning loss is per sample, with no negatives."""
        return None

    def build_decoder(
        self, vocab_size: int, decoder_layers: int, dropout: float, max_len: int
    ) -> None:
        """Create and initialise ``memory_norm``, the token embedding (tied output weights),
        the position table (SOT + ``max_len`` rows) and a ``decoder_layers``-deep decoder of the
        encoder's width D, with as many heads as the CLIP text tower."""
        width = self.encoder.embed_dim
        heads = self.encoder.clip.config.text_config.num_attention_heads
        self.memory_norm = nn.LayerNorm(width)
        self.embed = nn.Embedding(vocab_size, width)
        self.positions = nn.Embedding(max_len + 1, width)
        layer = nn.TransformerDecoderLayer(
            width, heads, 4 * width, dropout, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, decoder_layers, norm=nn.LayerNorm(width))
        for module in (self.memory_norm, self.embed, self.positions, self.decoder):
            module.apply(init_weights)

    def video_tokens(
        self, pixels: torch.Tensor, video_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> the method's video tokens (B, N, D) and
        their mask (B, N)."""
        raise NotImplementedError

    def encode_video(
        self, pixels: torch.Tensor, video_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, F, 3, H, W), video_mask (B, F) -> memory (B, N, D) (the normalised video
        tokens) and its mask (B, N)."""
        tokens, mask = self.video_tokens(pixels, video_mask)
        return self.memory_norm(tokens), mask

    def logits(
        self, ids: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor
    ) -> torch.Tensor:
        """ids (B, L) caption prefixes (SOT first), memory (B, N, D), memory_mask (B, N) ->
        next-token logits (B, L, V); position i sees tokens 0..i only."""
        length = ids.shape[1]
        x = self.embed(ids) + self.positions.weight[:length]
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).triu(1)
        hidden = self.decoder(
            x,
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=~memory_mask.bool(),
        )
        return hidden @ self.embed.weight.t()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Teacher-forced cross-entropy (mean over real target tokens) of a batch with ``ids``,
        ``mask`` (B, L) = [SOT] caption [EOT] padding and ``pixels``, ``video_mask``."""
        memory, memory_mask = self.encode_video(batch["pixels"], batch["video_mask"])
        ids, mask = batch["ids"], batch["mask"]
        logits = self.logits(ids[:, :-1], memory, memory_mask)
        # The mask, not the pad id, marks padding: CLIP's pad id 0 is also the token "!".
        target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE)
        return nn.functional.cross_entropy(
            logits.float().flatten(0, 1), target.flatten(), ignore_index=IGNORE
        )
