"""How a run's training batch was laid out, as results.json records it: processes, the batch of
each, the gradient-cache chunk, the global batch and the negatives each query saw, and the
gradient convention (see :mod:`harness.distributed` and :mod:`harness.gradient_cache`)."""

from __future__ import annotations

from typing import Any

from harness.config import Config


def batch_fields(config: Config, model: Any, world_size: int) -> dict[str, Any]:
    """The record's batch fields for a run trained on ``world_size`` processes with ``config``;
    ``model`` (unwrapped) says how many negatives a query sees (``negatives_per_query``; None
    for a model without a contrastive term). ``gather_grad`` is the convention the gradients
    followed: ``local`` under ``reference_world_size``, which reproduces that convention on
    that many processes."""
    train = config["train"]
    reference = train["reference_world_size"]
    negatives = getattr(model, "negatives_per_query", None)
    return {
        "world_size": world_size,
        "per_device_batch": train["batch_size"] // world_size,
        "micro_batch": train["micro_batch"],
        "global_batch": train["batch_size"],
        "negatives_per_query": negatives(train["batch_size"], reference or world_size)
        if negatives
        else None,
        "gather_grad": "local" if reference is not None else train["gather_grad"],
        "reference_world_size": reference,
    }
