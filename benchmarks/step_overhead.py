"""The engine's training step against a bare PyTorch loop on the same model and batches, and the
floating-point work of one step.

Both loops start from the same weights (the bare one on a copy made before Accelerate wraps the
model) with the same optimizer and schedule (`build_optimizer`) and run on the same batches, read
from the task's loader once and kept in memory (warm data). The engine runs
`harness.engine.train_step`: Accelerate's accumulate and autocast contexts, the task's loss on
`model_input`, Accelerate's backward and clipping, the wrapped optimizer and schedule. The bare
loop runs the task's loss on `model_input`, ``loss.backward()``, ``clip_grad_norm_``,
``opt.step()``, the schedule step and ``zero_grad()``. Blocks of steps alternate between the two,
the first of each round switching, so that drift in the machine's load falls on both.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from itertools import cycle, islice
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.gemm import synchronize
from harness.data import model_input
from harness.engine import Training, train_step
from harness.optim import build_optimizer
from harness.task import Task


class BareLoop:
    """A plain PyTorch training step on ``model`` (a copy of the engine's, on ``device``) with
    the run's optimizer and schedule."""

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], task: Task, steps: int):
        train = config["train"]
        self.model, self.task, self.clip = model, task, train["grad_clip"]
        self.optimizer, self.scheduler = build_optimizer(train, model, total_steps=steps)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The task's training loss of ``batch`` (a scalar tensor)."""
        return self.task.training_loss(self.model, model_input(batch))

    def step(self, batch: dict[str, Any]) -> torch.Tensor:
        """One optimizer step on ``batch``; returns the loss."""
        loss = self.loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad()
        return loss


def bare_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An independent copy of ``model`` (before Accelerate prepares it), in training mode."""
    return copy.deepcopy(model).train()


def seconds_per_step(
    step: Callable[[Any], torch.Tensor], batches: list[Any], device: torch.device
) -> float:
    """Mean wall seconds of ``step`` over ``batches``, the device's queue drained at both ends."""
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    synchronize(device)
    return (time.perf_counter() - start) / len(batches)


def compare_steps(
    training: Training, bare: BareLoop, batches: list[Any], steps: int, repeats: int
) -> dict[str, Any]:
    """``repeats`` rounds of ``steps`` engine steps and ``steps`` bare steps (alternating which
    goes first) over ``batches`` in turn, after one warm-up step each. Returns the per-step
    seconds of every round, their medians and the median of the per-round engine/bare ratios."""
    device = training.accelerator.device
    training.model.train()
    loops = {
        "engine": lambda batch: train_step(training, batch),
        "bare": bare.step,
    }
    for step in loops.values():
        step(batches[0])
    feed = cycle(batches)
    rounds: dict[str, list[float]] = {"engine": [], "bare": []}
    for round_index in range(repeats):
        order = ("engine", "bare") if round_index % 2 == 0 else ("bare", "engine")
        for name in order:
            block = list(islice(feed, steps))
            rounds[name].append(seconds_per_step(loops[name], block, device))
    ratios = [e / b for e, b in zip(rounds["engine"], rounds["bare"], strict=True)]
    return {
        "engine_step_s": statistics.median(rounds["engine"]),
        "bare_step_s": statistics.median(rounds["bare"]),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "rounds": rounds,
        "steps_per_round": steps,
    }


def step_flops(bare: BareLoop, batch: dict[str, Any]) -> int:
    """Floating-point operations of one forward and backward pass on ``batch``, counted by
    `torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions; the optimizer's
    elementwise work is not counted). The gradients are cleared afterwards."""
    with FlopCounterMode(display=False) as counter:
        bare.loss(batch).backward()
    bare.optimizer.zero_grad()
    return counter.get_total_flops()
