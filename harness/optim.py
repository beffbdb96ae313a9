"""Optimizers and the learning-rate schedule of the reference repositories (METHODS §0.6).

Two optimizers:
- ``adamw`` (default): torch AdamW with bias correction and eps 1e-6, betas (0.9, 0.98), and
  the reference parameter groups. The training loop clips the global gradient norm at 1.0.
- ``bertadam``: a faithful BertAdam: no bias correction, a per-tensor gradient-norm clip at 1.0
  (on top of the loop's global clip), decoupled weight decay, and its own warmup-cosine factor.

How they differ: BertAdam's first update has lr 0 (its step counter starts at 0), its early
steps are larger than AdamW's would be with the same lr because m is not bias-corrected while v
is also small (ratio ~ sqrt(1-0.98^t)/(1-0.9^t)), and its per-tensor clip caps every tensor's
gradient separately. The warmup-cosine factor is the same for both (``warmup_cosine``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from harness.config import ConfigError
from harness.config_checks import OPTIMIZERS


def warmup_cosine(progress: float, warmup: float = 0.1) -> float:
    """The reference schedule factor at ``progress`` = step / total steps.

    Linear warmup ``progress / warmup`` below ``warmup``, then ``0.5 (1 + cos(pi progress))``:
    the cosine spans the whole run, so the factor drops from 1.0 to ~0.976 at the end of warmup.
    """
    if progress < warmup:
        return progress / warmup
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def parameter_groups(
    model: nn.Module, lr: float, coef_lr: float, weight_decay: float
) -> list[dict]:
    """The four reference groups: CLIP parameters (name contains ``clip.``) get ``lr * coef_lr``;
    only names containing ``bias`` escape weight decay. Frozen parameters are left out."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(("clip." in name, "bias" in name), []).append(param)
    return [
        {
            "params": params,
            "lr": lr * coef_lr if is_clip else lr,
            "weight_decay": 0.0 if no_decay else weight_decay,
        }
        for (is_clip, no_decay), params in sorted(groups.items())
    ]


class BertAdam(torch.optim.Optimizer):
    """BertAdam as in the reference repositories; the schedule is applied inside ``step``."""

    def __init__(
        self,
        params: Iterable,
        lr: float,
        t_total: int,
        warmup: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        max_grad_norm: float = 1.0,
    ) -> None:
        defaults = dict(
            lr=lr,
            t_total=t_total,
            warmup=warmup,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            max_grad_norm=max_grad_norm,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D401 - torch signature
        """One update of every parameter with a gradient."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["next_m"] = torch.zeros_like(p)
                    state["next_v"] = torch.zeros_like(p)
                if group["max_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(p, group["max_grad_norm"])
                grad = p.grad
                state["next_m"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["next_v"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = state["next_m"] / (state["next_v"].sqrt() + group["eps"])
                if group["weight_decay"] > 0:
                    update = update + group["weight_decay"] * p
                progress = state["step"] / group["t_total"]
                p.add_(update, alpha=-group["lr"] * warmup_cosine(progress, group["warmup"]))
                state["step"] += 1


def build_optimizer(
    train: Mapping[str, Any], model: nn.Module, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimizer the config's ``train`` section names (``optimizer``, ``lr``, ``coef_lr``,
    ``weight_decay``, ``warmup_proportion``) over ``total_steps`` optimizer steps and, for AdamW,
    its warmup-cosine LambdaLR (BertAdam schedules itself)."""
    name, lr, warmup = train["optimizer"], train["lr"], train["warmup_proportion"]
    groups = parameter_groups(model, lr, train["coef_lr"], train["weight_decay"])
    if name == "bertadam":
        return BertAdam(groups, lr=lr, t_total=total_steps, warmup=warmup), None
    if name != "adamw":
        raise ConfigError(f"train.optimizer must be one of {OPTIMIZERS}, got {name!r}")
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step / max(total_steps, 1), warmup)
    )
    return optimizer, scheduler
