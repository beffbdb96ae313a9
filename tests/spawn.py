"""Running a test's worker on several real processes (gloo on CPU) and collecting what each
sends back."""

from collections.abc import Callable
from typing import Any

import torch.multiprocessing as mp


def run_workers(
    worker: Callable[[int, int, Any], None], port: int, world: int, timeout: float
) -> dict[int, Any]:
    """Start ``worker(rank, port, queue)`` on ``world`` spawned processes; each puts one
    ``(rank, payload)`` on the queue (plain Python values: tensors would travel as
    shared-memory handles that die with their process). Returns ``{rank: payload}`` once every
    process has exited with status 0; waits at most ``timeout`` seconds for each payload."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(rank, port, queue)) for rank in range(world)]
    for proc in procs:
        proc.start()
    payloads = dict(queue.get(timeout=timeout) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return payloads
