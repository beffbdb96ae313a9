"""Tiny CLIP checkpoints in the OpenAI layout, made for tests from a plain ``transformers``
``CLIPModel``: its weights written under OpenAI's key names (the inverse of METHODS §7.3, written
here independently of harness.encoder), as a state dict or as a TorchScript archive like the
OpenAI ``clip`` package's ``ViT-B-32.pt``."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel

CLIP_BPE_VOCAB = 49408  # the OpenAI BPE: start of text 49406, end of text 49407, padding 0
WIDTH = 64  # one 64-wide head per tower: every CLIP loader derives heads as width // 64

_TOP = {
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
    "logit_scale": "logit_scale",
}
_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_TOWERS = {
    "vision_model.encoder.layers.": "visual.transformer.resblocks.",
    "text_model.encoder.layers.": "transformer.resblocks.",
}


def tiny_clip(image_size: int, patch_size: int, seed: int = 0, positions: int = 77) -> CLIPModel:
    """A random 1-layer, 64-wide ``CLIPModel`` for the CLIP BPE vocabulary and ``positions``
    text positions, every weight perturbed so that none keeps its init constant (LayerNorm,
    biases)."""
    tower = dict(
        hidden_size=WIDTH,
        intermediate_size=4 * WIDTH,
        num_hidden_layers=1,
        num_attention_heads=1,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    config = CLIPConfig(
        text_config=dict(
            **tower,
            vocab_size=CLIP_BPE_VOCAB,
            max_position_embeddings=positions,
            bos_token_id=CLIP_BPE_VOCAB - 2,
            eos_token_id=CLIP_BPE_VOCAB - 1,
            pad_token_id=0,
        ),
        vision_config=dict(**tower, image_size=image_size, patch_size=patch_size),
        projection_dim=WIDTH,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != "logit_scale":
                param.add_(0.05 * torch.randn_like(param))
    return model


def openai_state_dict(model: CLIPModel) -> dict[str, torch.Tensor]:
    """``model``'s weights under OpenAI CLIP's keys: q/k/v packed into ``in_proj``, the two
    projections stored (in, out)."""
    hf = {k: v.detach().clone() for k, v in model.state_dict().items() if "position_ids" not in k}
    out = {_TOP[k]: hf.pop(k) for k in list(hf) if k in _TOP}
    out["visual.proj"] = hf.pop("visual_projection.weight").t().contiguous()
    out["text_projection"] = hf.pop("text_projection.weight").t().contiguous()
    for hf_prefix, openai_prefix in _TOWERS.items():
        tower = [k.removeprefix(hf_prefix) for k in hf if k.startswith(hf_prefix)]
        for i in sorted({int(k.split(".")[0]) for k in tower}):
            ours, theirs = f"{hf_prefix}{i}.", f"{openai_prefix}{i}."
            for kind in ("weight", "bias"):
                qkv = [hf.pop(f"{ours}self_attn.{p}_proj.{kind}") for p in "qkv"]
                out[f"{theirs}attn.in_proj_{kind}"] = torch.cat(qkv)
            for name, openai_name in _LAYER.items():
                for kind in ("weight", "bias"):
                    out[f"{theirs}{openai_name}.{kind}"] = hf.pop(f"{ours}{name}.{kind}")
    assert not hf, f"unmapped CLIPModel keys {sorted(hf)}"
    return out


class _ArchiveRoot(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_jit_archive(sd: dict[str, torch.Tensor], path: Path) -> None:
    """A TorchScript archive whose state_dict() is ``sd``, like OpenAI's ViT-B-32.pt."""
    root = _ArchiveRoot()
    for key, value in sd.items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if not hasattr(module, name):
                module.add_module(name, nn.Module())
            module = getattr(module, name)
        if value.is_floating_point():
            module.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
        else:
            module.register_buffer(leaf, value.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(root), str(path))
