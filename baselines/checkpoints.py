"""Reference checkpoint key maps and loaders shared by CLIP4Clip, X-CLIP and DRL (METHODS §7.1).

Their ``pytorch_model.bin`` files hold the OpenAI CLIP weights under ``clip.``, the temporal
module under CLIP4Clip's names (:data:`TEMPORAL_KEYS`, mapped by
``harness.temporal.load_reference_temporal_state``), and, for tightTransf and DRL's xti, the
cross encoder under ``cross.*`` / ``similarity_dense.*``. A checkpoint that does not fit the
model raises one CheckpointError line naming the keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import torch
from torch import nn

from baselines.common import CrossEncoder
from harness.encoder import CheckpointError, VideoTextEncoder, convert_openai_state_dict
from harness.temporal import load_reference_temporal_state

TEMPORAL_KEYS = ("frame_position_embeddings.", "transformerClip.", "lstm_visual.")
# tightTransf reference keys -> our CrossEncoder keys (its transformer is mapped separately):
# the pooler's layers lose their "cross.pooler." prefix, the logit layer keeps its name.
CROSS_HEAD_KEYS = {
    f"{prefix}{layer}.{param}": f"{layer}.{param}"
    for prefix, layer in (
        ("cross.pooler.", "ln_pool"),
        ("cross.pooler.", "dense"),
        ("", "similarity_dense"),
    )
    for param in ("weight", "bias")
}
CROSS_POSITIONS = "cross.embeddings.position_embeddings.weight"
CROSS_BLOCKS = "cross.transformer.resblocks."


def describe_keys(keys: list[str], limit: int = 6) -> str:
    """``a, b, ... (N more)``: the first ``limit`` of ``keys`` for an error line."""
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def cross_transformer_key(key: str) -> str | None:
    """A tightTransf cross-transformer key in the reference's temporal naming (which
    load_reference_temporal_state maps), or None for other keys."""
    if key == CROSS_POSITIONS:
        return "frame_position_embeddings.weight"
    if key.startswith(CROSS_BLOCKS):
        return "transformerClip.resblocks." + key.removeprefix(CROSS_BLOCKS)
    return None


def is_cross_key(key: str) -> bool:
    """Whether a reference checkpoint key belongs to a cross encoder (``cross.*`` as mapped here,
    ``similarity_dense.*``); the key names are the same in CLIP4Clip and DRL."""
    return key in CROSS_HEAD_KEYS or cross_transformer_key(key) is not None


def load_weights(
    module: nn.Module, weights: Mapping[str, torch.Tensor], expected: Iterable[str], where: str
) -> None:
    """Copy ``weights`` (keys of ``module``'s state dict) into ``module`` as float32. A key of
    ``expected`` that is absent, or a shape that differs, raises one CheckpointError line naming
    ``where`` (which weights these are)."""
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise CheckpointError(
            f"reference checkpoint lacks the {where} weights {describe_keys(missing)}"
        )
    ours = module.state_dict()
    for key, value in weights.items():
        if value.shape != ours[key].shape:
            raise CheckpointError(
                f"reference checkpoint {where} weight {key!r} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(ours[key].shape)}; check data.max_words, "
                "data.max_frames and the encoder size"
            )
    module.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)


def load_reference_cross(cross: CrossEncoder, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load the cross-encoder keys of a reference checkpoint into ``cross`` (other keys are
    ignored). A missing or misshapen weight raises one CheckpointError line; the head goes first,
    so a checkpoint without any cross encoder is named by its head keys."""
    head = {ours: state_dict[ref] for ref, ours in CROSS_HEAD_KEYS.items() if ref in state_dict}
    load_weights(cross, head, CROSS_HEAD_KEYS.values(), "cross-encoder head")
    renamed = {cross_transformer_key(k): v for k, v in state_dict.items()}
    load_reference_temporal_state(
        cross.encoder, {k: v for k, v in renamed.items() if k is not None}
    )


def load_openai_clip(
    clip: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    owner: str,
    prefix: str = "",
    optional: tuple[str, ...] = (),
) -> None:
    """Load the OpenAI CLIP keys under ``prefix`` of an ``owner`` (method name) checkpoint into
    ``clip`` (a ``CLIPModel``). A CLIP weight it lacks (other than ``optional`` ones) or one the
    model has no place for raises one CheckpointError line."""
    weights = convert_openai_state_dict(dict(state_dict), prefix=prefix)
    missing, unexpected = clip.load_state_dict(weights, strict=False)
    missing = [k for k in missing if k not in optional]
    if missing or unexpected:
        raise CheckpointError(
            f"{owner} checkpoint CLIP weights do not fit the encoder: missing "
            f"{describe_keys(missing)}, unexpected {describe_keys(unexpected)}"
        )


def load_reference_clip(encoder: VideoTextEncoder, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load the ``clip.``-prefixed OpenAI keys of a reference checkpoint into the encoder; every
    CLIP weight must be there with the encoder's shapes (else one CheckpointError line)."""
    weights = convert_openai_state_dict(dict(state_dict), prefix="clip.")
    expected = set(encoder.clip.state_dict())
    unexpected = sorted(set(weights) - expected)
    if unexpected:
        raise CheckpointError(
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
    """Load a reference CLIP4Clip or X-CLIP ``pytorch_model.bin`` state dict into ``model``.

    ``clip.*`` OpenAI keys go to the encoder, the rest to the method head (temporal module,
    tightTransf cross encoder, X-CLIP matrices). Keys that the model has no place for raise one
    CheckpointError line listing them before anything is loaded; the EMCL plug-in's ``mu`` is
    not in reference checkpoints and keeps its value.
    """
    unused = sorted(
        k for k in state_dict if not k.startswith("clip.") and not model.owns_reference_key(k)
    )
    if unused:
        raise CheckpointError(
            f"reference checkpoint keys with no place in {type(model).__name__} "
            f"(sim_header {model.sim_header}): {describe_keys(unused)}; check method.sim_header"
        )
    load_reference_clip(model.encoder, state_dict)
    model.load_reference_head(state_dict)
