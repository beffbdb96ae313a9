"""DRL: disentangled representation learning for text-video retrieval (foolwood/DRL; METHODS §3).

Features: every projected text token (causal mask only) with the tokenizer mask, and frame CLS
features after the temporal module (seqTransf with the CLIP init trick by default). Interactions:

- ``dp``: cosine of the normalised EOT token and the normalised masked mean of normalised frames;
- ``ti``: token-wise max matching, ``(mean_i max_j + mean_j max_i) / 2`` over valid tokens/frames;
- ``wti``: the same maxima weighted by softmaxes of learnt weight heads (``wti_arch`` 1/2/3);
- ``xti`` (an ablation in the paper): CLIP4Clip's tightTransf cross encoder
  (:class:`baselines.common.CrossEncoder`, ``temporal_layers`` deep like the reference's single
  depth setting, dropout 0.1 on its inputs) over ``[EOT token; aggregated frames]`` of every pair;
  its pooled linear logit is the score. Its heads are the text tower's (the reference hard-codes
  8, the same for ViT-B CLIPs).

Masked token x frame similarities are set to 0 (not -inf) before the maxima, as in the reference.
The loss is ``(CE(sS) + CE(sS^T)) / 2 + cdcr_lambda * CDCR`` with CDCR (channel decorrelation)
variant ``cdcr`` 1 (random token/frame per sample; for dp the sentence/video vectors; the dp
reference uses this formula for every non-zero ``cdcr``), 2 (best-matching partners) or 3
(partners weighted by the WTI weights, divided by the batch size). One guard differs from the
reference: CDCR standardises an exactly constant channel to 0 where the reference divides 0 by 0
(its loss turns NaN, which a randomly initialised encoder can trigger); otherwise they agree.

xti training follows the reference's ``allgather2`` path: features are gathered with gradients
summed over processes (``train.gather_grad`` local is taken as sum), and each process scores its own
texts against every video and every text against its own videos, in two cross passes with their
own dropout draws; both logit sets are multiplied by the logit scale and the targets are the
positives' global indices (the reference rolls the columns by rank x local batch and takes the
diagonal, which gives the same values). Under ``train.gather_grad`` global every process scores
all rows instead, so that any process count trains like one. xti has no CDCR term whatever
``cdcr`` says (the reference returns 0 for it).

EMCL plug-in (``method.emcl``, :mod:`baselines.emcl_plugin`): the global vectors are DRL's dp
vectors (normalised EOT token; normalised masked mean of normalised frames). With ``dp`` they
are the whole score, so EMCL replaces it by ``t' . v'``. ``ti``/``wti`` scores have no global part:
EMCL adds one, ``S = (S_tokenwise + t' . v') / 2``, as the EMCL inference module's host model
(CLIP2Video) averages its EM-processed global branch with its untouched token-level branch. CDCR
is unchanged. xti scores are cross-encoder logits with no global part, so it refuses the plug-in.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from baselines.checkpoints import (
    TEMPORAL_KEYS,
    describe_keys,
    is_cross_key,
    load_openai_clip,
    load_reference_cross,
)
from baselines.checks import CDCR_VARIANTS, INTERACTIONS, WTI_ARCHS
from baselines.common import build_cross_encoder, build_temporal, mean_pooled_video, normalize
from baselines.emcl_plugin import build_global_emcl
from harness.config import Config, ConfigError
from harness.distributed import rank, world_size
from harness.encoder import CheckpointError, VideoTextEncoder
from harness.retrieval import Features, RetrievalModel, symmetric_cross_entropy
from harness.temporal import load_reference_temporal_state

# The reference draws one random token/frame index per sample as randint(0, 10000) % count.
_RANDOM_INDEX_RANGE = 10000
# The reference's cross-embedding dropout (hidden_dropout_prob; it has no flag).
XTI_DROPOUT = 0.1


def _standardize(x: torch.Tensor) -> torch.Tensor:
    """Per-channel standardisation over rows (unbiased std, no epsilon): (N, D) -> (N, D).

    A channel that is constant over the rows up to float rounding (e.g. every frame's best
    partner is the start token, whose feature is the same in every caption) standardises to 0
    here, where the reference divides 0 (or rounding noise) by about 0: its loss turns NaN, or
    the rounding noise gets standardised to unit variance and its gradient, ~1/std, swamps every
    other term after clipping (training from scratch then stalls at chance). Elsewhere the two
    agree.
    """
    centered = x - x.mean(dim=0)
    var = centered.pow(2).sum(dim=0) / (x.shape[0] - 1)
    # Spread within a few ulps of the channel's magnitude is rounding in the mean, not signal.
    rounding = 16.0 * torch.finfo(x.dtype).eps * x.detach().abs().amax(dim=0)
    constant = centered.detach().abs().amax(dim=0) <= rounding
    std = var.clamp(min=torch.finfo(x.dtype).tiny).sqrt()
    return torch.where(constant, torch.zeros_like(centered), centered / std)


def weight_head(arch: int, width: int) -> nn.Module:
    """The WTI weight branch ``g``: (..., width) -> (..., 1). arch 1: one Linear; arch 2/3: one or
    two hidden ``Linear(width, width) -> ReLU`` layers first. Linear weights N(0, 0.02), biases 0
    (the reference ``init_weights``); module indices match the reference keys."""
    if arch == 1:
        head: nn.Module = nn.Linear(width, 1)
    else:
        hidden = [m for _ in range(arch - 1) for m in (nn.Linear(width, width), nn.ReLU())]
        head = nn.Sequential(*hidden, nn.Linear(width, 1))
    for module in head.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            nn.init.zeros_(module.bias)
    return head


def eot_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """tokens (B, L, D), mask (B, L) -> the EOT row at ``sum(mask) - 1``, (B, D)."""
    eot = mask.long().sum(dim=-1) - 1
    return tokens[torch.arange(tokens.shape[0], device=tokens.device), eot]


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """WTI weights: logits (B, N, 1) of a weight head, mask (B, N) -> softmax over the real
    positions (B, N), 0 at padding."""
    logits = logits.squeeze(-1).masked_fill(mask == 0, float("-inf"))
    return torch.softmax(logits, dim=-1)


def token_frame_similarity(
    t_hat: torch.Tensor, t_mask: torch.Tensor, v_hat: torch.Tensor, v_mask: torch.Tensor
) -> torch.Tensor:
    """Cosines of every token with every frame, 0 where either is padding.

    t_hat (A, L, D), v_hat (B, F, D) normalised; masks (A, L), (B, F) -> (A, B, L, F).
    """
    sims = torch.einsum("ald,bfd->ablf", t_hat, v_hat)
    tm = t_mask.to(sims.dtype)[:, None, :, None]
    vm = v_mask.to(sims.dtype)[None, :, None, :]
    return sims * tm * vm


def tokenwise_scores(
    sims: torch.Tensor,
    t_mask: torch.Tensor,
    v_mask: torch.Tensor,
    t_weight: torch.Tensor | None = None,
    v_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """TI (weights None) or WTI scores (A, B) from ``sims`` (A, B, L, F).

    TI averages the maxima over real tokens/frames; WTI weights them by ``t_weight`` (A, L) and
    ``v_weight`` (B, F). Maxima include the zeroed padded entries, as in the reference.
    """
    t2v = sims.max(dim=-1).values  # (A, B, L): best frame per token
    v2t = sims.max(dim=-2).values  # (A, B, F): best token per frame
    if t_weight is None or v_weight is None:
        t2v = t2v.sum(dim=-1) / t_mask.to(sims.dtype).sum(dim=-1)[:, None]
        v2t = v2t.sum(dim=-1) / v_mask.to(sims.dtype).sum(dim=-1)[None, :]
    else:
        t2v = torch.einsum("abl,al->ab", t2v, t_weight)
        v2t = torch.einsum("abf,bf->ab", v2t, v_weight)
    return (t2v + v2t) / 2.0


def decorrelation_loss(c: torch.Tensor, alpha1: float, alpha2: float) -> torch.Tensor:
    """``alpha1 * sum_k (c_kk - 1)^2 + alpha2 * sum_{k != l} c_kl^2`` of a (D, D) matrix."""
    diag = torch.diagonal(c)
    on = (diag - 1.0).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return alpha1 * on + alpha2 * off


def cross_correlation(
    a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None, denom: float | None = None
) -> torch.Tensor:
    """``sum_r w_r z(a)_r^T z(b)_r / denom`` (D, D) of paired rows a, b (N, D); by default w = 1
    and denom = N."""
    za, zb = _standardize(a), _standardize(b)
    if weight is not None:
        za = za * weight[:, None]
    return za.t() @ zb / (a.shape[0] if denom is None else denom)


class DRL(RetrievalModel):
    """Token-level text features against aggregated frame features, scored by DP/TI/WTI/XTI."""

    def __init__(self, encoder: VideoTextEncoder, config: Config) -> None:
        method = config["method"]
        _check_options(method)
        # xti gathers with the reference's allgather2 (gradients summed over processes), and
        # under "global" scores the whole global batch on every process.
        xti = method["interaction"] == "xti"
        gather = config["train"]["gather_grad"]
        super().__init__(encoder, "sum" if xti and gather == "local" else gather)
        if xti and config["train"]["reference_world_size"] is not None:
            raise ConfigError(
                "config key 'train.reference_world_size' needs a loss that every process "
                "computes alike; xti scores each process's own rows: run it on that many processes"
            )
        self.interaction = method["interaction"]
        self.cdcr = method["cdcr"]
        self.aggregator = build_temporal(encoder, method["agg_module"], method["temporal_layers"])
        if self.interaction == "wti":
            self.text_weight_fc = weight_head(method["wti_arch"], encoder.embed_dim)
            self.video_weight_fc = weight_head(method["wti_arch"], encoder.embed_dim)
        if self.interaction == "xti":
            self.cross = build_cross_encoder(encoder, method["temporal_layers"], XTI_DROPOUT)
        self.cdcr_alpha1 = method["cdcr_alpha1"]
        self.cdcr_alpha2 = method["cdcr_alpha2"]
        self.cdcr_lambda = method["cdcr_lambda"]
        self.global_emcl = build_global_emcl(method)
        if self.interaction == "xti" and self.global_emcl is not None:
            raise ConfigError(
                "method.emcl needs global text/video scores, which interaction xti has not; "
                "set method.emcl=off or another method.interaction"
            )
        # EMCL mixes the rows of a block, so blocks must then follow eval.block_size.
        self.eval_block = None if self.global_emcl is None else config["eval"]["block_size"]

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> Features:
        """``{"tokens": (B, L, D), "mask": (B, L)}``: every projected token, not normalised."""
        return {"tokens": self.encoder.encode_text(ids, mask).words.float(), "mask": mask}

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> Features:
        """``{"frames": (B, F, D), "video_mask": (B, F)}`` after temporal aggregation."""
        frames = self.encoder.encode_frames(pixels).cls.float()
        return {"frames": self.aggregator(frames, video_mask), "video_mask": video_mask}

    def prepare_text(self, text: Features) -> Features:
        """Per-text parts: ``{"global": (B, D) norm(EOT), "mask": (B, L)}``, plus ``"tokens_hat"``
        (B, L, D) normalised tokens (ti, wti) and ``"weight"`` (B, L) the WTI softmax over real
        tokens (wti). xti scores the features as they come."""
        if self.interaction == "xti":
            return text
        tokens, mask = text["tokens"], text["mask"]
        out = {"global": normalize(eot_tokens(tokens, mask)), "mask": mask}
        if self.interaction != "dp":
            out["tokens_hat"] = normalize(tokens)
        if self.interaction == "wti":
            out["weight"] = masked_softmax(self.text_weight_fc(tokens), mask)
        return out

    def prepare_video(self, video: Features) -> Features:
        """Per-video parts: ``{"global": (B, D) dp video vector, "video_mask": (B, F)}``, plus
        ``"frames_hat"`` (B, F, D) normalised frames (ti, wti) and ``"weight"`` (B, F) the WTI
        softmax over real frames (wti). xti scores the features as they come."""
        if self.interaction == "xti":
            return video
        frames, mask = video["frames"], video["video_mask"]
        out = {"global": mean_pooled_video(frames, mask), "video_mask": mask}
        if self.interaction != "dp":
            out["frames_hat"] = normalize(frames)
        if self.interaction == "wti":
            out["weight"] = masked_softmax(self.video_weight_fc(frames), mask)
        return out

    def _scores(self, text: Features, video: Features) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Interaction scores (A, B) of prepared features without scale, and the token x frame
        cosines (A, B, L, F) for CDCR (None for dp)."""
        t, v = text["global"], video["global"]
        sims = None
        if self.interaction == "dp":
            scores = t @ v.t()
        else:
            t_mask, v_mask = text["mask"], video["video_mask"]
            sims = token_frame_similarity(text["tokens_hat"], t_mask, video["frames_hat"], v_mask)
            scores = tokenwise_scores(sims, t_mask, v_mask, text.get("weight"), video.get("weight"))
        if self.global_emcl is not None and self.global_emcl.applies:
            em_scores = self.global_emcl(t, v)
            scores = em_scores if self.interaction == "dp" else (scores + em_scores) / 2.0
        return scores, sims

    def _cross_logits(self, text: Features, video: Features) -> torch.Tensor:
        """xti logits (Bt, Bv): the cross encoder on every (EOT token, frames) pair."""
        sentences = eot_tokens(text["tokens"], text["mask"])
        return self.cross(sentences, video["frames"], video["video_mask"])

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """Scores (Bt, Bv) of one block of prepared features, without the logit scale."""
        if self.interaction == "xti":
            return self._cross_logits(text, video)
        return self._scores(text, video)[0]

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """Symmetric cross-entropy on ``logit_scale * S`` plus ``cdcr_lambda * CDCR``; for xti,
        this process's rows of it (the whole loss on one process)."""
        if self.interaction == "xti":
            return self._xti_loss(text, video)
        text, video = self.prepare_text(text), self.prepare_video(video)
        scores, sims = self._scores(text, video)
        loss = symmetric_cross_entropy(self.logit_scale * scores)
        if self.cdcr:
            corr = self._cdcr_correlation(text, video, sims)
            loss = loss + self.cdcr_lambda * decorrelation_loss(
                corr, self.cdcr_alpha1, self.cdcr_alpha2
            )
        return loss

    def _xti_loss(self, text: Features, video: Features) -> torch.Tensor:
        """Loss of this process's texts against all videos and of its videos against all texts,
        given the gathered batch (B = world x b rows, process r owns rows r*b .. r*b + b - 1).

        Each direction runs its own cross pass, texts first, so dropout draws as the reference.
        """
        # "global": every process scores all rows, as one process does
        world, this_rank = (1, 0) if self.gather_grad == "global" else (world_size(), rank())
        size = text["tokens"].shape[0] // world
        own = slice(this_rank * size, (this_rank + 1) * size)
        target = torch.arange(own.start, own.stop, device=text["tokens"].device)
        local_text = {k: v[own] for k, v in text.items()}
        local_video = {k: v[own] for k, v in video.items()}
        t2v = self._cross_logits(local_text, video)  # (b, B)
        v2t = self._cross_logits(text, local_video).t()  # (b, B): own videos against all texts
        scale = self.logit_scale
        return 0.5 * (
            nn.functional.cross_entropy(scale * t2v, target)
            + nn.functional.cross_entropy(scale * v2t, target)
        )

    def _cdcr_correlation(
        self, text: Features, video: Features, sims: torch.Tensor | None
    ) -> torch.Tensor:
        """The (D, D) cross-correlation of the configured CDCR variant on the global batch of
        prepared features; ``sims`` (B, B, L, F) the token x frame cosines (None for dp)."""
        if sims is None:
            return cross_correlation(text["global"], video["global"])
        t_hat, v_hat = text["tokens_hat"], video["frames_hat"]
        t_mask, v_mask = text["mask"], video["video_mask"]
        rows = torch.arange(t_hat.shape[0], device=t_hat.device)
        if self.cdcr == 1:
            t_count, v_count = t_mask.long().sum(-1), v_mask.long().sum(-1)
            t_pick = torch.randint_like(t_count, _RANDOM_INDEX_RANGE) % t_count
            v_pick = torch.randint_like(v_count, _RANDOM_INDEX_RANGE) % v_count
            return cross_correlation(t_hat[rows, t_pick], v_hat[rows, v_pick])
        pair = sims[rows, rows]  # (B, L, F): text i against its own video
        best_frame = pair.max(dim=-1).indices[:, :, None]  # (B, L, 1)
        best_token = pair.max(dim=-2).indices[:, :, None]  # (B, F, 1)
        t_valid, v_valid = t_mask.bool(), v_mask.bool()
        frame_of_token = v_hat.gather(1, best_frame.expand(-1, -1, v_hat.shape[-1]))
        token_of_frame = t_hat.gather(1, best_token.expand(-1, -1, t_hat.shape[-1]))
        pairs_t = (t_hat[t_valid], frame_of_token[t_valid])
        pairs_v = (v_hat[v_valid], token_of_frame[v_valid])
        if self.cdcr == 2:
            return (cross_correlation(*pairs_t) + cross_correlation(*pairs_v)) / 2.0
        t_weight, v_weight = text["weight"], video["weight"]
        batch = float(t_hat.shape[0])
        c_t = cross_correlation(*pairs_t, weight=t_weight[t_valid], denom=batch)
        c_v = cross_correlation(*pairs_v, weight=v_weight[v_valid], denom=batch)
        return (c_t + c_v) / 2.0


def _check_options(method: Mapping) -> None:
    """One-line ConfigErrors for unsupported interaction / CDCR settings."""
    interaction, cdcr = method["interaction"], method["cdcr"]
    if interaction not in INTERACTIONS:
        raise ConfigError(
            f"config key 'method.interaction' must be one of {', '.join(INTERACTIONS)}, "
            f"got {interaction!r}"
        )
    if method["wti_arch"] not in WTI_ARCHS:
        raise ConfigError(
            f"config key 'method.wti_arch' must be 1, 2 or 3, got {method['wti_arch']}"
        )
    if cdcr not in CDCR_VARIANTS:
        raise ConfigError(f"config key 'method.cdcr' must be 0, 1, 2 or 3, got {cdcr!r}")
    if interaction == "ti" and cdcr == 3:
        raise ConfigError(
            "config key 'method.cdcr': variant 3 weights rows by WTI weights, which "
            "interaction ti lacks (the reference crashes); use method.cdcr=2 (or 0/1) with ti"
        )


_HEAD_PREFIXES = ("text_weight_fc.", "video_weight_fc.")


def load_reference_checkpoint(model: DRL, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a foolwood/DRL ``pytorch_model.bin`` / ``best.pth`` state dict into ``model``.

    ``clip.*`` OpenAI keys go to the encoder, ``frame_position_embeddings`` /
    ``transformerClip.*`` / ``lstm_visual.*`` to the temporal module, ``text_weight_fc.*`` /
    ``video_weight_fc.*`` to the WTI heads, xti's ``cross.*`` / ``similarity_dense.*`` to the
    cross encoder (CLIP4Clip's tightTransf names). Raises one CheckpointError line naming the
    checkpoint keys the model has no place for, or the model weights the checkpoint lacks.
    """
    sd = dict(state_dict)
    load_openai_clip(model.encoder.clip, sd, "DRL", prefix="clip.")
    has_temporal = any(k.startswith(TEMPORAL_KEYS) for k in sd)
    if has_temporal or next(model.aggregator.parameters(), None) is not None:
        load_reference_temporal_state(model.aggregator, sd)
    used = ("clip.", *TEMPORAL_KEYS)
    if model.interaction == "wti":
        heads = {k: v.float() for k, v in sd.items() if k.startswith(_HEAD_PREFIXES)}
        ours = {k for k in model.state_dict() if k.startswith(_HEAD_PREFIXES)}
        if set(heads) != ours:
            raise CheckpointError(
                f"DRL checkpoint weight heads {describe_keys(sorted(heads)) or 'none'} do not fit "
                f"wti_arch heads {describe_keys(sorted(ours))}; set method.wti_arch to match"
            )
        model.load_state_dict(heads, strict=False)
        used = (*used, *_HEAD_PREFIXES)
    xti = model.interaction == "xti"
    if xti:
        load_reference_cross(model.cross, sd)
    unmatched = sorted(k for k in sd if not (k.startswith(used) or (xti and is_cross_key(k))))
    if unmatched:
        raise CheckpointError(
            f"DRL checkpoint keys unused by interaction {model.interaction!r}: "
            f"{describe_keys(unmatched)}"
        )
