"""The gradient conventions of the training all-gather and the index-ordered eval gather, checked
with two real processes (gloo on CPU)."""

import os

import pytest
import torch
import torch.distributed as dist

from harness.distributed import all_gather_with_grad, gather_by_index
from harness.retrieval import symmetric_cross_entropy
from tests.spawn import run_workers

WORLD = 2
PER_RANK = 3


def features() -> torch.Tensor:
    return torch.randn(WORLD * PER_RANK, 4, generator=torch.Generator().manual_seed(0))


def global_loss(x: torch.Tensor) -> torch.Tensor:
    return symmetric_cross_entropy(10 * x @ x.t())


def worker(rank: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        out = {}
        for mode in ("local", "sum"):
            local = features()[rank * PER_RANK : (rank + 1) * PER_RANK].clone().requires_grad_()
            global_loss(all_gather_with_grad(local, mode)).backward()
            out[mode] = local.grad
        # eval gather: ranks hold interleaved rows plus one duplicated row (sampler padding)
        mine = torch.tensor([0, 2, 4]) if rank == 0 else torch.tensor([1, 3, 0])
        out["gathered"] = gather_by_index(mine, {"x": mine.float() * 10}, total=5)["x"]
        # plain lists: tensors would travel as shared-memory handles that die with this process
        queue.put((rank, {k: v.tolist() for k, v in out.items()}))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results() -> dict:
    payloads = run_workers(worker, 29547, WORLD, timeout=120)
    return {
        rank: {k: torch.tensor(v) for k, v in lists.items()} for rank, lists in payloads.items()
    }


def test_local_convention_returns_this_ranks_slice_of_the_global_gradient(results):
    full = features().requires_grad_()
    global_loss(full).backward()
    for rank in range(WORLD):
        expected = full.grad[rank * PER_RANK : (rank + 1) * PER_RANK]
        assert torch.allclose(results[rank]["local"], expected, atol=1e-6)
        # "sum" adds every rank's copy of the same gradient: world x the slice, so that DDP's
        # average gives the single-device gradient
        assert torch.allclose(results[rank]["sum"], WORLD * expected, atol=1e-6)


def test_eval_gather_is_ordered_and_deduplicated(results):
    for rank in range(WORLD):
        assert results[rank]["gathered"].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]
