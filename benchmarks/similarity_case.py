"""One case of the similarity benchmark, run in a process of its own (see benchmarks/similarity.py).

A case builds one method head with random weights on a throwaway one-layer CLIP (only the head
scores; the towers just give it its shapes), draws random features in that head's layout, and
scores them one way, each item prepared once (``prepare_text``/``prepare_video``) and then:
``tiled`` (`blocked_similarity` with the method's evaluation block), ``naive`` (the method's
scorer on the full feature sets at once) or ``tile`` (the first block only). It times the
scoring (a short case is repeated and timed by its mean) and measures the process's
resident-memory peak above its resident size just before the scoring, then writes its record as
json to ``case["record"]``. A tiled case also saves its matrix to ``case["matrix"]``; a naive
case compares itself with that matrix.
"""

from __future__ import annotations

import ctypes
import gc
import json
import time
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPConfig, CLIPModel

import baselines  # noqa: F401  (registers the methods)
from harness.config import Config, layered_config, load_yaml
from harness.encoder import VideoTextEncoder
from harness.registry import METHODS
from harness.retrieval import Features, RetrievalModel
from harness.similarity import take
from tasks import BASE_CONFIG

TASK = "retrieval"
# The throwaway towers: an 8-token vocabulary (EOT 7: transformers pools by argmax when EOS is 2)
# and 32-px frames of a single patch.
VOCAB, IMAGE = 8, 32
# A case whose scoring takes less than MIN_TIMED_S runs again until that much time has passed or
# it ran MAX_RUNS times; its wall time is the mean over the runs, its peak that of the first run.
MIN_TIMED_S, MAX_RUNS = 1.0, 20


def method_config(name: str, words: int, frames: int) -> Config:
    """The config a run resolves for retrieval method ``name`` (base.yaml <- the method's own
    yaml) with ``words`` tokens per text and ``frames`` frames per video."""
    config = layered_config(load_yaml(BASE_CONFIG), [(METHODS.entry(TASK, name).config, None)], [])
    config["data"].update(max_words=words, max_frames=frames)
    return config


def random_encoder(width: int, positions: int) -> VideoTextEncoder:
    """A random CLIP with joint width ``width`` (text width too, as seqTransf's CLIP init needs),
    one layer per tower and ``positions`` text positions."""
    tower = dict(
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=1,
        num_attention_heads=max(1, width // 64),
        hidden_act="quick_gelu",
    )
    text = dict(
        vocab_size=VOCAB,
        max_position_embeddings=positions,
        bos_token_id=VOCAB - 2,
        eos_token_id=VOCAB - 1,
        pad_token_id=0,
        **tower,
    )
    vision = dict(image_size=IMAGE, patch_size=IMAGE, **tower)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=width)
    return VideoTextEncoder(CLIPModel(config))


def random_like(template: Features, rows: int) -> Features:
    """``rows`` random rows shaped like each tensor of ``template`` (a 2-row encoder output):
    float features are Gaussian, L2-normalised on the last axis; masks keep a random number (at
    least one) of leading positions."""
    out = {}
    for key, value in template.items():
        shape = (rows, *value.shape[1:])
        if value.is_floating_point():
            x = torch.randn(shape)
            out[key] = x.div_(x.norm(dim=-1, keepdim=True))
        else:
            length = torch.randint(1, shape[-1] + 1, (rows, 1))
            out[key] = (torch.arange(shape[-1]) < length).to(value.dtype)
    return out


def random_features(
    model: RetrievalModel, rows: int, words: int, frames: int
) -> tuple[Features, Features]:
    """``rows`` random texts and videos in the layout of ``model.encode_text`` /
    ``model.encode_video`` (each called once on a 2-item batch to learn it)."""
    with torch.no_grad():
        text = model.encode_text(
            torch.randint(0, VOCAB, (2, words)), torch.ones(2, words, dtype=torch.long)
        )
        video = model.encode_video(
            torch.randn(2, frames, 3, IMAGE, IMAGE), torch.ones(2, frames, dtype=torch.long)
        )
    return random_like(text, rows), random_like(video, rows)


def nbytes(features: Features) -> int:
    """Bytes held by the tensors of ``features``."""
    return sum(v.numel() * v.element_size() for v in features.values())


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS: resident now; VmHWM: resident peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} field: this benchmark needs Linux")


def reset_peak() -> int:
    """Reset this process's resident peak (VmHWM) to its resident size; that size in bytes.

    Memory that glibc kept after earlier frees goes back to the system first, so that the peak
    measured next counts what the scoring needs, not what the setup happened to leave resident.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def peak_since_reset() -> int:
    """The resident peak in bytes since the last :func:`reset_peak`."""
    return _status_kib("VmHWM") * 1024


def run_case(case: dict[str, Any]) -> None:
    """Run one case and write its record. ``case``: method, size (texts = videos), mode
    (tiled | naive | tile), width, words, frames, block (None: the method's eval.block_size),
    threads (None: torch's default), seed, record (json path), matrix (the tiled matrix's path)."""
    # Should memory run out, the kernel is to kill this case rather than anyone else's process.
    Path("/proc/self/oom_score_adj").write_text("1000")
    if case["threads"]:
        torch.set_num_threads(case["threads"])
    torch.manual_seed(case["seed"])
    config = method_config(case["method"], case["words"], case["frames"])
    encoder = random_encoder(case["width"], max(77, case["words"], case["frames"]))
    model = METHODS.get(TASK, case["method"])(encoder, config).eval()
    text, video = random_features(model, case["size"], case["words"], case["frames"])
    block = case["block"] or config["eval"]["block_size"]
    mode = case["mode"]

    def scoring() -> torch.Tensor:
        if mode == "tiled":
            return model.score(text, video, block)
        if mode == "naive":
            return model.score(text, video).float()
        return model.score(take(text, 0, block), take(video, 0, block)).float()

    with torch.no_grad():
        model.score(take(text, 0, 2), take(video, 0, 2))  # warm-up: thread pool, lazy inits
        before = reset_peak()
        start = time.perf_counter()
        sim = scoring()
        peak = peak_since_reset() - before
        runs = 1
        # A case of milliseconds is timed over repeats: one run's wall time is mostly noise.
        while time.perf_counter() - start < MIN_TIMED_S and runs < MAX_RUNS:
            del sim  # not held while the next run allocates its own
            sim = scoring()
            runs += 1
        wall = (time.perf_counter() - start) / runs
    record = {
        "wall_s": wall,
        "runs": runs,
        "pairs_per_s": sim.numel() / wall,
        "peak_bytes": peak,
        "block": block,
        "threads": torch.get_num_threads(),
        "features_bytes": nbytes(text) + nbytes(video),
        "matrix_bytes": sim.numel() * sim.element_size(),
        # Blocks change the scores only where the scorer mixes the rows of a block (EM steps).
        "same_scores_expected": model.eval_block is None,
    }
    matrix = Path(case["matrix"])
    if mode == "tiled":
        torch.save(sim, matrix)
    elif mode == "naive" and matrix.is_file():
        record["max_abs_diff"] = (sim - torch.load(matrix)).abs().max().item()
    Path(case["record"]).write_text(json.dumps(record))
