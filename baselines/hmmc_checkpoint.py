"""The cheetah003/HMMC checkpoint layout (METHODS §7.1) mapped onto :class:`baselines.hmmc.HMMC`.

HMMC saves its towers as ``text_encoder.*`` (OpenAI text keys) and ``visual_encoder.*`` (OpenAI
``visual.*`` keys plus its temporal transformer), pre-training checkpoints also the momentum
copies (``*_k.``), the projector/predictor MLPs and the key queues. A checkpoint that does not
fit the model raises one CheckpointError line naming the keys.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from baselines.checkpoints import describe_keys, load_openai_clip
from baselines.hmmc import HMMC, momentum_update
from harness.encoder import CheckpointError
from harness.temporal import load_reference_temporal_state

# Reference checkpoint layout (METHODS §7.1): encoder prefixes -> our modules.
_ENCODER_PREFIXES = {
    ("text_encoder.", "visual_encoder."): ("encoder", "temporal"),
    ("text_encoder_k.", "visual_encoder_k."): ("encoder_k", "temporal_k"),
}
_MLP_KEYS = {"linear_hidden.1.": "0.", "linear_hidden.2.": "1.", "linear_out.": "3."}
_MLPS = ("v_projector", "v_projector_k", "v_predictor")
_QUEUES = {
    "queue_v_cross_ng": "queue_video",
    "queue_title_cross_ng": "queue_text",
    "queue_frame_cross_ng": "queue_frame",
    "queue_frame_proj_ng": "queue_frame_proj",
    "queue_ptr": "queue_ptr",
}
# Pre-training keys that no HMMC retrieval model uses (text projector, MLM head, tag queue).
_IGNORED = ("t_projector.", "t_projector_k.", "cls.", "queue_tag_cross_ng")
_TEMPORAL = {
    "temporal_transformer.resblocks.": "transformerClip.resblocks.",
    "frame_position_embeddings.": "frame_position_embeddings.",
}


def _encoder_parts(
    sd: Mapping[str, torch.Tensor], text_prefix: str, visual_prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], set[str]]:
    """OpenAI-keyed CLIP weights, CLIP4Clip-keyed temporal weights and the keys consumed."""
    openai, temporal, used = {}, {}, set()
    for key, value in sd.items():
        if key.startswith(text_prefix):
            openai[key.removeprefix(text_prefix)] = value
        elif key.startswith(visual_prefix + "visual."):
            openai[key.removeprefix(visual_prefix)] = value
        else:
            rest = key.removeprefix(visual_prefix)
            match = next((p for p in _TEMPORAL if key.startswith(visual_prefix + p)), None)
            if match is None:
                continue
            temporal[_TEMPORAL[match] + rest.removeprefix(match)] = value
        used.add(key)
    return openai, temporal, used


def _load_encoder(
    model: HMMC,
    names: tuple[str, str],
    openai: dict[str, torch.Tensor],
    temporal: dict[str, torch.Tensor],
) -> None:
    """Load one (encoder, temporal module) pair of ``model``, named by ``names``."""
    # HMMC does not save its logit scale.
    load_openai_clip(getattr(model, names[0]).clip, openai, "HMMC", optional=("logit_scale",))
    module = getattr(model, names[1])
    if module is not None:
        load_reference_temporal_state(module, temporal)
    elif temporal:
        raise CheckpointError(
            "HMMC checkpoint has temporal transformer weights but method.use_temp is false"
        )


def _load_momentum_extras(model: HMMC, extras: dict[str, torch.Tensor]) -> None:
    """Projector/predictor MLPs and queues of a pre-training checkpoint, shapes checked."""
    ours = model.state_dict()
    wrong = sorted(k for k, v in extras.items() if k not in ours or v.shape != ours[k].shape)
    if wrong:
        raise CheckpointError(
            f"HMMC checkpoint momentum weights {describe_keys(wrong)} do not fit the model; match "
            "method.contrast_num_negative, method.projector_hidden and data.max_frames to it"
        )
    model.load_state_dict(extras, strict=False)


def load_reference_checkpoint(model: HMMC, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a cheetah003/HMMC ``pytorch_model.bin.{epoch}`` state dict into ``model``.

    ``text_encoder.*`` (OpenAI text keys) and ``visual_encoder.visual.*`` (OpenAI ``visual.*``
    keys) go to the encoder, ``visual_encoder.temporal_transformer.*`` /
    ``visual_encoder.frame_position_embeddings.weight`` to the temporal module. Pre-training
    checkpoints also carry momentum copies, projectors and queues: they are loaded into a model
    with ``momentum_contrast`` (whose momentum copies otherwise restart from the loaded online
    weights) and skipped otherwise, like the text projector and MLM head. Any other key, or a
    missing one, raises one CheckpointError line.
    """
    sd = dict(state_dict)
    used: set[str] = set(k for k in sd if k.startswith(_IGNORED))
    has_momentum = any(k.startswith("text_encoder_k.") for k in sd)
    for (text_prefix, visual_prefix), (encoder, temporal) in _ENCODER_PREFIXES.items():
        parts = _encoder_parts(sd, text_prefix, visual_prefix)
        used |= parts[2]
        if not parts[2] or (encoder == "encoder_k" and not model.momentum_contrast):
            continue
        _load_encoder(model, (encoder, temporal), parts[0], parts[1])
    if not any(k.startswith("text_encoder.") for k in sd):
        raise CheckpointError(
            "HMMC checkpoint has no text_encoder.* keys; is it an HMMC checkpoint?"
        )
    extras = {}
    for key in sd:
        head, _, rest = key.partition(".")
        if head in _MLPS:
            prefix = next((p for p in _MLP_KEYS if rest.startswith(p)), None)
            if prefix is not None:
                extras[f"{head}.{_MLP_KEYS[prefix]}{rest.removeprefix(prefix)}"] = sd[key]
                used.add(key)
        elif key in _QUEUES:
            extras[_QUEUES[key]] = sd[key]
            used.add(key)
    unmatched = sorted(set(sd) - used)
    if unmatched:
        raise CheckpointError(
            f"HMMC checkpoint keys with no place in the model: {describe_keys(unmatched)}"
        )
    if not model.momentum_contrast:
        return
    _load_momentum_extras(model, extras)
    if not has_momentum:
        momentum_update(model.momentum_pairs(), 0.0)
