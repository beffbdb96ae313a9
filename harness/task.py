"""The contract between the engine and a task (retrieval, qa, captioning).

The engine owns Accelerate, the optimizer, checkpoints and results files; a task owns its data,
its model and its metrics, and never sees which process count it runs under except through the
helpers of :mod:`harness.distributed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from harness.config import Config
from harness.schema import OPTIONAL_FIELDS, SKIPPED_VIDEOS, SampleRow


@dataclass
class EvalOutput:
    """What one evaluation produced.

    ``metrics`` goes to results.json as is; ``samples`` are one dict per evaluated query;
    ``num_samples`` counts the evaluated items by kind; ``metrics_postprocessed`` maps a
    post-processing name to metrics shaped like ``metrics``; ``baselines`` maps a trivial
    predictor's name to its metrics; ``skipped_videos`` lists the unreadable videos left out;
    ``integrity`` holds the checks measured during the evaluation (check name -> its findings);
    ``notes`` are lines printed under the console table and stored in results.json.
    """

    metrics: dict[str, Any]
    samples: list[SampleRow]
    num_samples: dict[str, int]
    metrics_postprocessed: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    skipped_videos: list[Any] = field(default_factory=list)
    integrity: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def optional_fields(self) -> dict[str, Any]:
        """The optional results.json fields this evaluation has, by name: the non-empty ones, and
        always the list of skipped videos (empty when none was skipped)."""
        return {
            name: getattr(self, name)
            for name in OPTIONAL_FIELDS
            if getattr(self, name) or name == SKIPPED_VIDEOS
        }


class Task:
    """Base class; subclasses implement every method that raises NotImplementedError."""

    name = "task"
    # where the main metric sits in ``EvalOutput.metrics``: model selection maximises it
    main_metric: tuple[str, ...] = ()
    # Config keys (dotted; a section name covers all its keys) that decide the shape or the
    # meaning of the trained parameters: an evaluation or a resume may not change them.
    model_keys: tuple[str, ...] = (
        "method",
        "encoder",
        "data.max_words",
        "data.max_frames",
        "data.image_size",
        "data.tokenizer",
    )
    # Why the task cannot be evaluated zero-shot (``--eval-only`` without ``--checkpoint``: the
    # model as built from ``encoder.pretrained``), or None when it can: a task whose predictions
    # come from a head that only training gives meaning (an answer classifier) says so here.
    no_zero_shot: str | None = None

    def __init__(self, config: Config) -> None:
        self.config = config

    def use_checkpoint(self, folder: Path) -> None:
        """Before :meth:`setup` of a resumed or evaluated run: take what
        :meth:`save_with_checkpoint` wrote into checkpoint ``folder`` (e.g. the tokenizer)
        instead of building it from the data again. Damaged files raise a one-line UserError."""

    def save_with_checkpoint(self, folder: Path) -> None:
        """Write into checkpoint ``folder`` what evaluating it needs besides the weights and the
        config (e.g. the tokenizer); called after :meth:`setup`, on the main process."""

    def setup(self, train: bool = True) -> None:
        """Load annotations, build tokenizers and settle the usable data of each split (called
        on every process before the model). ``train`` is False for an evaluation-only run: the
        training split is then not checked for unreadable videos."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        """The model to train and evaluate (plain nn.Module; the engine wraps it)."""
        raise NotImplementedError

    def train_loader(self, per_process_batch: int) -> DataLoader:
        """The training DataLoader. Its sampler's ``set_epoch(epoch)`` must select the epoch's
        order (the same on every process); the engine calls it through the prepared loader."""
        raise NotImplementedError

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar loss of one batch; by default the model's forward returns it (``model`` may
        be DDP-wrapped: call it, do not reach in)."""
        return model(batch)

    def after_step(self, model: nn.Module) -> None:
        """Hook after every optimizer step (e.g. clamping the logit scale)."""

    def evaluate(self, model: nn.Module) -> EvalOutput:
        """Evaluate the unwrapped ``model`` on the test split, identically on every process."""
        raise NotImplementedError

    def evaluated_videos(self) -> list[str]:
        """The ids of the videos :meth:`evaluate` scores (after :meth:`setup`), for the overlap
        checks of model selection; empty when the task does not say."""
        return []

    def describe(self) -> dict[str, Any]:
        """Protocol facts recorded in results.json (split, frames, resolution, ...)."""
        return {}
