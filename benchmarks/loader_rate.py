"""Clips per second one DataLoader worker delivers, from decoding and from the frame cache.

Generated H.264 videos (`benchmarks.cache_read.write_videos`: a square crossing a gradient, GOP
12) are paired with captions of ``max_words`` words into the training `PairDataset`, read once
with decoding (`ClipSource` without a cache) and once from a frame cache built for them
(`build_frame_cache`). Each loader has one worker, with the training loader's settings
(`loader_options`: persistent, prefetching); after a warm-up pass (the worker's start, the page
cache), timed passes run until ``timed_s`` seconds have passed, and clips/s counts every clip the
batches carried over that time.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from benchmarks.cache_read import write_videos
from harness.data import ClipSource, PairDataset, loader_options
from harness.data_types import VideoTextPairs
from harness.frame_cache import FrameCache, build_frame_cache, config_settings
from harness.text import WordTokenizer

CAPTIONS_PER_VIDEO = 2
BATCH = 4
WORDS = ("red", "blue", "circle", "square", "moves", "left", "then", "grows", "a", "small")


def captions(video: int, max_words: int) -> list[str]:
    """``CAPTIONS_PER_VIDEO`` captions of ``video``, each ``max_words`` words long."""
    return [
        " ".join(WORDS[(video + n + i) % len(WORDS)] for i in range(max_words))
        for n in range(CAPTIONS_PER_VIDEO)
    ]


def clips_per_second(dataset: Dataset, timed_s: float) -> float:
    """Clips/s of one worker reading ``dataset`` in batches of ``BATCH``, timed over passes
    that last at least ``timed_s`` seconds together (see the module)."""
    loader = DataLoader(dataset, batch_size=BATCH, **loader_options(1, persistent=True))
    for _ in loader:  # warm-up pass
        pass
    clips, start = 0, time.perf_counter()
    while clips == 0 or time.perf_counter() - start < timed_s:
        clips += sum(len(batch["index"]) for batch in loader)
    return clips / (time.perf_counter() - start)


def shape_rates(
    folder: Path,
    data: dict[str, Any],
    video_size: tuple[int, int],
    seconds: float,
    fps: int,
    videos: int,
    timed_s: float,
) -> dict[str, Any]:
    """Per-worker clips/s from decoding and from the frame cache for ``videos`` generated videos
    of ``video_size`` (H, W) and ``seconds`` at ``fps``, sampled with the ``data`` config section
    (max_frames, image_size, video_framerate, frame protocol, max_words); each source is
    timed for ``timed_s`` seconds."""
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    paths = write_videos(folder / "videos", videos, video_size, round(seconds * fps), fps)
    settings = config_settings(data)
    cache_dir = build_frame_cache(paths, folder / "cache", **settings, progress=False)
    texts = [text for video in range(videos) for text in captions(video, data["max_words"])]
    pairs = VideoTextPairs(
        video_ids=[path.stem for path in paths],
        video_paths=paths,
        captions=texts,
        caption_video=[video for video in range(videos) for _ in range(CAPTIONS_PER_VIDEO)],
    )
    tokenizer = WordTokenizer.train(texts)
    sources = {
        "decode": ClipSource(**settings),
        "frame_cache": ClipSource(**settings, cache=FrameCache.open(cache_dir, **settings)),
    }
    rates = {
        name: clips_per_second(PairDataset(pairs, tokenizer, data["max_words"], source), timed_s)
        for name, source in sources.items()
    }
    height, width = video_size
    return {
        "videos": f"{videos} x {width}x{height}, {seconds:g} s at {fps} fps (H.264, GOP 12)",
        "sampling": settings | {"max_words": data["max_words"]},
        "clips_per_s_per_worker": rates,
    }


def workers_needed(rate: float, clips_per_s: float) -> int:
    """Workers at ``rate`` clips/s each that deliver ``clips_per_s``."""
    return math.ceil(clips_per_s / rate)
