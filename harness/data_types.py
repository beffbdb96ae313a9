"""Plain annotation types shared by dataset loaders and the torch datasets built on them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VideoTextPairs:
    """Caption-video pairs of one split.

    ``captions[i]`` describes ``video_ids[caption_video[i]]``. A single-sentence test split
    (MSR-VTT 1k-A) has ``caption_video == list(range(num_videos))``; a training split with several
    captions per video repeats indices. ``groups`` (optional, one id per video) marks videos that
    belong together, e.g. the two videos of an order twin, so a sampler can batch them together.
    ``segments`` (optional, one entry per video) is the time window ``(start, end)`` in seconds to
    read from the video file, or None for the whole file; a window past the end of the file is
    clamped to it (ActivityNet ``(0, ceil(duration))``, DiDeMo ``(0, 31)``).
    """

    video_ids: list[str]
    video_paths: list[Path]
    captions: list[str]
    caption_video: list[int]
    groups: list[int] | None = None
    segments: list[tuple[float, float] | None] | None = None

    def __post_init__(self) -> None:
        if len(self.video_paths) != len(self.video_ids):
            raise ValueError(
                f"VideoTextPairs: {len(self.video_ids)} video ids but "
                f"{len(self.video_paths)} video paths"
            )
        if len(self.caption_video) != len(self.captions):
            raise ValueError(
                f"VideoTextPairs: {len(self.captions)} captions but "
                f"{len(self.caption_video)} caption_video indices"
            )
        bad = [i for i in self.caption_video if not 0 <= i < len(self.video_ids)]
        if bad:
            raise ValueError(
                f"VideoTextPairs: caption_video index {bad[0]} out of range for "
                f"{len(self.video_ids)} videos"
            )
        if self.groups is not None and len(self.groups) != len(self.video_ids):
            raise ValueError(
                f"VideoTextPairs: {len(self.groups)} group ids for {len(self.video_ids)} videos"
            )
        if self.segments is not None:
            if len(self.segments) != len(self.video_ids):
                raise ValueError(
                    f"VideoTextPairs: {len(self.segments)} segments for "
                    f"{len(self.video_ids)} videos"
                )
            for video, segment in enumerate(self.segments):
                if segment is not None and not _valid_segment(segment):
                    raise ValueError(
                        f"VideoTextPairs: segment {segment!r} of video {self.video_ids[video]!r} "
                        "must be None or (start, end) seconds with 0 <= start < end"
                    )

    @property
    def num_videos(self) -> int:
        """Number of distinct videos."""
        return len(self.video_ids)

    @property
    def num_captions(self) -> int:
        """Number of captions (= pairs)."""
        return len(self.captions)

    def keep_videos(self, keep: Sequence[int]) -> VideoTextPairs:
        """These pairs restricted to the videos ``keep`` (indices, in that order) and their
        captions (in caption order); groups and segments follow their videos."""
        new_index = {old: new for new, old in enumerate(keep)}
        kept = [c for c, v in enumerate(self.caption_video) if v in new_index]
        return VideoTextPairs(
            video_ids=[self.video_ids[i] for i in keep],
            video_paths=[self.video_paths[i] for i in keep],
            captions=[self.captions[c] for c in kept],
            caption_video=[new_index[self.caption_video[c]] for c in kept],
            groups=None if self.groups is None else [self.groups[i] for i in keep],
            segments=None if self.segments is None else [self.segments[i] for i in keep],
        )


def _valid_segment(segment: object) -> bool:
    if not isinstance(segment, tuple | list) or len(segment) != 2:
        return False
    start, end = segment
    numbers = all(isinstance(t, int | float) and not isinstance(t, bool) for t in segment)
    return numbers and math.isfinite(start) and math.isfinite(end) and 0 <= start < end
