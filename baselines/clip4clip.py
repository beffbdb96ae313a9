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
  features: :meth:`CLIP4Clip.batch_loss` does the same under ``train.gather_grad`` local or sum,
  so with N processes every loss sees ``train.batch_size / N`` pairs; under ``global`` it scores
  the gathered global batch (any process count then trains alike). Evaluation costs one
  transformer pass per pair of a block.

EMCL plug-in (``method.emcl``, loose types only): the normalised global text vector ``t`` and
video vector ``v`` of each item are the whole score here, so EMCL replaces it entirely:
``inference`` (METHODS §4.7) runs the EM step at evaluation over the ``[videos; texts]`` rows of a
scoring block (mu never updated, outputs not re-normalised) and scores ``t' . v'``; training is
unchanged. ``joint`` (§4.8) runs the joint-training EM layer (re-normalised output, mu moved by
momentum in training) on the ``[videos; texts]`` rows of the training batch and of every scoring
block. Both make scores depend on the block (``eval_block``). tightTransf has no global vectors
and rejects the plug-in.

Reference checkpoints load through :func:`baselines.checkpoints.load_reference_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from baselines.checkpoints import TEMPORAL_KEYS, is_cross_key, load_reference_cross
from baselines.checks import SIM_HEADERS
from baselines.common import build_cross_encoder, build_temporal, mean_pooled_video, normalize
from baselines.emcl_plugin import build_global_emcl, mix_globals
from harness.config import Config, ConfigError, check_choice
from harness.encoder import VideoTextEncoder
from harness.retrieval import (
    Features,
    RetrievalModel,
    split_features,
    symmetric_cross_entropy,
)
from harness.temporal import load_reference_temporal_state


class CLIP4Clip(RetrievalModel):
    """CLIP4Clip with ``method.sim_header`` meanP, seqLSTM, seqTransf or tightTransf."""

    def __init__(self, encoder: VideoTextEncoder, config: Config) -> None:
        super().__init__(encoder, config["train"]["gather_grad"])
        method = config["method"]
        self.sim_header = method["sim_header"]
        check_choice("method.sim_header", self.sim_header, SIM_HEADERS)
        self.tight = self.sim_header == "tightTransf"
        if self.tight and config["train"]["reference_world_size"] is not None:
            raise ConfigError(
                "config key 'train.reference_world_size' needs a loss on the gathered batch; "
                "tightTransf scores each process's own pairs: run it on that many processes"
            )
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
            # Its scores are the cross encoder's logits: the logit scale gets no gradient, and a
            # parameter without one makes DDP wait for it and fail at the next step (the
            # reference passes find_unused_parameters=True). Frozen, it is left alone alike.
            encoder.logit_scale.requires_grad_(False)
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

    def batch_loss(self, features: Features) -> torch.Tensor:
        """Training loss; tightTransf scores this process's batch only (reference behaviour)
        unless ``train.gather_grad`` is global."""
        if self.tight and self.gather_grad != "global":
            return self.loss(*split_features(features))
        return super().batch_loss(features)

    def negatives_per_query(self, global_batch: int, world: int) -> int:
        """In-batch negatives: of this process's batch for tightTransf under local or sum."""
        if self.tight and self.gather_grad != "global":
            return global_batch // world - 1
        return global_batch - 1

    def owns_reference_key(self, key: str) -> bool:
        """Whether a non-CLIP key of a reference checkpoint belongs to this model's head."""
        if self.tight:
            return is_cross_key(key)
        return self.sim_header != "meanP" and key.startswith(TEMPORAL_KEYS)

    def load_reference_head(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load this head's keys of a reference checkpoint (called by
        :func:`baselines.checkpoints.load_reference_checkpoint`)."""
        if not self.tight:
            if self.sim_header != "meanP":
                load_reference_temporal_state(self.aggregator, dict(state_dict))
            return
        load_reference_cross(self.cross, state_dict)
