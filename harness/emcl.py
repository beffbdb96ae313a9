"""Expectation-Maximization Contrastive Learning (EMCL) and the EMCL-Net similarity.

The EM step (METHODS.md §4.2) treats the D feature channels as data points and finds ``k``
bases over the N samples of a block; each sample is then shifted towards its reconstruction from
those bases. Because EM mixes all rows it is given, the output depends on which rows share a block
(METHODS.md §10.2), so :func:`emcl_net_similarity_blocked` reproduces the reference's evaluation
blocks. The iteration amplifies rounding (§10.21): compare implementations in float64.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Variant = Literal["emcl_net", "joint"]
_EPS = 1e-6


def draw_mu(k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The reference's initial ``mu`` (1, k): ``N(0, sqrt(2 / k))`` drawn on the CPU (from the
    global RNG when ``generator`` is None), each entry divided by ``1e-6 + |entry|`` (the column
    norm of a 1 x k tensor), so about +-1. Only the signs matter (METHODS §4.7): the reference
    seeds torch and builds ``Emcl`` first, so its ``mu`` is this draw with a generator seeded
    by its ``--seed``."""
    mu = torch.empty(1, k).normal_(0, math.sqrt(2.0 / k), generator=generator)
    return mu / (_EPS + mu.norm(dim=0, keepdim=True))


def seeded_mu(k: int, seed: int) -> torch.Tensor:
    """:func:`draw_mu` as the reference draws it right after ``torch.manual_seed(seed)``."""
    return draw_mu(k, torch.Generator().manual_seed(seed))


class EMCL(nn.Module):
    """The EM subspace step with a momentum-updated basis initialisation ``mu`` (buffer, (1, k)).

    ``variant="emcl_net"`` is the EMCL-Net / inference-module step (E-step logits divided by
    ``lamd``, output not re-normalised). ``variant="joint"`` is the joint-training layer of
    METHODS.md §4.8 for one modality (logits multiplied by ``lamd``, output L2-normalised); for
    several modalities use one module each and set ``mu`` as that reference does.
    """

    mu: torch.Tensor

    def __init__(
        self,
        k: int = 32,
        stage_num: int = 9,
        momentum: float = 0.9,
        lamd: float = 1.0,
        beta: float = 3.0,
        variant: Variant = "emcl_net",
    ) -> None:
        super().__init__()
        if variant not in ("emcl_net", "joint"):
            raise ValueError(f"EMCL variant {variant!r} is unknown; use 'emcl_net' or 'joint'")
        self.k = k
        self.stage_num = stage_num
        self.momentum = momentum
        self.lamd = lamd
        self.beta = beta
        self.variant = variant
        self.register_buffer("mu", draw_mu(k))

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, stage_num={self.stage_num}, momentum={self.momentum}, "
            f"lamd={self.lamd}, beta={self.beta}, variant={self.variant!r}"
        )

    def seed_mu(self, seed: int) -> None:
        """Set ``mu`` to the reference's draw when its Emcl object is the first consumer of the
        CPU RNG after ``torch.manual_seed(seed)`` (METHODS §4.7), whatever else this process drew
        before; e.g. seed 42, k 7 gives the signs ``+ + + + - - +``."""
        self.mu = seeded_mu(self.k, seed).to(self.mu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, D) -> ``x + beta * R`` (N, D); gradients flow through ``x`` only.

        In training mode ``mu`` moves by momentum towards the row mean of the final bases.
        """
        if x.dim() != 2:
            raise ValueError(f"EMCL input must be (N, D), got shape {tuple(x.shape)}")
        with torch.no_grad():
            data = x.detach()
            bases = self.mu.to(device=x.device, dtype=x.dtype).repeat(x.shape[0], 1)  # (N, k)
            for _ in range(self.stage_num):
                logits = torch.mm(data.t(), bases)  # (D, k): channels are the data points
                if self.variant == "joint":
                    logits = logits * self.lamd
                else:
                    logits = logits / self.lamd
                resp = F.softmax(logits, dim=1)
                resp = resp / (_EPS + resp.sum(dim=0, keepdim=True))
                bases = torch.mm(data, resp)  # (N, k)
                bases = bases / (_EPS + bases.norm(dim=0, keepdim=True))
            recon = torch.mm(bases, resp.t())  # (N, D)
            if self.training:
                step = bases.mean(dim=0, keepdim=True).to(self.mu)
                self.mu = self.momentum * self.mu + (1 - self.momentum) * step
        out = self.beta * recon + x
        if self.variant == "joint":
            out = F.normalize(out, dim=-1)
        return out


def emcl_net_similarity(
    text: torch.Tensor,
    video: torch.Tensor,
    video_mask: torch.Tensor,
    em: EMCL,
    temp: float = 3.0,
) -> torch.Tensor:
    """EMCL-Net cosine scores of one block of texts against one block of videos (METHODS §4.2).

    ``text`` (A, D) EOT features, ``video`` (B, F, D) frame features, ``video_mask`` (B, F) with 1
    for real frames. Each text pools every video's frames with ``softmax(text . frame / temp)``
    times the mask (padded frames keep their softmax mass, as in the reference); the A*B pooled
    videos and the A texts go through one ``em`` call; returns the (A, B) text-to-video cosine
    matrix without logit scale. Memory is O(A*B*D).
    """
    a, d = text.shape
    weights = torch.softmax(torch.einsum("ad,bfd->abf", text, video) / temp, dim=-1)
    weights = weights * video_mask.to(weights.dtype).unsqueeze(0)
    pooled = torch.einsum("abf,bfd->abd", weights, video).reshape(-1, d)  # text-major rows
    mixed = em(torch.cat((pooled, text), dim=0))
    pooled, text = mixed[: pooled.shape[0]], mixed[pooled.shape[0] :]
    text = text / text.norm(dim=-1, keepdim=True)
    pooled = pooled / pooled.norm(dim=-1, keepdim=True)
    return torch.einsum("ad,abd->ab", text, pooled.view(a, -1, d))


def emcl_net_similarity_blocked(
    text: torch.Tensor,
    video: torch.Tensor,
    video_mask: torch.Tensor,
    em: EMCL,
    temp: float = 3.0,
    block: int = 32,
) -> torch.Tensor:
    """The (Nt, Nv) matrix from consecutive ``block`` x ``block`` calls, as the reference evaluates.

    ``text`` (Nt, D), ``video`` (Nv, F, D), ``video_mask`` (Nv, F). Each block runs its own EM, so
    the result depends on ``block`` and on the order of the rows (METHODS.md §4.4). Call it under
    ``torch.no_grad()`` with ``em`` in eval mode to reproduce the reference evaluation.
    """
    rows = []
    for t in torch.split(text, block):
        cells = [
            emcl_net_similarity(t, v, m, em, temp)
            for v, m in zip(torch.split(video, block), torch.split(video_mask, block), strict=True)
        ]
        rows.append(torch.cat(cells, dim=1))
    return torch.cat(rows, dim=0)
