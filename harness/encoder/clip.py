"""The shared CLIP encoder: a ``transformers.CLIPModel`` built from a preset, an HF folder / hub id
or an OpenAI checkpoint, and the video/text feature extraction every method uses (METHODS §0.1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel

from harness.config import ConfigError
from harness.encoder.openai_convert import (
    CheckpointError,
    clip_config_from_openai,
    convert_openai_state_dict,
    load_openai_checkpoint,
)


class Tower(NamedTuple):
    """Shape of one transformer tower: hidden width, number of layers, attention heads."""

    width: int
    layers: int
    heads: int


class Preset(NamedTuple):
    """Tower shapes of a random-init CLIP and the width of the joint embedding space."""

    vision: Tower
    text: Tower
    projection_dim: int


# Tower shapes of the random-init presets; image/patch size, vocabulary and text length come from
# the run. ``tiny`` is the synthetic benchmark's CPU model (1.1 M parameters plus 128 per token):
# measured on 2 cores with 64 videos x 8 frames at 64 px, a training step took ~0.32 s with 2
# vision layers against ~0.46 s with 3, while a third text layer costs little. ``base`` is
# ViT-B/32 (with image_size=224, patch_size=32 and the 49408-token BPE vocabulary: 151.3 M).
# The text width equals projection_dim so that temporal modules can copy text layers (§0.4).
TINY = Preset(vision=Tower(128, 2, 4), text=Tower(128, 3, 4), projection_dim=128)
BASE = Preset(vision=Tower(768, 12, 12), text=Tower(512, 12, 8), projection_dim=512)
PRESETS = {"tiny": TINY, "base": BASE}

T = TypeVar("T")
OPENAI_SUFFIXES = (".pt", ".pth", ".bin")
# transformers pools text by argmax(ids) when eos_token_id == 2 (legacy configs), whatever the ids.
_LEGACY_EOS = 2


def is_openai_file(pretrained: str | None) -> bool:
    """Whether ``encoder.pretrained`` names an OpenAI-layout file (a .pt/.pth/.bin name, or any
    existing file, such as a reference repository's ``pytorch_model.bin.best.2``) rather than an
    HF folder or hub id."""
    if not pretrained:
        return False
    return str(pretrained).endswith(OPENAI_SUFFIXES) or Path(pretrained).is_file()


class TextFeatures(NamedTuple):
    """``sentence`` (B, D): the projected EOT row; ``words`` (B, L, D): every projected row."""

    sentence: torch.Tensor
    words: torch.Tensor


class FrameFeatures(NamedTuple):
    """``cls`` (B, F, D): projected frame CLS; ``patches`` (B, F, P, D) or None."""

    cls: torch.Tensor
    patches: torch.Tensor | None


def _token_ids(vocab_size: int, sot_id: int, eot_id: int, pad_id: int) -> dict[str, int]:
    """Text-config token ids, checked against the vocabulary."""
    if eot_id == _LEGACY_EOS:
        # Only a user's tokenizer (data.tokenizer) can bring this id; ours never use it.
        raise ConfigError(
            f"eot_id {_LEGACY_EOS} makes transformers' CLIP pool text by argmax; give the "
            "tokenizer's end-of-text token another id or choose another data.tokenizer"
        )
    for name, value in (("sot_id", sot_id), ("eot_id", eot_id), ("pad_id", pad_id)):
        if not 0 <= value < vocab_size:
            raise ValueError(f"{name} {value} is outside the vocabulary of size {vocab_size}")
    return dict(bos_token_id=sot_id, eos_token_id=eot_id, pad_token_id=pad_id)


def _preset_config(
    size: str,
    image_size: int,
    patch_size: int,
    vocab_size: int,
    max_text_positions: int,
    token_ids: dict[str, int],
) -> CLIPConfig:
    """The CLIPConfig of a random-init preset for these input shapes and token ids."""
    if size not in PRESETS:
        raise ConfigError(
            f"unknown encoder size {size!r} (encoder.size); choose one of {', '.join(PRESETS)}"
        )
    if image_size % patch_size:
        raise ConfigError(
            f"image_size {image_size} is not a multiple of patch_size {patch_size}; change "
            "data.image_size or encoder.patch_size"
        )
    preset = PRESETS[size]
    vision = dict(**_tower_config(preset.vision), image_size=image_size, patch_size=patch_size)
    text = dict(
        **_tower_config(preset.text),
        vocab_size=vocab_size,
        max_position_embeddings=max_text_positions,
        **token_ids,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=preset.projection_dim)


def _tower_config(tower: Tower) -> dict[str, Any]:
    """The transformer part of a CLIP tower config (4x MLP, OpenAI's quick GELU and LN eps)."""
    return dict(
        hidden_size=tower.width,
        intermediate_size=4 * tower.width,
        num_hidden_layers=tower.layers,
        num_attention_heads=tower.heads,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


def _check_pretrained_shapes(
    where: str, config: CLIPConfig, image_size: int, vocab_size: int, max_text_positions: int
) -> None:
    """A checkpoint fixes frame size, vocabulary and text length; the run must agree with it."""
    vision, text = config.vision_config, config.text_config
    if vision.image_size != image_size:
        raise ConfigError(
            f"CLIP checkpoint {where} expects {vision.image_size}px frames but image_size is "
            f"{image_size}; set data.image_size to {vision.image_size}"
        )
    if text.vocab_size != vocab_size:
        raise ConfigError(
            f"CLIP checkpoint {where} has a vocabulary of {text.vocab_size} tokens but the "
            f"tokenizer has {vocab_size}; use the tokenizer the checkpoint was trained with"
        )
    if text.max_position_embeddings < max_text_positions:
        raise ConfigError(
            f"CLIP checkpoint {where} has {text.max_position_embeddings} text positions, fewer "
            f"than the {max_text_positions} requested; shorten data.max_words"
        )


def _set_token_ids(config: CLIPConfig, token_ids: dict[str, int]) -> None:
    for name, value in token_ids.items():
        setattr(config.text_config, name, value)


def _load_openai(path: Path, head_dim: int) -> tuple[CLIPConfig, dict[str, torch.Tensor]]:
    sd = load_openai_checkpoint(path)
    # The reference repos save CLIP under "clip."; their other keys are not ours to load here.
    prefix = "clip." if "clip.visual.conv1.weight" in sd else ""
    try:
        config = clip_config_from_openai(sd, prefix=prefix, head_dim=head_dim)
        weights = convert_openai_state_dict(sd, prefix=prefix)
    except CheckpointError as exc:
        raise CheckpointError(f"CLIP checkpoint {path}: {exc}") from exc
    return config, weights


def _load_state(clip: CLIPModel, weights: dict[str, torch.Tensor], where: str) -> None:
    missing, unexpected = clip.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"CLIP checkpoint {where} does not fit CLIPModel: missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}"
        )


def _hf_call(load: Callable[..., T], pretrained: str, **kwargs: Any) -> T:
    """``load(pretrained, **kwargs)`` with any failure turned into one line naming the source."""
    try:
        return load(pretrained, **kwargs)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"cannot load CLIP model {pretrained!r} (an HF folder, a cached hub id, or an "
            f"OpenAI .pt file): {first}; check encoder.pretrained"
        ) from exc


def build_clip(
    pretrained: str | None,
    size: str = "tiny",
    image_size: int = 64,
    patch_size: int = 16,
    *,
    vocab_size: int,
    max_text_positions: int = 77,
    sot_id: int,
    eot_id: int,
    pad_id: int = 0,
    head_dim: int = 64,
) -> CLIPModel:
    """A float32 ``CLIPModel`` in train mode.

    ``pretrained`` None: random init of preset ``size`` (``PRESETS``) for ``image_size`` /
    ``patch_size`` frames, ``vocab_size`` tokens and ``max_text_positions`` positions.
    A file (or a name ending in .pt/.pth/.bin): an OpenAI CLIP checkpoint (JIT archive or state
    dict, optionally ``clip.``-prefixed), shapes read from the weights with ``head_dim``-wide
    heads.
    Anything else: ``CLIPModel.from_pretrained`` (an HF folder or hub id; the hub is reached only
    when the HF offline variables allow it). For checkpoints, ``size`` and ``patch_size`` are
    ignored and ``image_size`` / ``vocab_size`` must match the weights. The text config gets the
    tokenizer's ``sot_id`` / ``eot_id`` / ``pad_id``. A checkpoint that is missing, unreadable
    or not a CLIP model raises CheckpointError; settings that do not fit it (or no preset) raise
    ConfigError; both are one line.
    """
    token_ids = _token_ids(vocab_size, sot_id, eot_id, pad_id)
    if pretrained is None:
        config = _preset_config(
            size, image_size, patch_size, vocab_size, max_text_positions, token_ids
        )
        return CLIPModel(config).float().train()
    if is_openai_file(pretrained):
        config, weights = _load_openai(Path(pretrained), head_dim)
        _check_pretrained_shapes(pretrained, config, image_size, vocab_size, max_text_positions)
        _set_token_ids(config, token_ids)
        clip = CLIPModel(config)
        _load_state(clip, weights, pretrained)
        return clip.float().train()
    config = _hf_call(CLIPConfig.from_pretrained, pretrained)
    _check_pretrained_shapes(pretrained, config, image_size, vocab_size, max_text_positions)
    _set_token_ids(config, token_ids)
    clip = _hf_call(CLIPModel.from_pretrained, pretrained, config=config, dtype=torch.float32)
    return clip.float().train()


class VideoTextEncoder(nn.Module):
    """Text and frame features from a ``CLIPModel`` (attribute ``clip``), as the reference repos
    compute them: causal-only text attention, EOT pooling at ``sum(mask) - 1``, frame CLS after
    ``post_layernorm`` and the visual projection."""

    def __init__(self, clip: CLIPModel) -> None:
        super().__init__()
        self.clip = clip

    @property
    def embed_dim(self) -> int:
        """Width D of the joint embedding space."""
        return self.clip.config.projection_dim

    @property
    def logit_scale(self) -> nn.Parameter:
        """The learnt log of the logit scale (a scalar parameter; clamp it in place)."""
        return self.clip.logit_scale

    def freeze_text_tower(self) -> None:
        """Freeze the text tower (embeddings, transformer, projection) and the logit scale, for a
        head whose loss reads frames only."""
        for module in (self.clip.text_model, self.clip.text_projection):
            module.requires_grad_(False)
        self.clip.logit_scale.requires_grad_(False)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> TextFeatures:
        """ids, mask (B, L) -> sentence (B, D), words (B, L, D), float32.

        The padding mask is not given to attention (causal mask only, METHODS §0.1): padded rows
        are computed like real ones and, by causality, never change the real rows.
        """
        hidden = self.clip.text_model(input_ids=ids, attention_mask=None).last_hidden_state
        words = self.clip.text_projection(hidden)
        eot = mask.long().sum(dim=-1) - 1
        sentence = words[torch.arange(words.shape[0], device=words.device), eot]
        return TextFeatures(sentence=sentence.float(), words=words.float())

    def encode_frames(self, pixels: torch.Tensor, with_patches: bool = False) -> FrameFeatures:
        """pixels (B, F, 3, H, W) -> cls (B, F, D) and, if ``with_patches``, patches (B, F, P, D).

        Patch tokens go through ``post_layernorm`` and the projection too (OpenAI's ln_post acts
        on every token).
        """
        b, f = pixels.shape[:2]
        out = self.clip.vision_model(pixel_values=pixels.flatten(0, 1))
        if not with_patches:
            cls = self.clip.visual_projection(out.pooler_output)
            return FrameFeatures(cls=cls.view(b, f, -1).float(), patches=None)
        tokens = self.clip.visual_projection(
            self.clip.vision_model.post_layernorm(out.last_hidden_state)
        )
        tokens = tokens.view(b, f, tokens.shape[1], -1).float()
        return FrameFeatures(cls=tokens[:, :, 0], patches=tokens[:, :, 1:])
