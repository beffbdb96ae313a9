"""The ``--prepare`` step of ``run.py``: compress a dataset's raw videos, build its frame cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.errors import DataError, UsageError
from harness.frame_cache import build_frame_cache, cache_dir_for
from harness.phases import announce
from harness.transcode import compress_videos, find_videos


def prepare(
    folder: Path,
    settings: dict[str, Any],
    raw_videos: Path | None = None,
    compress: bool = True,
    build_cache: bool = True,
    workers: int = 2,
    on_bad_video: str = "error",
) -> dict[str, Any]:
    """The ``--prepare`` step for a dataset whose files live in ``folder``.

    With ``raw_videos`` and ``compress``: compress them (3 fps, short side 224) into
    ``folder/videos``, where the loaders look by default. With ``build_cache``: build the frame
    cache of ``folder/videos`` (or of ``raw_videos`` when not compressing) for ``settings``
    (``max_frames``, ``image_size``, ``framerate``) at :func:`cache_dir_for`. Both steps resume:
    finished files and a complete cache are kept. Returns a report (counts, cache folder).
    """
    videos = Path(folder) / "videos"
    report: dict[str, Any] = {}
    if raw_videos is not None and compress:
        found = find_videos(raw_videos)
        if not found:
            raise UsageError(f"no video files under {raw_videos}: check --video-root")
        report["compress"] = compress_videos(found, videos, workers=workers, video_root=raw_videos)
    elif raw_videos is not None:
        videos = Path(raw_videos)
    if build_cache:
        found = find_videos(videos)
        if not found:
            raise DataError(f"no video files under {videos}: pass --video-root DIR")
        cache_dir = cache_dir_for(folder, **settings)
        build_frame_cache(found, cache_dir, **settings, workers=workers, on_bad_video=on_bad_video)
        report["cache"] = str(cache_dir)
        report["cached_videos"] = len(found)
    return report


def cache_on_first_use(
    videos: Path,
    cache_dir: Path,
    settings: dict[str, Any],
    workers: int,
    on_bad_video: str,
) -> bool:
    """Build the frame cache of every video under ``videos`` at ``cache_dir`` for ``settings``
    unless it exists (``data.frame_cache=auto``): every video is decoded once, in ``workers``
    processes with a progress bar, and every later epoch, evaluation and method of a
    comparison reads the cache. Returns whether the cache is there to read: False (and the run
    decodes as it goes) when there are no video files or the dataset folder is read-only."""
    if cache_dir.is_dir():
        return True
    found = find_videos(videos) if Path(videos).is_dir() else []
    parent = cache_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not found or not os.access(parent, os.W_OK):
        return False
    announce(f"cache: decoding {len(found)} videos once into {cache_dir}")
    build_frame_cache(found, cache_dir, **settings, workers=workers, on_bad_video=on_bad_video)
    return True
