"""Temporal aggregation of frame features: meanP, seqLSTM, seqTransf (METHODS §0.4).

Every module maps frames (B, F, D) float32 and a frame mask (B, F) (1 = real frame) to (B, F, D).
seqTransf layers are transformers' ``CLIPEncoderLayer`` with the reference's TF-style LayerNorm
epsilon (1e-12), so the CLIP text layers they start from copy over key for key.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import CLIPModel, CLIPTextConfig
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from harness.config import ConfigError
from harness.config_checks import AGGREGATORS
from harness.encoder.openai_convert import CheckpointError, convert_resblock_param

# Additive attention bias on padded frames (the reference uses -1e6, not -inf).
MASK_BIAS = -1e6


class MeanPooling(nn.Module):
    """meanP: identity; pooling over frames happens in each method's similarity."""

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """frames (B, F, D), mask (B, F) -> frames unchanged."""
        return frames


class SeqLSTM(nn.Module):
    """seqLSTM: a one-layer LSTM over the real frames of each video, plus a residual."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(width, width, num_layers=1, batch_first=True)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """frames (B, F, D), mask (B, F) -> (B, F, D).

        Rows past a video's length are 0 + frame; rows past the longest video in the batch get the
        input twice (the reference pads the unpacked output with the input, then adds it again).
        """
        lengths = mask.long().sum(dim=-1).cpu()
        if bool((lengths == 0).any()):
            raise ValueError("seqLSTM needs at least one real frame per video (a mask row is 0)")
        packed = pack_padded_sequence(frames, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        out = torch.cat((out, frames[:, out.shape[1] :]), dim=1)
        return out + frames


class TransformerBlocks(nn.Module):
    """Pre-LN attention blocks without a causal mask (the references' ``Transformer`` of
    ``module_cross``): transformers' ``CLIPEncoderLayer`` with TF-style LayerNorm epsilon 1e-12."""

    def __init__(self, width: int, heads: int, num_layers: int) -> None:
        super().__init__()
        config = CLIPTextConfig(
            hidden_size=width,
            intermediate_size=4 * width,
            num_attention_heads=heads,
            num_hidden_layers=num_layers,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-12,
        )
        config._attn_implementation = "sdpa"
        self.width = width
        self.heads = heads
        self.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), mask (B, L) -> (B, L, D): see :meth:`attend`."""
        return self.attend(x, mask)

    def attend(self, x: torch.Tensor, mask: torch.Tensor, head_major: bool = False) -> torch.Tensor:
        """x (B, L, D), mask (B, L) -> the blocks' output (B, L, D); positions with mask 0 are
        masked as keys only (their own rows are still computed).

        ``head_major``: the mask order of CLIP2Video's and HMMC's ``attn_mask.repeat(heads, 1,
        1)`` under ``nn.MultiheadAttention`` (METHODS §10.16): head h of item b uses the mask of
        item ``(b * heads + h) % B``, so items of different lengths mask each other's keys.
        """
        if head_major:
            b = mask.shape[0]
            owner = (torch.arange(b)[:, None] * self.heads + torch.arange(self.heads)) % b
            keys = mask[owner.to(mask.device)]  # (B, heads, L)
        else:
            keys = mask[:, None]
        bias = (1.0 - keys.to(x.dtype))[:, :, None, :] * MASK_BIAS
        for layer in self.layers:
            x = layer(x, bias)
        return x


class SeqTransformer(TransformerBlocks):
    """seqTransf: position embeddings, pre-LN attention blocks without a causal mask, residual."""

    def __init__(self, width: int, heads: int, num_layers: int, max_positions: int) -> None:
        super().__init__(width, heads, num_layers)
        self.position_embeddings = nn.Embedding(max_positions, width)
        # registered before the layers, as seqTransf always was: the random init draws, the
        # optimizer's parameter order and so every trained number stay those of earlier runs
        self._modules["layers"] = self._modules.pop("layers")

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """frames (B, F, D), mask (B, F) -> T(frames + pos[:F]) + frames, (B, F, D).

        Padded frames are masked as keys only; their own rows are still computed.
        """
        x = frames + self.position_embeddings.weight[: frames.shape[1]]
        return self.attend(x, mask) + frames


def init_weights(module: nn.Module) -> None:
    """The reference ``init_weights``: Linear/Embedding N(0, 0.02), Linear bias 0, LayerNorm 1/0
    (the LSTM keeps PyTorch's default init)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def build_aggregator(
    kind: str, width: int, heads: int, num_layers: int = 4, max_positions: int = 77
) -> nn.Module:
    """A temporal module ``(frames (B, F, D), mask (B, F)) -> (B, F, D)`` with D = ``width``.

    ``kind`` is meanP, seqLSTM or seqTransf; ``heads``, ``num_layers`` and ``max_positions`` (rows
    of the frame position table) matter for seqTransf only. Weights get the reference's random
    init; call :func:`init_from_clip_text` to start from CLIP's text tower instead.
    """
    if kind == "meanP":
        module: nn.Module = MeanPooling()
    elif kind == "seqLSTM":
        module = SeqLSTM(width)
    elif kind == "seqTransf":
        module = SeqTransformer(width, heads, num_layers, max_positions)
    else:
        raise ConfigError(
            f"unknown temporal module {kind!r} (method.agg_module or method.sim_header); choose "
            f"one of {', '.join(AGGREGATORS)}"
        )
    module.apply(init_weights)
    return module


@torch.no_grad()
def init_from_clip_text(aggregator: nn.Module, clip: CLIPModel) -> None:
    """The reference initialization trick, in place: attention blocks (a seqTransf or bare
    :class:`TransformerBlocks`) take CLIP's text layers i < their depth, a seqTransf also the text
    position table (rows 0..max_positions-1); layers deeper than the text tower and all other
    modules keep their random init."""
    if not isinstance(aggregator, TransformerBlocks):
        return
    text = clip.text_model
    table = text.embeddings.position_embedding.weight
    if table.shape[1] != aggregator.width:
        raise CheckpointError(
            f"seqTransf width {aggregator.width} differs from the CLIP text width "
            f"{table.shape[1]}; the CLIP init needs text width == embedding width: use a "
            "checkpoint whose text width equals its projection_dim, or the meanP or seqLSTM "
            "temporal module"
        )
    if isinstance(aggregator, SeqTransformer):
        rows = min(table.shape[0], aggregator.position_embeddings.weight.shape[0])
        aggregator.position_embeddings.weight[:rows] = table[:rows]
    for ours, theirs in zip(aggregator.layers, text.encoder.layers, strict=False):
        ours.load_state_dict(theirs.state_dict())


_REFERENCE_PREFIXES = ("frame_position_embeddings.", "transformerClip.resblocks.", "lstm_visual.")


def _map_reference_key(key: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """One reference temporal key -> our keys (``{}``: known but unused); None if unknown."""
    if key == "frame_position_embeddings.weight":
        return {"position_embeddings.weight": value}
    if key.startswith("lstm_visual."):
        return {"lstm." + key.removeprefix("lstm_visual."): value}
    index, _, name = key.removeprefix("transformerClip.resblocks.").partition(".")
    converted = convert_resblock_param(name, value) if index.isdigit() else None
    if converted is None:
        return None
    return {f"layers.{index}.{k}": v for k, v in converted.items()}


def load_reference_temporal_state(module: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """Load the temporal weights of a reference checkpoint (CLIP4Clip / X-CLIP / DRL / EMCL-Net
    keys ``frame_position_embeddings.weight``, ``transformerClip.resblocks.{i}.*``,
    ``lstm_visual.*``) into a module from :func:`build_aggregator`. Other keys of ``sd`` are
    ignored; a seqLSTM ignores the (unused) position table. Raises a one-line CheckpointError
    when the checkpoint's temporal weights do not fit the module."""
    ours = module.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if not key.startswith(_REFERENCE_PREFIXES):
            continue
        converted = _map_reference_key(key, value)
        if converted is None:
            raise CheckpointError(f"unknown temporal key {key!r} in the checkpoint")
        mapped.update(converted)
    if isinstance(module, SeqLSTM):
        mapped.pop("position_embeddings.weight", None)
    unexpected = sorted(set(mapped) - set(ours))
    missing = sorted(set(ours) - set(mapped))
    if unexpected or missing:
        raise CheckpointError(
            f"checkpoint temporal weights do not fit {type(module).__name__}: missing "
            f"{missing[:4]}, unexpected {unexpected[:4]} (is the aggregation kind right?)"
        )
    for key, value in mapped.items():
        if value.shape != ours[key].shape:
            raise CheckpointError(
                f"checkpoint temporal weight {key!r} has shape {tuple(value.shape)}, the module "
                f"expects {tuple(ours[key].shape)}"
            )
    module.load_state_dict({k: v.float() for k, v in mapped.items()})
