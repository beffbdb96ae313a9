"""The shared CLIP encoder (transformers ``CLIPModel``) and its checkpoint loaders."""

from harness.encoder.clip import (
    BASE,
    PRESETS,
    TINY,
    FrameFeatures,
    Preset,
    TextFeatures,
    Tower,
    VideoTextEncoder,
    build_clip,
)
from harness.encoder.openai_convert import (
    CheckpointError,
    clip_config_from_openai,
    convert_openai_state_dict,
    convert_resblock_param,
    load_openai_checkpoint,
)

__all__ = [
    "BASE",
    "PRESETS",
    "TINY",
    "CheckpointError",
    "FrameFeatures",
    "Preset",
    "TextFeatures",
    "Tower",
    "VideoTextEncoder",
    "build_clip",
    "clip_config_from_openai",
    "convert_openai_state_dict",
    "convert_resblock_param",
    "load_openai_checkpoint",
]
