"""Matrix-multiply peak of a device: TFLOP/s of timed large square matmuls, fp32 and bf16."""

from __future__ import annotations

import time
from typing import Any

import torch

# Square matrix side: large enough to reach the device's matmul peak, small enough that one
# fp32 product takes under a second on one CPU core.
SIZE = {"cpu": 2048, "cuda": 8192}
REPEATS = {"cpu": 3, "cuda": 20}


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously; the CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """TFLOP/s of the fastest of ``repeats`` (size x size) @ (size x size) products in ``dtype``
    on ``device``, after one warm-up product (2 size^3 floating-point operations each)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device, dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


def bf16_support(device: torch.device) -> str | None:
    """Where bf16 matmuls run on ``device``: a description, or None when they do not."""
    if device.type == "cuda":
        return "CUDA bf16" if torch.cuda.is_bf16_supported() else None
    try:
        torch.ones(2, 2, dtype=torch.bfloat16) @ torch.ones(2, 2, dtype=torch.bfloat16)
    except RuntimeError:
        return None
    return "torch's CPU bf16 matmul"


def gemm_peaks(device: torch.device, size: int | None = None) -> dict[str, Any]:
    """``{"fp32_tflops", "bf16_tflops" (None where unsupported), "bf16_on", "tf32", "size",
    "threads"}`` measured on ``device`` with ``size`` x ``size`` matrices (default: SIZE of the
    device type); ``tf32``: whether CUDA fp32 matmuls may run in TF32 (None on a CPU)."""
    size = size or SIZE[device.type]
    repeats = REPEATS[device.type]
    bf16_on = bf16_support(device)
    return {
        "fp32_tflops": matmul_tflops(device, torch.float32, size, repeats),
        "bf16_tflops": matmul_tflops(device, torch.bfloat16, size, repeats) if bf16_on else None,
        "bf16_on": bf16_on,
        "tf32": torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda" else None,
        "size": size,
        "threads": torch.get_num_threads(),
    }
