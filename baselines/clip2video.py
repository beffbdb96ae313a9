"""CLIP2Video (METHODS §4.7; CryhanFang/CLIP2Video with ``--sim_type seqTransf --temporal_type TDB
--temporal_proj sigmoid_selfA --center_type TAB --center_proj TAB_TDB``), the host model of EMCL's
inference module (jpthu17/EMCL ``video_retrieval/As_an_inference_module``).

Two branches, each scored by cosine and mixed by ``method.center_weight`` (w):
``S = w * t . v + (1 - w) * t_TAB . v_TAB``.

- Global (TDB, temporal difference block): between adjacent CLIP frame features a difference
  token ``2 sigmoid(LN(A(V_{i+1} - V_i + pos_{i+1}))) - 1`` is inserted (A: one attention block,
  LN: a LayerNorm with torch's eps 1e-5); frame i and difference token i both get position i,
  frames type 1 and differences type 0. The ``2F - 1`` tokens go through the
  ``method.temporal_layers``-deep temporal transformer; the frame tokens' outputs plus the CLIP
  frames are normalised, mean-pooled over real frames and normalised: ``v``. ``t`` is the
  normalised EOT feature.
- TAB (temporal alignment block): the frames at even positions go through the same difference
  block and a one-block transformer, and their frame tokens (plus their inputs) are appended to
  the CLIP frames. Each token is softly assigned to ``method.center_k`` centres (softmax over the
  centres of ``token . weight_center``), the residuals to ``emb_center`` are summed over real
  tokens per centre, normalised, averaged over centres and normalised again. Texts do the same on
  their projected token features (SOT and padding left out).

Training: ``w * CE(s S_global) + (1 - w) * CE(s S_TAB)``, each a symmetric cross-entropy with the
logit scale ``s``, as the reference ``forward``.

EMCL plug-in (``method.emcl``): EMCL replaces the global branch only, as in the inference module:
the EM step runs over the ``[videos; texts]`` rows ``v``, ``t`` of a scoring block and the global
score becomes ``t' . v'`` (``inference``: evaluation only, mu never updated, k 7, 10 stages,
lamd 0.1, beta 4; ``joint``: METHODS §4.8 in training and evaluation). The reference scored
64 x 64 blocks, hence ``eval.block_size: 64`` in this method's yaml. The reference keeps mu out of
its checkpoint and draws it from the seeded RNG: here mu is that same draw for the run's
``seed`` (seed 42, the reference's, gives the signs ``+ + + + - - +``).

Reference checkpoints (``pytorch_model.bin.{n}``) load through :func:`load_reference_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from baselines.checkpoints import describe_keys, load_reference_clip, load_weights
from baselines.checks import MASK_ORDERS
from baselines.common import build_temporal, mean_pooled_video, normalize
from baselines.emcl_plugin import build_global_emcl, mix_globals
from harness.config import Config, ConfigError, check_choice
from harness.encoder import CheckpointError, VideoTextEncoder
from harness.retrieval import Features, RetrievalModel, symmetric_cross_entropy
from harness.temporal import (
    TransformerBlocks,
    init_from_clip_text,
    init_weights,
    load_reference_temporal_state,
)

# The reference initialises both centre tables with N(0, 64 ** -0.5), whatever the width.
CENTER_INIT_STD = 64**-0.5


def interleave(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``first`` (B, F, ...) and ``second`` (B, F - 1, ...) -> (B, 2F - 1, ...) in the order
    ``first_0, second_0, first_1, ..., second_{F-2}, first_{F-1}``."""
    pairs = torch.stack((first[:, :-1], second), dim=2).flatten(1, 2)
    return torch.cat((pairs, first[:, -1:]), dim=1)


class DifferenceBlock(nn.Module):
    """TDB with ``sigmoid_selfA``: difference tokens between adjacent frames, position and type
    embeddings (reference keys ``frame2t_attention``, ``trans_layernorm``,
    ``type_position_embeddings``)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attention = TransformerBlocks(width, heads, 1)
        self.norm = nn.LayerNorm(width)
        self.types = nn.Embedding(2, width)  # 0: difference token, 1: frame

    def forward(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        head_major: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, F, D), mask (B, F), positions (>= F, D) -> tokens (B, 2F - 1, D) with
        their position and type embeddings added, and their mask (B, 2F - 1).

        Difference token i (between frames i and i + 1) attends with the masks of frames 1..F-1
        and takes frame i's mask in the output, as the reference indexes them; ``head_major``:
        see :meth:`harness.temporal.TransformerBlocks.attend`.
        """
        positions = positions[: frames.shape[1]]
        difference = frames[:, 1:] - frames[:, :-1] + positions[1:]
        difference = self.attention.attend(difference, mask[:, 1:], head_major)
        difference = 2 * torch.sigmoid(self.norm(difference)) - 1
        tokens = interleave(
            frames + positions + self.types.weight[1],
            difference + positions[:-1] + self.types.weight[0],
        )
        return tokens, interleave(mask, mask[:, :-1])


def frame_outputs(tokens: torch.Tensor) -> torch.Tensor:
    """The frame tokens (B, F, D) of an interleaved (B, 2F - 1, D) sequence."""
    return tokens[:, ::2]


class CLIP2Video(RetrievalModel):
    """CLIP2Video: TDB global branch and TAB branch (METHODS §4.7), with the EMCL plug-in."""

    def __init__(self, encoder: VideoTextEncoder, config: Config) -> None:
        super().__init__(encoder, config["train"]["gather_grad"])
        method, frames = config["method"], config["data"]["max_frames"]
        check_choice("method.mask_order", method["mask_order"], MASK_ORDERS)
        rows = encoder.clip.config.text_config.max_position_embeddings
        if not 3 <= frames <= rows:
            raise ConfigError(
                f"clip2video needs 3 <= data.max_frames <= {rows} (its TAB branch puts difference "
                "tokens between every second frame; frame positions come from the CLIP text "
                f"position table), got {frames}"
            )
        width = encoder.embed_dim
        heads = encoder.clip.config.text_config.num_attention_heads
        self.temporal = build_temporal(encoder, "seqTransf", method["temporal_layers"])
        self.difference = DifferenceBlock(width, heads)
        self.alignment = TransformerBlocks(width, heads, 1)  # the reference's actionClip
        self.weight_center = nn.Parameter(torch.empty(method["center_k"], width))
        self.emb_center = nn.Parameter(torch.empty(method["center_k"], width))
        self.center_weight = method["center_weight"]
        self.head_major = method["mask_order"] == "reference"
        self._init_from_clip(encoder)
        self.emcl = build_global_emcl(method)
        if self.emcl is not None:
            self.emcl.em.seed_mu(config["seed"])
        self.eval_block = config["eval"]["block_size"] if self.emcl is not None else None

    @torch.no_grad()
    def _init_from_clip(self, encoder: VideoTextEncoder) -> None:
        """The reference's start from CLIP: both one-block transformers take CLIP's first text
        layer, the type table CLIP's text positions 0 and 1; the centres are random."""
        for blocks in (self.difference.attention, self.alignment):
            blocks.apply(init_weights)
            init_from_clip_text(blocks, encoder.clip)
        table = encoder.clip.text_model.embeddings.position_embedding.weight
        self.difference.types.weight.copy_(table[:2])
        nn.init.normal_(self.weight_center, std=CENTER_INIT_STD)
        nn.init.normal_(self.emb_center, std=CENTER_INIT_STD)

    @property
    def positions(self) -> torch.Tensor:
        """The frame position table (rows, D), shared by both branches."""
        return self.temporal.position_embeddings.weight

    def aligned(self, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """TAB pooling: tokens (B, N, D), keep (B, N) (1 = real token) -> (B, D) normalised."""
        weights = torch.softmax(tokens @ self.weight_center.t(), dim=-1)  # (B, N, K)
        weights = weights * keep.to(weights.dtype).unsqueeze(-1)
        # sum_n w_nk (x_n - c_k), without the (B, N, K, D) residual tensor.
        clusters = torch.einsum("bnk,bnd->bkd", weights, tokens)
        clusters = clusters - weights.sum(dim=1).unsqueeze(-1) * self.emb_center
        return normalize(normalize(clusters).mean(dim=1))

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> Features:
        """``{"text": (B, D), "aligned": (B, D)}``: the normalised EOT feature and the TAB text
        vector of the token features (SOT and padding left out)."""
        out = self.encoder.encode_text(ids, mask)
        keep = mask.clone()
        keep[:, 0] = 0
        return {"text": normalize(out.sentence), "aligned": self.aligned(out.words, keep)}

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> Features:
        """``{"video": (B, D), "aligned": (B, D)}``: the TDB global vector and the TAB vector."""
        frames = self.encoder.encode_frames(pixels).cls
        tokens, token_mask = self.difference(frames, video_mask, self.positions, self.head_major)
        outputs = self.temporal.attend(tokens, token_mask, self.head_major)
        outputs = frame_outputs(outputs) + frames
        return {
            "video": mean_pooled_video(outputs, video_mask),
            "aligned": self.aligned(*self.tab_tokens(frames, video_mask)),
        }

    def tab_tokens(
        self, frames: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (B, F, D), mask (B, F) -> the TAB tokens (B, F + ceil(F / 2), D) and mask: the
        frames, then the even frames after the difference block and the one-block transformer."""
        sparse, sparse_mask = frames[:, ::2], mask[:, ::2]
        tokens, token_mask = self.difference(sparse, sparse_mask, self.positions, self.head_major)
        sparse = frame_outputs(self.alignment.attend(tokens, token_mask, self.head_major)) + sparse
        return torch.cat((frames, sparse), dim=1), torch.cat((mask, sparse_mask), dim=1)

    def branch_scores(self, text: Features, video: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Global (after the EMCL plug-in where it applies) and TAB cosines, each (Bt, Bv)."""
        t, v = mix_globals(self.emcl, text["text"], video["video"])
        return t @ v.t(), text["aligned"] @ video["aligned"].t()

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """``w * S_global + (1 - w) * S_TAB`` (Bt, Bv), without the logit scale."""
        global_scores, aligned_scores = self.branch_scores(text, video)
        return self.center_weight * global_scores + (1 - self.center_weight) * aligned_scores

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """``w * CE(s S_global) + (1 - w) * CE(s S_TAB)`` over the global batch."""
        global_scores, aligned_scores = self.branch_scores(text, video)
        scale = self.logit_scale
        return self.center_weight * symmetric_cross_entropy(scale * global_scores) + (
            1 - self.center_weight
        ) * symmetric_cross_entropy(scale * aligned_scores)


# Reference keys (METHODS §7.1) of single tensors -> our keys.
_HEAD_KEYS = {
    "type_position_embeddings.weight": "difference.types.weight",
    "trans_layernorm.weight": "difference.norm.weight",
    "trans_layernorm.bias": "difference.norm.bias",
    "weight_center": "weight_center",
    "emb_center": "emb_center",
}
_TEMPORAL_PREFIXES = ("frame_position_embeddings.", "transformerClip.resblocks.")
# One-block transformers: reference prefix -> our module attribute path.
_ONE_BLOCK = {
    "frame2t_attention.resblocks.": "difference.attention",
    "actionClip.resblocks.": "alignment",
}


def _is_known(key: str) -> bool:
    """Whether a reference key has a place in :class:`CLIP2Video`."""
    return key.startswith(("clip.", *_TEMPORAL_PREFIXES, *_ONE_BLOCK)) or key in _HEAD_KEYS


def load_reference_checkpoint(model: CLIP2Video, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a CLIP2Video ``pytorch_model.bin.{n}`` state dict (CryhanFang/CLIP2Video, also the
    host of EMCL's inference module) into ``model``.

    ``clip.*`` (OpenAI keys) go to the encoder; ``frame_position_embeddings.weight`` and
    ``transformerClip.resblocks.*`` to the temporal transformer; ``frame2t_attention.*``,
    ``trans_layernorm.*`` and ``type_position_embeddings.weight`` to the difference block;
    ``actionClip.*`` to the TAB transformer; ``weight_center``/``emb_center`` to the centres.
    Keys with no place in the model (e.g. ``frame2t_projection`` of the ``sigmoid_mlp`` variant)
    raise one CheckpointError line listing them before anything is loaded; a missing or misshapen
    weight raises one line naming it. The EMCL plug-in's ``mu`` is not in the file and keeps its
    seeded value.
    """
    unmatched = sorted(k for k in state_dict if not _is_known(k))
    if unmatched:
        raise CheckpointError(
            f"CLIP2Video checkpoint keys with no place in the model: {describe_keys(unmatched)}; "
            "only the TDB (sigmoid_selfA) + TAB_TDB layout loads"
        )
    load_reference_clip(model.encoder, state_dict)
    load_reference_temporal_state(model.temporal, dict(state_dict))
    for prefix, path in _ONE_BLOCK.items():
        blocks = model.get_submodule(path)
        renamed = {
            "transformerClip.resblocks." + k.removeprefix(prefix): v
            for k, v in state_dict.items()
            if k.startswith(prefix)
        }
        if not renamed:
            raise CheckpointError(f"CLIP2Video checkpoint lacks the {prefix}* weights")
        load_reference_temporal_state(blocks, renamed)
    head = {ours: state_dict[ref] for ref, ours in _HEAD_KEYS.items() if ref in state_dict}
    load_weights(model, head, _HEAD_KEYS.values(), "CLIP2Video head")
