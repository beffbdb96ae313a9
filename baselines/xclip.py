"""X-CLIP (METHODS §2): multi-grained contrast between sentence/word and video/frame features,
with attention over similarity matrices (AOSM).

Features (all L2-normalised): the EOT sentence vector, every one of the L token vectors (words),
the CLIP4Clip loose video vector (temporal module, masked mean) and the frame vectors (CLIP's
frame features before the temporal module, ``method.original_frames``). The score of a pair is
``(VS + VW + SF + FW) / 4``: video-sentence through ``global_mat_weight``; video-word and
sentence-frame, each similarity vector re-weighted by ``softmax(./tau)`` mixed by an L x L / F x F
matrix; frame-word AOSM on the L x F matrix of ``(word local_mat_weight) . frame``. The eight
matrices start at identity and tie the model to ``data.max_words`` and ``data.max_frames``.

Padding: the reference uses all L token positions (SOT, EOT and id-0 padding) and all F frame
slots (padded frames are CLIP features of black images) in VW, SF and FW; that is the default.
``method.mask_padding: true`` drops padded words and frames from those softmaxes and sums instead.

EMCL plug-in (``method.emcl``): EMCL replaces the video-sentence term only, i.e.
``VS = s' G v'^T`` where ``s'``, ``v'`` are the sentence and video vectors after the EM step over
the ``[videos; texts]`` rows of the block (``inference``: evaluation only, METHODS §4.7;
``joint``: training and evaluation, §4.8). VW, SF and FW keep the plain vectors.

Reference checkpoints load through :func:`baselines.checkpoints.load_reference_checkpoint`
(CLIP4Clip's layout plus the eight matrices).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from baselines.checkpoints import TEMPORAL_KEYS, load_weights
from baselines.common import build_temporal, mean_pooled_video, normalize
from baselines.emcl_plugin import build_global_emcl, mix_globals
from harness.config import Config, ConfigError, check_choice
from harness.encoder import VideoTextEncoder
from harness.retrieval import Features, RetrievalModel, symmetric_cross_entropy
from harness.temporal import AGGREGATORS, load_reference_temporal_state

# Learnable matrices (reference names) and the axis each spans: D, L (words) or F (frames).
MATRICES = {
    "global_mat_weight": "D",
    "word_logit_weight": "L",
    "frame_logit_weight": "F",
    "local_mat_weight": "D",
    "frame_mat_weight": "F",
    "word_mat_weight": "L",
    "frame_mat_weight2": "F",
    "word_mat_weight2": "L",
}


def attend(
    values: torch.Tensor, weight: torch.Tensor, tau: float, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """``sum_i values_i (softmax(values / tau) @ weight)_i`` over the last axis (size N).

    ``values`` (..., N), ``weight`` (N, N); ``keep`` (broadcastable to ``values``, 1 = real)
    removes padded positions from the softmax and the sum. Returns (...).
    """
    logits = values / tau
    if keep is not None:
        keep = keep.bool()
        logits = logits.masked_fill(~keep, float("-inf"))
        values = values * keep
    return (values * (torch.softmax(logits, dim=-1) @ weight)).sum(dim=-1)


def inner(keep: torch.Tensor | None) -> torch.Tensor | None:
    """A mask (..., N) for the last axis of a (..., M, N) tensor."""
    return None if keep is None else keep[..., None, :]


class XCLIP(RetrievalModel):
    """X-CLIP with a loose temporal module (``method.sim_header``, seqTransf in every script)."""

    def __init__(self, encoder: VideoTextEncoder, config: Config) -> None:
        super().__init__(encoder, config["train"]["gather_grad"])
        method, data = config["method"], config["data"]
        self.sim_header = method["sim_header"]
        check_choice("method.sim_header", self.sim_header, AGGREGATORS)
        self.aggregator = build_temporal(encoder, self.sim_header, method["temporal_layers"])
        sizes = {"D": encoder.embed_dim, "L": data["max_words"], "F": data["max_frames"]}
        for name, axis in MATRICES.items():
            setattr(self, name, nn.Parameter(torch.eye(sizes[axis])))
        self.tau = method["tau"]
        self.original_frames = method["original_frames"]
        self.mask_padding = method["mask_padding"]
        self.emcl = build_global_emcl(method)
        self.eval_block = config["eval"]["block_size"] if self.emcl is not None else None

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> Features:
        """``{"sentence": (B, D), "words": (B, L, D), "word_mask": (B, L)}``, normalised."""
        if ids.shape[1] != self.word_logit_weight.shape[0]:
            raise ConfigError(
                f"X-CLIP word matrices span {self.word_logit_weight.shape[0]} tokens but texts "
                f"have {ids.shape[1]}; data.max_words must match the model"
            )
        out = self.encoder.encode_text(ids, mask)
        return {
            "sentence": normalize(out.sentence),
            "words": normalize(out.words),
            "word_mask": mask,
        }

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> Features:
        """``{"video": (B, D), "frames": (B, F, D), "video_mask": (B, F)}``, normalised."""
        if pixels.shape[1] != self.frame_logit_weight.shape[0]:
            raise ConfigError(
                f"X-CLIP frame matrices span {self.frame_logit_weight.shape[0]} frames but videos "
                f"have {pixels.shape[1]}; data.max_frames must match the model"
            )
        frames = self.encoder.encode_frames(pixels).cls
        temporal = self.aggregator(frames, video_mask)
        return {
            "video": mean_pooled_video(temporal, video_mask),
            "frames": normalize(frames if self.original_frames else temporal),
            "video_mask": video_mask,
        }

    def prepare_text(self, text: Features) -> Features:
        """The features plus ``"local_words"`` (B, L, D): the words through the AOSM word matrix,
        once per text rather than once per scoring block."""
        return {**text, "local_words": text["words"] @ self.local_mat_weight}

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """``(VS + VW + SF + FW) / 4`` (Bt, Bv) of prepared features, without the logit scale.
        Memory O(Bt Bv L F)."""
        sentence, words = text["sentence"], text["words"]
        frames = video["frames"]
        word_keep = text["word_mask"][:, None, :] if self.mask_padding else None  # (Bt, 1, L)
        frame_keep = video["video_mask"][None] if self.mask_padding else None  # (1, Bv, F)
        em_sentence, em_video = mix_globals(self.emcl, sentence, video["video"])
        video_sentence = em_sentence @ self.global_mat_weight @ em_video.t()
        video_word = attend(
            torch.einsum("tld,vd->tvl", words, video["video"]),
            self.word_logit_weight,
            self.tau,
            word_keep,
        )
        sentence_frame = attend(
            torch.einsum("td,vfd->tvf", sentence, frames),
            self.frame_logit_weight,
            self.tau,
            frame_keep,
        )
        frame_word = self.frame_word(text["local_words"], frames, word_keep, frame_keep)
        return (video_sentence + video_word + sentence_frame + frame_word) / 4

    def frame_word(
        self,
        local_words: torch.Tensor,
        frames: torch.Tensor,
        word_keep: torch.Tensor | None,
        frame_keep: torch.Tensor | None,
    ) -> torch.Tensor:
        """AOSM: words through the word matrix (Bt, L, D), frames (Bv, F, D), masks (Bt, 1, L) /
        (1, Bv, F) -> (Bt, Bv)."""
        sims = torch.einsum("tld,vfd->tvlf", local_words, frames)
        per_frame = attend(  # attention over words, one value per frame: (Bt, Bv, F)
            sims.transpose(-1, -2), self.word_mat_weight, self.tau, inner(word_keep)
        )
        per_word = attend(sims, self.frame_mat_weight, self.tau, inner(frame_keep))
        sentence_frame = attend(per_frame, self.frame_mat_weight2, self.tau, frame_keep)
        video_word = attend(per_word, self.word_mat_weight2, self.tau, word_keep)
        return (sentence_frame + video_word) / 2

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """Symmetric cross-entropy on ``logit_scale * S`` over the global batch."""
        return symmetric_cross_entropy(self.logit_scale * self.score(text, video))

    def owns_reference_key(self, key: str) -> bool:
        """Whether a non-CLIP key of a reference checkpoint belongs to this model's head."""
        temporal = self.sim_header != "meanP" and key.startswith(TEMPORAL_KEYS)
        return temporal or key in MATRICES

    def load_reference_head(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load the temporal module and the eight matrices of a reference checkpoint."""
        if self.sim_header != "meanP":
            load_reference_temporal_state(self.aggregator, dict(state_dict))
        matrices = {k: v for k, v in state_dict.items() if k in MATRICES}
        load_weights(self, matrices, MATRICES, "X-CLIP matrix")
