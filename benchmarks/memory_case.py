"""One case of the memory benchmark (benchmarks/memory.py), run in a fresh process: one training
step of a retrieval method on a random encoder, with or without the gradient cache; it measures
the step's time and the process's resident-memory peak above its resident size before the step
(model, batch and the parameters' gradient buffers excluded)."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

import baselines  # noqa: F401  (registers the methods)
import tasks
from benchmarks.similarity_case import peak_since_reset, reset_peak
from harness.config import resolve_config
from harness.encoder import VideoTextEncoder, build_clip
from harness.gradient_cache import cached_backward
from harness.registry import METHODS

# The encoders: tiny is synthvtt's CPU model at its data sizes; base is ViT-B/32 at the
# reference's resolution with the CLIP vocabulary.
ENCODERS = {
    "tiny": {"image_size": 64, "patch_size": 16, "vocab": 1000, "words": 16},
    "base": {"image_size": 224, "patch_size": 32, "vocab": 49408, "words": 32},
}


def random_batch(batch: int, frames: int, words: int, image: int, vocab: int) -> dict:
    """Captions of random length (4..words tokens between SOT and EOT) and random pixels."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(4, words + 1, (batch,), generator=g)
    positions = torch.arange(words)
    mask = (positions[None] < lengths[:, None]).long()
    ids = torch.randint(1, vocab - 2, (batch, words), generator=g) * mask
    ids[:, 0] = vocab - 2
    ids[positions[None] == (lengths - 1)[:, None]] = vocab - 1
    pixels = torch.randn(batch, frames, 3, image, image, generator=g)
    return {"ids": ids, "mask": mask, "pixels": pixels, "video_mask": torch.ones(batch, frames)}


def run_case(case: dict[str, Any]) -> None:
    """One training step; writes its record (wall_s, peak_bytes) to ``case["record"]``.
    ``case``: method, encoder (tiny | base), batch, micro (None: no cache), frames, threads,
    record (json path)."""
    # Should memory run out, the kernel is to kill this case rather than anyone else's process.
    Path("/proc/self/oom_score_adj").write_text("1000")
    if case["threads"]:
        torch.set_num_threads(case["threads"])
    torch.manual_seed(0)
    sizes = ENCODERS[case["encoder"]]
    names = {"task": "retrieval", "dataset": "synthvtt", "method.name": case["method"]}
    overrides = [
        f"data.max_frames={case['frames']}",
        f"data.max_words={sizes['words']}",
        f"data.image_size={sizes['image_size']}",
    ]
    config = resolve_config(tasks.BASE_CONFIG, names, overrides=overrides)
    clip = build_clip(
        None,
        case["encoder"],
        sizes["image_size"],
        sizes["patch_size"],
        vocab_size=sizes["vocab"],
        sot_id=sizes["vocab"] - 2,
        eot_id=sizes["vocab"] - 1,
    )
    model = METHODS.get("retrieval", case["method"])(VideoTextEncoder(clip), config).train()
    batch = random_batch(
        case["batch"], case["frames"], sizes["words"], sizes["image_size"], sizes["vocab"]
    )
    for param in model.parameters():  # gradient buffers exist before the step in training
        if param.requires_grad:
            param.grad = torch.zeros_like(param)
    before = reset_peak()
    start = time.perf_counter()
    if case["micro"] is None:
        loss = model(batch)
        loss.backward()
    else:
        loss = cached_backward(model, batch, case["micro"], torch.Tensor.backward, nullcontext)
    wall = time.perf_counter() - start
    peak = peak_since_reset() - before
    record = {
        "wall_s": wall,
        "peak_bytes": peak,
        "loss": loss.item(),
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    Path(case["record"]).write_text(json.dumps(record))
