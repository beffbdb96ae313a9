"""The one sharded map of evaluation: compute per-sample outputs of a dataset on all processes
and gather them in index order, padding dropped.

Every task evaluates through :func:`sharded_map`: fixed contiguous batches (the same for any
process count) are dealt round-robin to processes, each batch's outputs are moved to the CPU,
and :func:`harness.distributed.gather_by_index` reassembles them by sample index, so metrics
cannot depend on the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from harness import distributed
from harness.data import loader_options, model_input
from harness.samplers import ShardedBatches

Batch = dict[str, torch.Tensor]
Outputs = dict[str, torch.Tensor]


class IndexDataset(Dataset):
    """Items ``{"index": i}`` for i < ``size``: a sharded map over rows of tensors already in
    memory (e.g. pairs of gathered features)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, int]:
        return {"index": index}


def sharded_map(
    dataset: Dataset,
    compute: Callable[[Batch], Mapping[str, torch.Tensor]],
    batch_size: int,
    device: torch.device,
    num_workers: int | str = 0,
) -> Outputs:
    """``compute`` over every item of ``dataset`` (items are dicts with an ``index`` entry),
    batch by batch on the processes, gathered on every process.

    ``compute`` gets a batch whose tensors are on ``device`` (uint8 ``frames`` made ``pixels``
    there, :func:`harness.data.model_input`) and returns tensors with the batch
    as first dimension. Returns ``{name: (len(dataset), ...)}`` with row i from item i: floating
    outputs as float32 on the CPU, others as they are on the CPU.
    """
    loader = DataLoader(
        dataset,
        batch_sampler=ShardedBatches(len(dataset), batch_size),
        **loader_options(num_workers, persistent=False),
    )
    index, parts = [], []
    for batch in loader:
        index.append(batch["index"].cpu())
        outputs = compute(model_input({k: _to(v, device) for k, v in batch.items()}))
        parts.append({k: _to_cpu(v) for k, v in outputs.items()})
    local = {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}
    local_index = torch.cat(index) if index else torch.zeros(0, dtype=torch.long)
    return distributed.gather_by_index(local_index, local, len(dataset))


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    """Detached, on the CPU; floating tensors in float32 (features from bf16/fp16 autocast)."""
    tensor = tensor.detach()
    return tensor.float().cpu() if tensor.is_floating_point() else tensor.cpu()
