"""Plain annotation types shared by dataset loaders and the torch datasets built on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VideoTextPairs:
    """Caption-video pairs of one split.

    ``captions[i]`` describes ``video_ids[caption_video[i]]``. A single-sentence test split
    (MSR-VTT 1k-A) has ``caption_video == list(range(num_videos))``; a training split with several
    captions per video repeats indices. ``groups`` (optional, one id per video) marks videos that
    belong together, e.g. the two videos of an order twin, so a sampler can batch them together.
    """

    video_ids: list[str]
    video_paths: list[Path]
    captions: list[str]
    caption_video: list[int]
    groups: list[int] | None = None

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

    @property
    def num_videos(self) -> int:
        """Number of distinct videos."""
        return len(self.video_ids)

    @property
    def num_captions(self) -> int:
        """Number of captions (= pairs)."""
        return len(self.captions)
