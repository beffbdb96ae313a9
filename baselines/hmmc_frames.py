"""HMMC's frame protocol as a frame rule (``data.sampling=hmmc``, METHODS.md §0.3 (c)).

HMMC never reads videos while training or testing: ``tools/frame2lmdb.py`` stores 30 frames per
video, seeked with OpenCV at ``linspace(0, frame_count - 10, 30)`` and JPEG-encoded at OpenCV's
default quality 95; its test loaders read ``max_frames`` of those 30 at
``linspace(0, 30, max_frames, endpoint=False)`` (``[0, 2, 5, 7, ..., 27]`` for 12) and decode
them. The rule reads the same frames from the video and passes them through the same JPEG
encode and decode. HMMC's training loader (``--frame_sample random``) draws a random sorted
subset of the 30 instead; this rule serves training with the test picks.
"""

from __future__ import annotations

import numpy as np

from harness.config import ConfigError
from harness.frame_rules import FrameRule
from harness.pil_frames import jpeg_round_trip

STORED_FRAMES = 30  # frames per video in HMMC's lmdb (max_frames of frame2lmdb.py)
TAIL = 10  # frame2lmdb.py spreads its frames over 0 .. frame_count - 10


def hmmc_indices(
    num_frames: int,
    fps: float,
    framerate: float | None,
    max_frames: int,
    slice_framepos: int,
    start: float | None,
    end: float | None,
) -> list[int]:
    """The frames HMMC's test loader reads of a ``num_frames``-frame video: ``max_frames`` of
    the 30 stored, picked at ``linspace(0, 30, max_frames, endpoint=False)`` (repeats when
    ``max_frames`` > 30). ``fps``, ``framerate`` and ``slice_framepos`` play no part. Raises
    ConfigError for a time segment (HMMC reads whole videos) or a video of fewer than 10
    frames, whose stored positions would be negative."""
    if start is not None or end is not None:
        raise ConfigError(
            "data.sampling=hmmc reads whole videos (HMMC's loaders take no time segments): "
            "use decord or cv2_grid for this dataset"
        )
    if num_frames < TAIL:
        raise ConfigError(
            f"data.sampling=hmmc stores frames 0 .. n-{TAIL} of each video, but one has "
            f"{num_frames} frames: use data.sampling=decord for such short videos"
        )
    stored = np.linspace(0, num_frames - TAIL, num=STORED_FRAMES, dtype=int)
    picks = np.linspace(0, STORED_FRAMES, max_frames, endpoint=False, dtype=int)
    return [int(stored[i]) for i in picks]


HMMC_FRAMES = FrameRule(hmmc_indices, after_decode=jpeg_round_trip)
