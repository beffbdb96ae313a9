"""HMMC: hierarchical matching with momentum contrast (cheetah003/HMMC, TIP 2023; METHODS §5).

The fine-tuning model (``BirdModel``, task ``retrieval``): text EOT feature ``q``; frame CLS
features ``V`` (before any temporal modelling); with ``use_temp`` a temporal transformer
(48-row position table, PyTorch-default initialisation, never copied from CLIP) gives
``V' = T(V + P) + V`` and the video vector ``v = mean_f norm(V'_f)``. HMMC has no video mask:
every frame slot counts, padded or not (its loader always yields 12 real frames). The logit scale
is a constant ``s`` (100). Training, on the global batch:
``L = w_vtm [CE(s S_v) + CE(s S_v^T)] + w_ftm mean_f [CE(s S_f) + CE(s S_f^T)]`` with
``S_v = cos(q, v)`` and ``S_f = cos(q, V_f)`` (no 1/2 factor). Inference:
``S = cos(q, v) + mean(top-k_f cos(q, V_f))`` (returned without ``s``, which scales both terms).
HMMC's gather sums gradients over processes: its config sets ``train.gather_grad: sum``, which
for this loss is the same as ``global``.

``momentum_contrast`` trains with the pre-training machinery of METHODS §5.3 instead: momentum
copies of the encoder, temporal module and frame projector (``m``), queues of past keys, and the
queue losses VTM, FTM and FAM (frame alignment through a projector/predictor MLP) at temperature
0.07, computed on each process's local batch as the reference does. The MLM term is not
implemented. Evaluation is unchanged.

EMCL plug-in (``method.emcl``, :mod:`baselines.emcl_plugin`): the global vectors are
``norm(q)`` and ``norm(v)``; EMCL replaces the video-level term ``cos(q, v)`` (in the VTM loss
and at inference) by ``t' . v'``; the frame-level terms are unchanged.

Reference checkpoints load through :func:`baselines.hmmc_checkpoint.load_reference_checkpoint`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import normalize
from baselines.emcl_plugin import build_global_emcl, emcl_mode
from harness.config import Config, ConfigError
from harness.distributed import all_gather_with_grad
from harness.encoder import VideoTextEncoder
from harness.retrieval import Features, RetrievalModel
from harness.temporal import SeqTransformer, build_aggregator


def two_way_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``CE(S) + CE(S^T)`` for logits (..., B, B), averaged over the leading axes; diagonal
    targets. HMMC's symmetric loss (no 1/2)."""
    b = logits.shape[-1]
    target = torch.arange(b, device=logits.device).repeat(logits.numel() // (b * b))
    rows = F.cross_entropy(logits.reshape(-1, b), target)
    cols = F.cross_entropy(logits.transpose(-1, -2).reshape(-1, b), target)
    return rows + cols


@torch.no_grad()
def pytorch_default_init(module: SeqTransformer) -> None:
    """Re-initialise a seqTransf module as HMMC's is: ``nn.MultiheadAttention`` defaults
    (packed q/k/v Xavier-uniform over (3W, W), out-projection Kaiming-uniform, all attention
    biases 0), ``nn.Linear`` / ``nn.Embedding`` (N(0, 1)) / LayerNorm defaults."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear | nn.Embedding | nn.LayerNorm):
            sub.reset_parameters()
    for layer in module.layers:
        attn = layer.self_attn
        width = attn.q_proj.weight.shape[1]
        bound = math.sqrt(6.0 / (width + 3 * width))
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
            nn.init.uniform_(proj.weight, -bound, bound)
            nn.init.zeros_(proj.bias)
        nn.init.zeros_(attn.out_proj.bias)


def video_vector(frames: torch.Tensor, temporal: nn.Module | None) -> torch.Tensor:
    """frames (B, F, D) -> ``mean_f norm(V'_f)`` (B, D), V' from ``temporal`` (no mask) or V."""
    if temporal is not None:
        mask = torch.ones(frames.shape[:2], dtype=frames.dtype, device=frames.device)
        frames = temporal(frames, mask)
    return normalize(frames).mean(dim=1)


def projector(width: int, hidden: int) -> nn.Sequential:
    """HMMC's two-layer MLP: ``Linear(width, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden,
    width)`` with PyTorch-default initialisation; (N, width) -> (N, width)."""
    return nn.Sequential(
        nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, width)
    )


def queue_contrastive_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MoCo loss: CE over ``[q . k_pos, q . queue] / temperature`` with the positive first.

    q, k (N, D) are L2-normalised here; ``queue`` (D, Q) holds normalised keys (no gradient).
    """
    q, k = normalize(q), normalize(k)
    positive = (q * k).sum(dim=-1, keepdim=True)
    # A copy: the queue is overwritten in place after the loss, before backward needs it.
    logits = torch.cat((positive, q @ queue.detach().clone()), dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def frame_text_queue_loss(
    frames: torch.Tensor,
    frames_k: torch.Tensor,
    frame_queue: torch.Tensor,
    text: torch.Tensor,
    text_k: torch.Tensor,
    text_queue: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """FTM: ``mean_f [CL(text, frame_k_f, Q_frame) + CL(frame_f, text_k, Q_text)]``;
    frames (B, F, D), text (B, D)."""
    total = frames.new_zeros(())
    for f in range(frames.shape[1]):
        total = total + queue_contrastive_loss(text, frames_k[:, f], frame_queue, temperature)
        total = total + queue_contrastive_loss(frames[:, f], text_k, text_queue, temperature)
    return total / frames.shape[1]


def frame_alignment_loss(
    predicted: torch.Tensor, projected_k: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """FAM: adjacent frames predict each other's momentum projections,
    ``mean_{i<F-1} [CL(pred_i, projk_{i+1}) + CL(pred_{i+1}, projk_i)]``; inputs (B, F, D)."""
    total = predicted.new_zeros(())
    steps = predicted.shape[1] - 1
    for i in range(steps):
        total = total + queue_contrastive_loss(
            predicted[:, i], projected_k[:, i + 1], queue, temperature
        )
        total = total + queue_contrastive_loss(
            predicted[:, i + 1], projected_k[:, i], queue, temperature
        )
    return total / steps


@torch.no_grad()
def momentum_update(pairs: Iterable[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """``theta_k <- m theta_k + (1 - m) theta`` over the parameters of each (online, momentum)
    pair (buffers such as BatchNorm statistics are not averaged, as in the reference)."""
    for online, key in pairs:
        for param, param_k in zip(online.parameters(), key.parameters(), strict=True):
            param_k.copy_(param_k * momentum + param.detach() * (1.0 - momentum))


class HMMC(RetrievalModel):
    """Video-level plus frame-level matching of EOT text features, with a fixed logit scale."""

    def __init__(self, encoder: VideoTextEncoder, config: Config) -> None:
        super().__init__(encoder, config["train"]["gather_grad"])
        method = config["method"]
        max_frames = config["data"]["max_frames"]
        _check_options(method, max_frames, config["train"])
        self.scale = method["logit_scale"]
        # The scale is a constant; keep CLIP's learnt one out of the optimizer and DDP.
        encoder.logit_scale.requires_grad_(False)
        width = encoder.embed_dim
        self.temporal: SeqTransformer | None = None
        if method["use_temp"]:
            self.temporal = build_aggregator(
                "seqTransf",
                width=width,
                heads=method["temporal_heads"],
                num_layers=method["temporal_layers"],
                max_positions=method["frame_positions"],
            )
            pytorch_default_init(self.temporal)
        self.use_frame_fea = method["use_frame_fea"]
        self.top_frames = method["top_frames"]
        self.weight_vtm = method["weight_vtm"]
        self.weight_ftm = method["weight_ftm"]
        self.global_emcl = build_global_emcl(method)
        self.eval_block = None if self.global_emcl is None else config["eval"]["block_size"]
        self.momentum_contrast = method["momentum_contrast"]
        if self.momentum_contrast:
            self._build_momentum_branch(method, width, max_frames)

    def _build_momentum_branch(self, method: Mapping, width: int, max_frames: int) -> None:
        """Momentum copies, the FAM projector/predictor and the key queues (METHODS §5.3)."""
        self.contrast_momentum = method["contrast_momentum"]
        self.temperature = method["contrast_temperature"]
        self.queue_size = method["contrast_num_negative"]
        self.pretrain_weights = {
            "fam": method["weight_fam_pretrain"],
            "vtm": method["weight_vtm_pretrain"],
            "ftm": method["weight_ftm_pretrain"],
        }
        self.encoder_k = copy.deepcopy(self.encoder).requires_grad_(False)
        self.temporal_k = copy.deepcopy(self.temporal)
        if self.temporal_k is not None:
            self.temporal_k.requires_grad_(False)
        self.v_projector = projector(width, method["projector_hidden"])
        self.v_projector_k = copy.deepcopy(self.v_projector).requires_grad_(False)
        self.v_predictor = projector(width, method["projector_hidden"])
        for name, columns in (
            ("queue_video", self.queue_size),
            ("queue_text", self.queue_size),
            ("queue_frame", self.queue_size * max_frames),
            ("queue_frame_proj", self.queue_size * max_frames),
        ):
            self.register_buffer(name, F.normalize(torch.randn(width, columns), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @property
    def logit_scale(self) -> torch.Tensor:
        """The constant scale ``s``."""
        return self.encoder.logit_scale.new_tensor(self.scale)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> Features:
        """``{"sentence": (B, D)}``: the EOT feature, not normalised."""
        return {"sentence": self.encoder.encode_text(ids, mask).sentence.float()}

    def encode_video(self, pixels: torch.Tensor, video_mask: torch.Tensor) -> Features:
        """``{"video": (B, D), "frames": (B, F, D)}``: the video vector and the frame features
        before temporal modelling. ``video_mask`` is ignored (HMMC has no mask)."""
        frames = self.encoder.encode_frames(pixels).cls.float()
        return {"video": video_vector(frames, self.temporal), "frames": frames}

    def prepare_text(self, text: Features) -> Features:
        """``{"query": (B, D)}``: the normalised EOT feature."""
        return {"query": normalize(text["sentence"])}

    def prepare_video(self, video: Features) -> Features:
        """``{"video": (B, D)}`` the normalised video vector, plus ``"frames"`` (B, F, D) the
        normalised frame features when the frame term is on."""
        out = {"video": normalize(video["video"])}
        if self.use_frame_fea:
            out["frames"] = normalize(video["frames"])
        return out

    def _video_scores(self, text: Features, video: Features) -> torch.Tensor:
        """Video-level cosines (A, B) of prepared features, through EMCL when it applies."""
        q, v = text["query"], video["video"]
        if self.global_emcl is not None and self.global_emcl.applies:
            return self.global_emcl(q, v)
        return q @ v.t()

    def _frame_cosines(self, text: Features, video: Features) -> torch.Tensor:
        """cos(q_a, V_{b,f}) as (A, B, F), of prepared features."""
        return torch.einsum("ad,bfd->abf", text["query"], video["frames"])

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """``cos(q, v) + mean(top-k frame cosines)`` (Bt, Bv) of prepared features, without the
        scale."""
        scores = self._video_scores(text, video)
        if self.use_frame_fea:
            top = self._frame_cosines(text, video).topk(self.top_frames, dim=-1).values
            scores = scores + top.mean(dim=-1)
        return scores

    def loss(self, text: Features, video: Features) -> torch.Tensor:
        """``w_vtm (CE + CE^T)(s S_v) + w_ftm mean_f (CE + CE^T)(s S_f)`` on the global batch."""
        text, video = self.prepare_text(text), self.prepare_video(video)
        s = self.logit_scale
        loss = self.weight_vtm * two_way_cross_entropy(s * self._video_scores(text, video))
        if self.use_frame_fea:
            frames = s * self._frame_cosines(text, video).permute(2, 0, 1)  # (F, A, B)
            loss = loss + self.weight_ftm * two_way_cross_entropy(frames)
        return loss

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training loss: in-batch (global) matching, or the queue losses with
        ``momentum_contrast``."""
        if not (self.training and self.momentum_contrast):
            return super().forward(batch)
        return self._momentum_loss(batch)

    def negatives_per_query(self, global_batch: int, world: int) -> int:
        """In-batch: the rest of the global batch; with ``momentum_contrast``: the queue."""
        return self.queue_size if self.momentum_contrast else global_batch - 1

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, momentum) module pairs that :func:`momentum_update` averages."""
        pairs = [(self.encoder, self.encoder_k), (self.v_projector, self.v_projector_k)]
        if self.temporal is not None:
            pairs.append((self.temporal, self.temporal_k))
        return pairs

    def _momentum_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``w_fam FAM + w_vtm VTM + w_ftm FTM`` on this process's batch, then enqueue keys."""
        ids, mask, pixels = batch["ids"], batch["mask"], batch["pixels"]
        text = self.encoder.encode_text(ids, mask).sentence.float()
        frames = self.encoder.encode_frames(pixels).cls.float()
        video = video_vector(frames, self.temporal)
        with torch.no_grad():
            momentum_update(self.momentum_pairs(), self.contrast_momentum)
            text_k = self.encoder_k.encode_text(ids, mask).sentence.float()
            frames_k = self.encoder_k.encode_frames(pixels).cls.float()
            video_k = video_vector(frames_k, self.temporal_k)
            proj_k = self.v_projector_k(frames_k.flatten(0, 1)).view_as(frames_k)
        t, w = self.temperature, self.pretrain_weights
        predicted = self.v_predictor(self.v_projector(frames.flatten(0, 1))).view_as(frames)
        fam = frame_alignment_loss(predicted, proj_k, self.queue_frame_proj, t)
        vtm = queue_contrastive_loss(video, text_k, self.queue_text, t)
        vtm = vtm + queue_contrastive_loss(text, video_k, self.queue_video, t)
        loss = w["fam"] * fam + w["vtm"] * vtm
        if self.use_frame_fea:
            ftm = frame_text_queue_loss(
                frames, frames_k, self.queue_frame, text, text_k, self.queue_text, t
            )
            loss = loss + w["ftm"] * ftm
        self._enqueue(video_k, text_k, frames_k, proj_k)
        return loss

    @torch.no_grad()
    def _enqueue(self, *keys: torch.Tensor) -> None:
        """Write the normalised keys of the global batch at ``queue_ptr`` and advance it."""
        video_k, text_k, frames_k, proj_k = (normalize(all_gather_with_grad(k)) for k in keys)
        batch, num_frames = frames_k.shape[:2]
        if self.queue_size % batch:
            raise ConfigError(
                f"method.contrast_num_negative {self.queue_size} is not a multiple of the "
                f"global batch {batch}; choose a queue length divisible by the batch size"
            )
        if num_frames * self.queue_size != self.queue_frame.shape[1]:
            raise ConfigError(
                f"HMMC frame queues were built for {self.queue_frame.shape[1] // self.queue_size}"
                f" frames per video but a batch has {num_frames}; set data.max_frames to match"
            )
        ptr = int(self.queue_ptr)
        self.queue_video[:, ptr : ptr + batch] = video_k.t()
        self.queue_text[:, ptr : ptr + batch] = text_k.t()
        span = slice(ptr * num_frames, (ptr + batch) * num_frames)
        self.queue_frame[:, span] = frames_k.flatten(0, 1).t()
        self.queue_frame_proj[:, span] = proj_k.flatten(0, 1).t()
        self.queue_ptr[0] = (ptr + batch) % self.queue_size


def _check_options(method: Mapping, max_frames: int, train: Mapping) -> None:
    """One-line ConfigErrors for settings HMMC cannot run with."""
    if method["momentum_contrast"]:
        for key in ("micro_batch", "reference_world_size"):
            if train[key] is not None:
                raise ConfigError(
                    f"config key 'train.{key}' is not supported with method.momentum_contrast "
                    "(its momentum encoders and batch-normalised projector run inside each "
                    "process's loss); remove it"
                )
    if method["use_temp"] and max_frames > method["frame_positions"]:
        raise ConfigError(
            f"config key 'data.max_frames' ({max_frames}) exceeds HMMC's "
            f"{method['frame_positions']} frame positions (method.frame_positions)"
        )
    if method["use_frame_fea"] and not 1 <= method["top_frames"] <= max_frames:
        raise ConfigError(
            f"config key 'method.top_frames' must be between 1 and data.max_frames "
            f"({max_frames}), got {method['top_frames']}"
        )
    if method["momentum_contrast"] and emcl_mode(method) == "joint":
        raise ConfigError(
            "config key 'method.emcl': joint EMCL is not combined with "
            "method.momentum_contrast (its queue losses have no in-batch score matrix)"
        )
