"""Optimizer groups, the warmup-cosine factor and BertAdam's update rule (METHODS §0.6)."""

import math

import pytest
import torch
from torch import nn

from harness.config import ConfigError
from harness.optim import BertAdam, build_optimizer, parameter_groups, warmup_cosine


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.clip = nn.Linear(3, 2)
        self.head = nn.Linear(2, 1)


def test_warmup_cosine_matches_the_reference_schedule():
    assert warmup_cosine(0.0) == 0.0
    assert warmup_cosine(0.05) == pytest.approx(0.5)
    # the cosine spans the whole run: a jump from ~1.0 to 0.9755 at the end of warmup
    assert warmup_cosine(0.1) == pytest.approx(0.5 * (1 + math.cos(0.1 * math.pi)))
    assert warmup_cosine(1.0) == pytest.approx(0.0)


def test_groups_scale_clip_lr_and_exempt_only_biases_from_decay():
    groups = parameter_groups(Toy(), lr=1e-3, coef_lr=0.1, weight_decay=0.2)
    summary = sorted((g["lr"], g["weight_decay"], len(g["params"])) for g in groups)
    assert summary == [(1e-4, 0.0, 1), (1e-4, 0.2, 1), (1e-3, 0.0, 1), (1e-3, 0.2, 1)]


def test_bertadam_update_has_no_bias_correction_and_clips_per_tensor():
    param = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = BertAdam([param], lr=0.1, t_total=10, warmup=0.1, weight_decay=0.0)
    clipped = torch.tensor([0.6, 0.8])  # gradient (3, 4) has norm 5 -> clipped to norm 1
    m = v = torch.zeros(2)
    # step 0 is at progress 0 (factor 0: the first update has lr 0); step 1 at progress 0.1
    for schedule_factor in (0.0, warmup_cosine(0.1)):
        param.grad = torch.tensor([3.0, 4.0])
        before = param.detach().clone()
        opt.step()
        m, v = 0.9 * m + 0.1 * clipped, 0.98 * v + 0.02 * clipped**2
        expected = before - 0.1 * schedule_factor * m / (v.sqrt() + 1e-6)
        assert torch.allclose(param.detach(), expected)


def test_unknown_optimizer_is_a_clear_error():
    with pytest.raises(ConfigError, match="train.optimizer must be one of"):
        train = {"lr": 1e-3, "coef_lr": 1.0, "weight_decay": 0.0, "warmup_proportion": 0.1}
        build_optimizer({"optimizer": "sgd", **train}, Toy(), total_steps=10)
