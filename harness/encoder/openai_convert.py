"""OpenAI ViT CLIP checkpoints -> transformers ``CLIPModel`` weights and config (METHODS §0.1,
§7.2-7.3).

OpenAI keys (``visual.conv1.weight``, ``transformer.resblocks.3.attn.in_proj_weight``, ...) come
from the JIT archives (``ViT-B-32.pt``) or from the ``clip.``-prefixed state dicts the reference
repos save. Their residual blocks pack q/k/v into one ``in_proj`` matrix; transformers keeps three.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from transformers import CLIPConfig

from harness.errors import UserError

Tensor = torch.Tensor


class CheckpointError(UserError, ValueError):
    """A model checkpoint (CLIP weights, a reference repo's ``pytorch_model.bin``) that is missing,
    unreadable or does not fit the model; the message is one line naming the file or its keys."""


# Keys that map one-to-one, untouched.
_DIRECT = {
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
# OpenAI stores these projections as (in, out); nn.Linear wants (out, in).
_TRANSPOSED = {
    "visual.proj": "visual_projection.weight",
    "text_projection": "text_projection.weight",
}
# Integer attributes the JIT archives carry; transformers keeps them in the config.
_DROPPED = {"input_resolution", "context_length", "vocab_size"}

_TOWER_BLOCKS = {
    "visual.transformer.resblocks": "vision_model.encoder.layers",
    "transformer.resblocks": "text_model.encoder.layers",
}
_BLOCK_KEY = re.compile(r"^(visual\.transformer\.resblocks|transformer\.resblocks)\.(\d+)\.(.+)$")

# Residual-block parameter names (OpenAI / reference temporal transformers -> CLIPEncoderLayer).
_BLOCK_RENAME = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def convert_resblock_param(name: str, value: Tensor) -> dict[str, Tensor] | None:
    """One parameter of an OpenAI-style residual attention block -> ``CLIPEncoderLayer`` keys.

    ``name`` is relative to the block (``attn.in_proj_weight``, ``ln_1.bias``, ...). The packed
    ``in_proj`` (3W, W) / (3W,) is split row-wise into q, k, v. Returns None for a name that is
    not a block parameter.
    """
    if name in ("attn.in_proj_weight", "attn.in_proj_bias"):
        kind = name.rsplit("_", 1)[1]
        q, k, v = value.chunk(3, dim=0)
        return {f"self_attn.{p}_proj.{kind}": t for p, t in zip("qkv", (q, k, v), strict=True)}
    module, _, leaf = name.rpartition(".")
    if module in _BLOCK_RENAME and leaf in ("weight", "bias"):
        return {f"{_BLOCK_RENAME[module]}.{leaf}": value}
    return None


def _convert_key(name: str, value: Tensor) -> dict[str, Tensor] | None:
    """One OpenAI key -> HF keys; ``{}`` for dropped keys, None for unknown keys."""
    if name in _DROPPED:
        return {}
    if name in _DIRECT:
        return {_DIRECT[name]: value}
    if name in _TRANSPOSED:
        return {_TRANSPOSED[name]: value.t()}
    match = _BLOCK_KEY.match(name)
    if match is None:
        return None
    tower, index, param = match.groups()
    converted = convert_resblock_param(param, value)
    if converted is None:
        return None
    return {f"{_TOWER_BLOCKS[tower]}.{index}.{k}": v for k, v in converted.items()}


def _describe_keys(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def convert_openai_state_dict(sd: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """OpenAI ViT CLIP state dict -> ``CLIPModel`` state dict (float32, contiguous).

    Only keys starting with ``prefix`` are converted (``"clip."`` for the reference repos'
    checkpoints, whose other keys belong to their heads). Raises CheckpointError naming every key
    under the prefix that has no mapping (e.g. a ResNet CLIP).
    """
    out: dict[str, Tensor] = {}
    unmatched: list[str] = []
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        converted = _convert_key(key[len(prefix) :], value)
        if converted is None:
            unmatched.append(key)
            continue
        for name, tensor in converted.items():
            tensor = tensor.float() if tensor.is_floating_point() else tensor
            out[name] = tensor.contiguous()
    if unmatched:
        raise CheckpointError(
            f"OpenAI CLIP state dict has keys with no CLIPModel mapping (only ViT CLIP is "
            f"supported): {_describe_keys(unmatched)}"
        )
    return out


def _require(sd: dict[str, Tensor], key: str) -> Tensor:
    if key not in sd:
        raise CheckpointError(f"not an OpenAI ViT CLIP state dict: key {key!r} is missing")
    return sd[key]


def _count_blocks(sd: dict[str, Tensor], tower: str) -> int:
    pattern = re.compile(rf"^{re.escape(tower)}\.(\d+)\.attn\.in_proj_weight$")
    return sum(1 for key in sd if pattern.match(key))


def clip_config_from_openai(
    sd: dict[str, Tensor], prefix: str = "", head_dim: int = 64
) -> CLIPConfig:
    """The ``CLIPConfig`` whose shapes match an OpenAI ViT state dict (METHODS §0.1).

    Heads are ``width // head_dim`` in both towers (64 for every OpenAI release; smaller values
    serve tiny test models). Token ids follow OpenAI's layout (start/end of text are the last two
    ids, padding 0); callers with another tokenizer set their own. Raises CheckpointError when
    ``sd`` lacks a ViT CLIP key or its widths do not split into ``head_dim``-wide heads.
    """
    sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    conv = _require(sd, "visual.conv1.weight")
    vision_width, patch = conv.shape[0], conv.shape[-1]
    grid = round((_require(sd, "visual.positional_embedding").shape[0] - 1) ** 0.5)
    text_width = _require(sd, "ln_final.weight").shape[0]
    vision_layers = _count_blocks(sd, "visual.transformer.resblocks")
    text_layers = _count_blocks(sd, "transformer.resblocks")
    for width in (vision_width, text_width):
        if width % head_dim or width < head_dim:
            raise CheckpointError(f"CLIP width {width} is not a multiple of head_dim {head_dim}")
    vision = dict(
        hidden_size=vision_width,
        intermediate_size=_require(sd, "visual.transformer.resblocks.0.mlp.c_fc.weight").shape[0],
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_width // head_dim,
        image_size=patch * grid,
        patch_size=patch,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    vocab_size = _require(sd, "token_embedding.weight").shape[0]
    text = dict(
        vocab_size=vocab_size,
        hidden_size=text_width,
        intermediate_size=_require(sd, "transformer.resblocks.0.mlp.c_fc.weight").shape[0],
        num_hidden_layers=text_layers,
        num_attention_heads=text_width // head_dim,
        max_position_embeddings=_require(sd, "positional_embedding").shape[0],
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=0,
    )
    return CLIPConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=_require(sd, "text_projection").shape[1],
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def load_openai_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Tensors of an OpenAI CLIP file: a TorchScript archive (``torch.jit.load(...).state_dict()``)
    or, failing that, a plain ``torch.save``-d state dict. Dtypes are kept (often fp16).
    Raises CheckpointError for a missing file or one that holds no state dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"CLIP checkpoint {path} does not exist; check encoder.pretrained")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except RuntimeError:
        pass  # not a TorchScript archive
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read CLIP checkpoint {path}: {_first_line(exc)}; check encoder.pretrained"
        ) from exc
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(
            f"CLIP checkpoint {path} is not a state dict of tensors; check encoder.pretrained"
        )
    return dict(obj)
