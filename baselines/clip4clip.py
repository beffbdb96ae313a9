"""CLIP4Clip (METHODS §1): EOT sentence features against frame features, scored by a loose
(parameter-free) similarity after a temporal module, or by a cross transformer per pair.

``method.sim_header``:
- ``meanP`` / ``seqLSTM`` / ``seqTransf`` (loose type): frames go through the temporal module
  (harness.temporal), each frame is normalised, real frames are averaged and the mean normalised
  again; the score is its cosine with the normalised EOT feature. Training: symmetric
  cross-entropy on ``logit_scale * S`` over the all-gathered batch.
- ``tightTransf``: for every text-video pair the sequence ``[EOT; frames]`` (with position
  embeddings and dropout) runs through a cross transformer; a pooled linear head gives the logit.
  No logit scale. The reference trains it on each process's own batch, without gathering
  features: :meth:`CLIP4Clip.forward` does the same, so with N processes every loss sees
  ``train.batch_size / N`` pairs. Evaluation costs one transformer pass per pair of a block.

EMCL plug-in (``method.emcl``, loose types only): the normalised global text vector ``t`` and
video vector ``v`` of each item are the whole score here, so EMCL replaces it entirely:
``inference`` (METHODS §4.7) runs the EM step at evaluation over the ``[videos; texts]`` rows of a
scoring block (mu never updated, outputs not re-normalised) and scores ``t' . v'``; training is
unchanged. ``joint`` (§4.8) runs the joint-training EM layer (re-normalised output, mu moved by
momentum in training) on the ``[videos; texts]`` rows of the training batch and of every scoring
block. Both make scores depend on the block (``eval_block``). tightTransf has no global vectors
and rejects the plug-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import torch
from torch import nn

from baselines.emcl_plugin import build_global_emcl, mix_globals
from harness.config import Config, ConfigError, check_choice
from harness.encoder import VideoTextEncoder, convert_openai_state_dict
from harness.retrieval import Features, RetrievalModel, symmetric_cross_entropy
from harness.temporal import (
    MASK_BIAS,
    build_aggregator,
    init_from_clip_text,
    load_reference_temporal_state,
)

SIM_HEADERS = ("meanP", "seqLSTM", "seqTransf", "tightTransf")
LOOSE_HEADERS = ("meanP", "seqLSTM", "seqTransf")
TEMPORAL_KEYS = ("frame_position_embeddings.", "transformerClip.", "lstm_visual.")
# tightTransf reference keys -> our CrossEncoder keys (its transformer is mapped separately).
CROSS_HEAD_KEYS = {
    "cross.pooler.ln_pool.weight": "ln_pool.weight",
    "cross.pooler.ln_pool.bias": "ln_pool.bias",
    "cross.pooler.dense.weight": "dense.weight",
    "cross.pooler.dense.bias": "dense.bias",
    "similarity_dense.weight": "similarity_dense.weight",
    "similarity_dense.bias": "similarity_dense.bias",
}
CROSS_POSITIONS = "cross.embeddings.position_embeddings.weight"
CROSS_BLOCKS = "cross.transformer.resblocks."


def cross_transformer_key(key: str) -> str | None:
    """A tightTransf cross-transformer key in the reference's temporal naming (which
    load_reference_temporal_state maps), or None for other keys."""
    if key == CROSS_POSITIONS:
        return "frame_position_embeddings.weight"
    if key.startswith(CROSS_BLOCKS):
        return "transformerClip.resblocks." + key.removeprefix(CROSS_BLOCKS)
    return None


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``x / ||x||`` over the last axis, without epsilon (as the references)."""
    return x / x.norm(dim=-1, keepdim=True)


def mean_pooled_video(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """frames (B, F, D), mask (B, F) -> (B, D): ``norm(sum_f mask_f norm(frame_f) / max(sum mask,
    1))``, the loose video vector."""
    weights = mask.to(frames.dtype).unsqueeze(-1)
    total = weights.sum(dim=1).clamp(min=1.0)
    return normalize((normalize(frames) * weights).sum(dim=1) / total)


def build_temporal(encoder: VideoTextEncoder, kind: str, num_layers: int) -> nn.Module:
    """The temporal module ``kind`` at the encoder's width, with the CLIP-text init (§0.4)."""
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
    """tightTransf (and DRL's xti): a transformer over ``[text; frames]`` per pair and a pooled
    logit head.

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
        seeded dropout draws the same mask.
        """
        a, (b, f, d) = text.shape[0], frames.shape
        positions = self.encoder.position_embeddings.weight
        if f + 1 > positions.shape[0]:
            raise ValueError(
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
    table and the first ``num_layers`` text layers. Also DRL's ``xti`` interaction."""
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


def is_cross_key(key: str) -> bool:
    """Whether a reference checkpoint key belongs to a cross encoder (``cross.*`` as mapped here,
    ``similarity_dense.*``); the key names are the same in CLIP4Clip and DRL."""
    return key in CROSS_HEAD_KEYS or cross_transformer_key(key) is not None


def load_reference_cross(cross: CrossEncoder, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load the cross-encoder keys of a reference checkpoint into ``cross`` (other keys are
    ignored). A missing or misshapen weight raises one ValueError line; the head goes first, so a
    checkpoint without any cross encoder is named by its head keys."""
    head = {ours: state_dict[ref] for ref, ours in CROSS_HEAD_KEYS.items() if ref in state_dict}
    load_weights(cross, head, CROSS_HEAD_KEYS.values(), "cross-encoder head")
    renamed = {cross_transformer_key(k): v for k, v in state_dict.items()}
    load_reference_temporal_state(
        cross.encoder, {k: v for k, v in renamed.items() if k is not None}
    )


class CLIP4Clip(RetrievalModel):
    """CLIP4Clip with ``method.sim_header`` meanP, seqLSTM, seqTransf or tightTransf."""

    def __init__(self, encoder: VideoTextEncoder, config: Config) -> None:
        super().__init__(encoder, config["train"]["gather_grad"])
        method = config["method"]
        self.sim_header = method["sim_header"]
        check_choice("method.sim_header", self.sim_header, SIM_HEADERS)
        self.tight = self.sim_header == "tightTransf"
        self.emcl = build_global_emcl(method)
        if self.tight:
            if self.emcl is not None:
                raise ConfigError(
                    "method.emcl needs global text/video vectors, which tightTransf has not; "
                    "set method.emcl=off or another method.sim_header"
                )
            self.cross = build_cross_encoder(
                encoder, method["temporal_layers"], method["cross_dropout"]
            )
        else:
            self.aggregator = build_temporal(encoder, self.sim_header, method["temporal_layers"])
        self.eval_block = config["eval"]["block_size"] if self.emcl is not None else None

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> Features:
        """Loose: ``{"text": (B, D)}`` normalised EOT feature; tight: ``{"sentence": (B, D)}``."""
        sentence = self.encoder.encode_text(ids, mask).sentence
        return {"sentence": sentence} if self.tight else {"text": normalize(sentence)}

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> Features:
        """Loose: ``{"video": (B, D)}`` normalised mean of the temporal module's frames; tight:
        ``{"frames": (B, F, D), "video_mask": (B, F)}`` CLIP frame features."""
        frames = self.encoder.encode_frames(pixels).cls
        if self.tight:
            return {"frames": frames, "video_mask": video_mask}
        return {"video": mean_pooled_video(self.aggregator(frames, video_mask), video_mask)}

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """Scores (Bt, Bv): cosines for loose types (after the EMCL plug-in), cross logits for
        tightTransf."""
        if self.tight:
            return self.cross(text["sentence"], video["frames"], video["video_mask"])
        t, v = mix_globals(self.emcl, text["text"], video["video"])
        return t @ v.t()

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """Symmetric cross-entropy; loose logits are scaled by the logit scale, tight ones not."""
        sim = self.similarity(text, video)
        return symmetric_cross_entropy(sim if self.tight else self.logit_scale * sim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training loss; tightTransf scores this process's batch only (reference behaviour)."""
        if not self.tight:
            return super().forward(batch)
        text = self.encode_text(batch["ids"], batch["mask"])
        return self.loss(text, self.encode_video(batch["pixels"], batch["video_mask"]))

    def owns_reference_key(self, key: str) -> bool:
        """Whether a non-CLIP key of a reference checkpoint belongs to this model's head."""
        if self.tight:
            return is_cross_key(key)
        return self.sim_header != "meanP" and key.startswith(TEMPORAL_KEYS)

    def load_reference_head(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load this head's keys of a reference checkpoint (:func:`load_reference_checkpoint`)."""
        if not self.tight:
            if self.sim_header != "meanP":
                load_reference_temporal_state(self.aggregator, dict(state_dict))
            return
        load_reference_cross(self.cross, state_dict)


def describe_keys(keys: list[str], limit: int = 6) -> str:
    """``a, b, ... (N more)`` for an error line."""
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(
    module: nn.Module, weights: Mapping[str, torch.Tensor], expected: Iterable[str], where: str
) -> None:
    """Copy ``weights`` (keys of ``module``'s state dict) into ``module`` as float32. A key of
    ``expected`` that is absent, or a shape that differs, raises one ValueError line."""
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ValueError(f"reference checkpoint lacks the {where} weights {describe_keys(missing)}")
    ours = module.state_dict()
    for key, value in weights.items():
        if value.shape != ours[key].shape:
            raise ValueError(
                f"reference checkpoint {where} weight {key!r} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(ours[key].shape)}; check data.max_words, "
                "data.max_frames and the encoder size"
            )
    module.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)


def load_reference_clip(encoder: VideoTextEncoder, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load the ``clip.``-prefixed OpenAI keys of a reference checkpoint into the encoder; every
    CLIP weight must be there with the encoder's shapes."""
    weights = convert_openai_state_dict(dict(state_dict), prefix="clip.")
    expected = set(encoder.clip.state_dict())
    unexpected = sorted(set(weights) - expected)
    if unexpected:
        raise ValueError(
            f"reference checkpoint CLIP weights {describe_keys(unexpected)} do not exist in the "
            "encoder; build it from the checkpoint's CLIP (encoder.pretrained)"
        )
    load_weights(encoder.clip, weights, expected, "CLIP")


class ReferenceHead(Protocol):
    """What :func:`load_reference_checkpoint` needs of a model (CLIP4Clip, XCLIP)."""

    encoder: VideoTextEncoder
    sim_header: str

    def owns_reference_key(self, key: str) -> bool: ...

    def load_reference_head(self, state_dict: Mapping[str, torch.Tensor]) -> None: ...


def load_reference_checkpoint(model: ReferenceHead, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a reference ``pytorch_model.bin`` state dict (METHODS §7.1) into ``model``.

    ``clip.*`` OpenAI keys go to the encoder, the rest to the method head (temporal module,
    tightTransf cross encoder, X-CLIP matrices). Keys that the model has no place for raise one
    ValueError line listing them before anything is loaded; the EMCL plug-in's ``mu`` is not in
    reference checkpoints and keeps its value.
    """
    unused = sorted(
        k for k in state_dict if not k.startswith("clip.") and not model.owns_reference_key(k)
    )
    if unused:
        raise ValueError(
            f"reference checkpoint keys with no place in {type(model).__name__} "
            f"(sim_header {model.sim_header}): {describe_keys(unused)}; check method.sim_header"
        )
    load_reference_clip(model.encoder, state_dict)
    model.load_reference_head(state_dict)
