"""Collectives that the engine and the heads need beyond what Accelerate offers.

All-gathers that carry gradients (METHODS §0.5), by ``train.gather_grad``:
- ``"local"``: the backward returns only this rank's slice of the incoming gradient, as in
  CLIP4Clip, X-CLIP, DRL and EMCL-Net. With DDP averaging the parameters that act through the
  gathered features get (1/world) times the single-device gradient of the global-batch loss;
  those that act only in the loss (the logit scale, X-CLIP's matrices) get all of it.
- ``"sum"``: the backward sums the gradient over ranks before slicing (HMMC's diffdist). With
  DDP averaging this equals the single-device gradient wherever every rank computes the same
  loss.
- ``"global"``: the same backward as ``"sum"``; the word also tells the methods whose reference
  loss is per process (CLIP4Clip's tightTransf, DRL's xti) to compute it on the global batch, so
  that any process count applies the single-device gradient.
:func:`scale_gradient` before a summing gather gives the local convention of any other process
count (``train.reference_world_size``); :func:`average_gradients` is DDP's averaging for a
backward that runs outside DDP's forward (the gradient cache).
And an index-ordered gather for evaluation that removes sharding padding, so that metrics do not
depend on the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist

from harness.config_checks import GATHER_MODES


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _GatherLocalGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.size = rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad[ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


class _GatherSumGrad(_GatherLocalGrad):
    """The same gather; the backward sums the gradient over ranks."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # An all-reduce of the whole gradient, then this rank's slice. torch's summing gather
        # (torch.distributed.nn) reduces by all-to-all on gloo, which returned wrong sums in
        # tests while DDP reduced its buckets in the same backward.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.size : (ctx.rank + 1) * ctx.size]


def all_gather_with_grad(tensor: torch.Tensor, mode: str = "local") -> torch.Tensor:
    """Concatenate ``tensor`` (B, ...) from every rank along dim 0 -> (world*B, ...).

    Same B on every rank is required (training loaders drop the last batch). ``mode`` picks the
    backward convention described in the module docstring. Identity when not distributed.
    """
    if world_size() == 1:
        return tensor
    if mode == "local":
        return _GatherLocalGrad.apply(tensor)
    if mode in ("sum", "global"):
        return _GatherSumGrad.apply(tensor)
    raise ValueError(f"train.gather_grad must be one of {GATHER_MODES}, got {mode!r}")


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def scale_gradient(tensor: torch.Tensor, factor: float) -> torch.Tensor:
    """``tensor`` unchanged in the forward; its gradient multiplied by ``factor`` in the
    backward."""
    return _ScaleGrad.apply(tensor, factor)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace every ``.grad`` of ``parameters`` by its mean over ranks, as DDP does after a
    backward (one all-reduce of the flattened gradients). No-op on one process."""
    if world_size() == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def gather_by_index(
    index: torch.Tensor, tensors: dict[str, torch.Tensor], total: int
) -> dict[str, torch.Tensor]:
    """Collect per-sample tensors computed on shards into full tensors ordered by sample index.

    ``index`` (n,) holds the dataset index of each local row (rows may be any subset; duplicates
    from padded samplers are allowed); every ``tensors[k]`` is (n, ...). Returns, on every rank,
    tensors of shape (total, ...) with row i = the sample whose index is i. Raises if an index in
    [0, total) was produced by no rank.
    """
    if world_size() == 1:
        gathered_index, gathered = index, tensors
    else:
        counts = [torch.zeros(1, dtype=torch.long) for _ in range(world_size())]
        dist.all_gather(counts, torch.tensor([index.numel()]))
        longest = int(max(c.item() for c in counts))
        gathered_index = _gather_padded(index, longest, counts)
        gathered = {k: _gather_padded(v, longest, counts) for k, v in tensors.items()}
    order = torch.full((total,), -1, dtype=torch.long)
    order[gathered_index] = torch.arange(gathered_index.numel())
    if (order < 0).any():
        missing = int((order < 0).nonzero()[0])
        raise RuntimeError(f"evaluation lost sample {missing}: no process produced it")
    return {k: v[order] for k, v in gathered.items()}


def _gather_padded(tensor: torch.Tensor, longest: int, counts: list[torch.Tensor]) -> torch.Tensor:
    pad = longest - tensor.shape[0]
    padded = torch.cat([tensor, tensor.new_zeros((pad, *tensor.shape[1:]))]) if pad else tensor
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[: int(c.item())] for part, c in zip(parts, counts, strict=True)])


def shard(items: int, world: int | None = None, this_rank: int | None = None) -> range:
    """The indices this rank handles when ``items`` work units are split round-robin."""
    world = world_size() if world is None else world
    this_rank = rank() if this_rank is None else this_rank
    return range(this_rank, items, world)


def all_gather_objects(items: list) -> list:
    """The concatenation of every rank's ``items`` (picklable), in rank order, on every rank."""
    if world_size() == 1:
        return items
    parts: list[list] = [[] for _ in range(world_size())]
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def on_main_process(compute: Callable[[], Any]) -> Any:
    """``compute()`` run on rank 0 only, its result (or the exception it raised, re-raised
    everywhere) sent to every process."""
    if world_size() == 1:
        return compute()
    payload: list[Any] = [None]
    if rank() == 0:
        try:
            payload[0] = compute()
        except Exception as exc:  # every process must leave the broadcast, then fail alike
            payload[0] = exc
    dist.broadcast_object_list(payload, src=0)
    if isinstance(payload[0], Exception):
        raise payload[0]
    return payload[0]
