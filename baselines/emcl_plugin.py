"""EMCL as a plug-in on any method's global text and video vectors (``method.emcl``).

``off``: the method as published. ``inference`` (METHODS §4.7): at evaluation only, one EM step
over the rows ``[video globals; text globals]`` of a scoring block (reference hyper-parameters
k=7, stage_num=10, lamd=0.1, beta=4); ``mu`` keeps its random initialisation, the outputs are not
re-normalised and the global score becomes ``t' . v'``. ``joint`` (METHODS §4.8): the
joint-training variant (E-step logits times lamd, outputs re-normalised) used as a layer on the
same rows, in training (on the global batch, ``mu`` moving by momentum) and at evaluation (per
block). Each method's docstring says which part of its score the EMCL score replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from baselines.checks import EMCL_MODES
from baselines.common import build_emcl
from harness.config import check_choice


def emcl_mode(method: Mapping[str, Any]) -> str:
    """``method.emcl`` checked against :data:`EMCL_MODES`."""
    mode = method["emcl"]
    check_choice("method.emcl", mode, EMCL_MODES)
    return mode


class GlobalEMCL(nn.Module):
    """The EM step on ``[video globals; text globals]`` and the resulting (Bt, Bv) scores."""

    def __init__(self, mode: str, inference: Mapping[str, Any], joint: Mapping[str, Any]) -> None:
        super().__init__()
        self.mode = mode
        # The inference section sets no momentum: this module only runs in eval mode there,
        # where mu stays put.
        self.em = build_emcl(inference) if mode == "inference" else build_emcl(joint, "joint")

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

    @property
    def applies(self) -> bool:
        """Whether scores go through EM now: always for ``joint``, in eval mode for
        ``inference``."""
        return self.mode == "joint" or not self.training

    def mix(self, text: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``text`` (Bt, D), ``video`` (Bv, D) normalised globals -> the same rows after one EM
        call over all Bv + Bt rows (video rows first, as the reference concatenates)."""
        mixed = self.em(torch.cat((video, text), dim=0))
        return mixed[video.shape[0] :], mixed[: video.shape[0]]

    def forward(self, text: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """The EMCL global score ``t' v'^T`` (Bt, Bv) of normalised globals."""
        text, video = self.mix(text, video)
        return text @ video.t()


def build_global_emcl(method: Mapping[str, Any]) -> GlobalEMCL | None:
    """The plug-in configured by ``method.emcl`` / ``method.emcl_inference`` /
    ``method.emcl_joint``; None for ``off`` (so that no random draw is spent on ``mu``)."""
    mode = emcl_mode(method)
    if mode == "off":
        return None
    return GlobalEMCL(mode, method["emcl_inference"], method["emcl_joint"])


def mix_globals(
    plugin: GlobalEMCL | None, text: torch.Tensor, video: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(text, video)`` through the plug-in where it applies now, else unchanged."""
    if plugin is None or not plugin.applies:
        return text, video
    return plugin.mix(text, video)
