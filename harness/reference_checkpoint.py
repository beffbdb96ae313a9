"""Evaluating a reference repository's released checkpoint: ``run.py --eval-only --checkpoint
FILE``, where FILE is a ``pytorch_model.bin`` state dict in that repository's layout (METHODS
§7.1), not a run folder of this harness. The method's registry entry names the loader of its
layout (``reference_checkpoint``); the run's CLIP is built from the file's ``clip.*`` weights and
its text is read with the CLIP BPE, as the references read it (``data.tokenizer`` ``auto`` or
``word`` with a pretrained encoder: ``tasks.common.build_text_tokenizer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.config import Config
from harness.encoder import CheckpointError
from harness.errors import UsageError
from harness.registry import METHODS


def is_reference_file(checkpoint: Path | None) -> bool:
    """Whether ``checkpoint`` (``--checkpoint``) is a file: a reference repository's state dict
    rather than a run or checkpoint folder of this harness."""
    return checkpoint is not None and Path(checkpoint).is_file()


def reference_loader(task: str, method: str) -> Any:
    """The registered loader ``(model, state_dict) -> None`` of ``method``'s reference
    checkpoints; a method without one is a one-line UsageError."""
    loader = METHODS.entry(task, method).reference_adapter()
    if loader is None:
        raise UsageError(
            f"method {method!r} of task {task} has no loader for reference checkpoints: "
            "--checkpoint takes a run folder (or checkpoints/step_N) written by run.py for it"
        )
    return loader


def prepare_reference_config(config: Config, checkpoint: Path) -> None:
    """Check and complete ``config`` for evaluating reference file ``checkpoint``: the method
    must have a loader (else a one-line UsageError), and an ``encoder.pretrained`` left null
    becomes the file (the encoder takes its ``clip.*`` shapes and weights, and the text the
    CLIP BPE)."""
    reference_loader(config["task"], config["method"]["name"])
    if config["encoder"]["pretrained"] is None:
        config["encoder"]["pretrained"] = str(checkpoint)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``torch.save``-d state dict at ``path`` (a ``module.`` prefix, which a
    DataParallel save adds, is removed). An unreadable file or one that holds no state dict is
    a one-line CheckpointError."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"cannot read reference checkpoint {path}: {first}; pass the pytorch_model.bin "
            "state dict the reference repository saved"
        ) from exc
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"reference checkpoint {path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_reference_checkpoint(model: nn.Module, checkpoint: Path, config: Config) -> None:
    """Load reference file ``checkpoint`` into ``model`` through its method's loader."""
    loader = reference_loader(config["task"], config["method"]["name"])
    loader(model, read_state_dict(Path(checkpoint)))
