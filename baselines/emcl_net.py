"""EMCL-Net retrieval head (METHODS §4.1-4.4): temporal aggregation, text-conditioned frame
pooling and the EM step over every block of pooled videos and texts; and the loader of EMCL-Net's
released ``pytorch_model.bin`` checkpoints (§7.1)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from baselines.checkpoints import describe_keys, load_reference_clip
from baselines.common import build_emcl, build_temporal
from harness.config import Config
from harness.emcl import emcl_net_similarity
from harness.encoder import CheckpointError, VideoTextEncoder
from harness.retrieval import Features, RetrievalModel, symmetric_cross_entropy
from harness.temporal import load_reference_temporal_state

# The temporal keys of an EMCL-Net checkpoint per method.agg_module (both sequential kinds build
# the frame position table).
TEMPORAL_KEYS = {
    "meanP": (),
    "seqLSTM": ("frame_position_embeddings.", "lstm_visual."),
    "seqTransf": ("frame_position_embeddings.", "transformerClip."),
}


class EMCLNet(RetrievalModel):
    """EOT sentence features against aggregated frame features, scored through EMCL."""

    def __init__(self, encoder: VideoTextEncoder, config: Config) -> None:
        super().__init__(encoder, config["train"]["gather_grad"])
        method = config["method"]
        self.agg_module = method["agg_module"]
        self.aggregator = build_temporal(encoder, self.agg_module, method["temporal_layers"])
        self.emcl = build_emcl(method)
        self.seed = config["seed"]  # the reference's --seed: it decides mu of a loaded checkpoint
        self.temp = method["temp"]
        self.eval_block = config["eval"]["block_size"]

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> Features:
        """``{"sentence": (B, D)}``: the EOT feature, not normalised."""
        return {"sentence": self.encoder.encode_text(ids, mask).sentence.float()}

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> Features:
        """``{"frames": (B, F, D), "video_mask": (B, F)}`` after temporal aggregation."""
        frames = self.encoder.encode_frames(pixels).cls.float()
        return {"frames": self.aggregator(frames, video_mask), "video_mask": video_mask}

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """EMCL-Net scores (Bt, Bv) of one block; the EM step runs over this block only."""
        return emcl_net_similarity(
            text["sentence"], video["frames"], video["video_mask"], self.emcl, self.temp
        )

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """Symmetric cross-entropy on ``logit_scale * S`` over the global batch."""
        return symmetric_cross_entropy(self.logit_scale * self.similarity(text, video))


def load_reference_checkpoint(model: EMCLNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a jpthu17/EMCL EMCL-Net ``pytorch_model.bin`` state dict into ``model``.

    ``clip.*`` OpenAI keys (``clip.logit_scale`` included) go to the encoder,
    ``frame_position_embeddings.weight`` and ``transformerClip.*`` (seqTransf) or
    ``lstm_visual.*`` (seqLSTM) to the temporal module (none for meanP). The layout has no
    ``mu``: it gets the reference's draw for the run's ``seed`` (``torch.manual_seed(seed)``,
    then ``Emcl`` draws first: see :func:`harness.emcl.seeded_mu`), as ``main_retrieval.py
    --do_eval --init_model`` evaluates it. Keys the model has no place for raise one
    CheckpointError line listing them before anything is loaded; so do missing or misshapen
    weights.
    """
    sd = dict(state_dict)
    temporal = TEMPORAL_KEYS[model.agg_module]
    unmatched = sorted(k for k in sd if not k.startswith(("clip.", *temporal)))
    if unmatched:
        raise CheckpointError(
            f"EMCL-Net checkpoint keys with no place in the model (method.agg_module "
            f"{model.agg_module}): {describe_keys(unmatched, limit=len(unmatched))}"
        )
    load_reference_clip(model.encoder, sd)
    if temporal:
        load_reference_temporal_state(model.aggregator, sd)
    model.emcl.seed_mu(model.seed)
