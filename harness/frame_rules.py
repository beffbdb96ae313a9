"""Which frames of a video a reference loader reads (``data.sampling``), as frame indices.

A rule is a :class:`FrameRule` registered in ``harness.registry.FRAME_RULES``. The harness's
two, read from the reference loaders (METHODS.md §0.3):

* ``decord`` (EMCL-Net, DRL ``_get_rawvideo_dec``): every ``round(fps / rate)``-th frame, then
  ``max_frames`` of them spread uniformly (:func:`decord_indices`).
* ``cv2_grid`` (CLIP4Clip, X-CLIP, EMCL-QA, EMCL-Net on ActivityNet/DiDeMo: OpenCV
  ``RawVideoExtractorCV2``): the frame rate truncated to an integer; for every second of the
  video, ``rate`` frames at offsets ``0, fps // rate, ...`` within it; then ``slice_framepos``
  picks ``max_frames`` of them (0 the first, 1 the last, 2 spread uniformly)
  (:func:`cv2_grid_indices`).

A method whose reference has its own loader registers its rule beside the method (HMMC's:
``baselines/hmmc_frames.py``). Index functions are pure arithmetic on the stream's frame count
and rate (no decoding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.config import ConfigError
from harness.registry import FRAME_RULES

if TYPE_CHECKING:
    import torch


def decord_indices(
    num_frames: int,
    fps: float,
    framerate: float | None,
    max_frames: int,
    start: float | None = None,
    end: float | None = None,
) -> list[int]:
    """Frame indices the decord reader of EMCL-Net and DRL reads.

    Every ``round(fps / framerate)``-th frame of ``[start, end]`` seconds (whole video by
    default); if that is more than ``max_frames``, ``max_frames`` of them spread uniformly
    (``linspace`` floored). ``framerate`` None or <= 0 means every frame. May return [].
    """
    if max_frames < 1:
        raise ConfigError(f"data.max_frames must be at least 1, got {max_frames}")
    f_start = 0 if start is None else max(0, int(start * fps))
    f_end = num_frames - 1 if end is None else int(min(end * fps, num_frames - 1))
    stride = 1 if not framerate or framerate <= 0 else max(1, int(round(fps / framerate)))
    # A range computes its items: a header claiming 10^9 frames costs no memory here.
    positions = range(f_start, f_end + 1, stride)
    if len(positions) > max_frames:
        picks = np.linspace(0, len(positions) - 1, max_frames).astype(int)
        return [positions[i] for i in picks]
    return list(positions)


def cv2_grid_indices(
    num_frames: int,
    fps: float,
    framerate: float | None,
    max_frames: int,
    slice_framepos: int,
    start: float | None = None,
    end: float | None = None,
) -> list[int]:
    """Frame indices the OpenCV reader of CLIP4Clip reads, after its ``slice_framepos`` cut.

    ``fps`` is truncated to an integer (``int(CAP_PROP_FPS)``); the video lasts
    ``ceil(num_frames / fps)`` whole seconds. For each second ``s`` from ``int(start)`` (0) to
    ``min(int(end), duration)`` (duration) inclusive, the frames ``s * fps + offset`` for the
    first ``rate`` offsets of ``range(0, fps, fps // rate)`` (rate None or 0: every frame);
    reading stops at the first index past the last frame. If more than ``max_frames`` remain,
    ``slice_framepos`` 0 keeps the first, 1 the last, 2 ``linspace`` (floored) positions.
    Raises ConfigError for a rate above the integer fps (the reference asserts) or a
    fractional rate (the reference's is an integer flag). May return [].
    """
    int_fps = int(fps)
    if int_fps < 1:
        raise ConfigError(
            f"data.sampling=cv2_grid needs videos of at least 1 fps (the OpenCV reader truncates "
            f"the rate), one has {fps:g}: use data.sampling=decord"
        )
    rate = _integer_rate(framerate)
    if rate == 0:
        rate = int_fps
    elif rate > int_fps:
        raise ConfigError(
            f"data.video_framerate={rate} is above the video's {int_fps} fps (cv2_grid reads "
            "at most every frame): lower data.video_framerate"
        )
    interval = max(1, int_fps // rate)
    offsets = list(range(0, int_fps, interval))[:rate]
    duration = (num_frames + int_fps - 1) // int_fps
    first_sec = 0 if start is None else int(start)
    last_sec = duration if end is None else min(int(end), duration)
    # Ascending indices, so "stop at the first failed read" keeps exactly those below num_frames.
    read = [
        sec * int_fps + offset
        for sec in range(first_sec, last_sec + 1)
        for offset in offsets
        if sec * int_fps + offset < num_frames
    ]
    return slice_positions(read, max_frames, slice_framepos)


def _integer_rate(framerate: float | None) -> int:
    """``data.video_framerate`` as the integer the OpenCV reader takes (None or <= 0: 0)."""
    if not framerate or framerate <= 0:
        return 0
    if framerate != int(framerate):
        raise ConfigError(
            f"data.sampling=cv2_grid takes a whole data.video_framerate (frames per second), "
            f"got {framerate:g}"
        )
    return int(framerate)


def slice_positions(read: list[int], max_frames: int, slice_framepos: int) -> list[int]:
    """At most ``max_frames`` of ``read``: 0 the first, 1 the last, 2 spread by ``linspace``."""
    if len(read) <= max_frames:
        return read
    if slice_framepos == 0:
        return read[:max_frames]
    if slice_framepos == 1:
        return read[-max_frames:]
    picks = np.linspace(0, len(read) - 1, num=max_frames, dtype=int)
    return [read[i] for i in picks]


def _decord(
    num_frames: int,
    fps: float,
    framerate: float | None,
    max_frames: int,
    slice_framepos: int,
    start: float | None,
    end: float | None,
) -> list[int]:
    """`decord_indices` in a `FrameRule`'s signature (the decord reader does not slice)."""
    return decord_indices(num_frames, fps, framerate, max_frames, start, end)


# (num_frames, fps, framerate, max_frames, slice_framepos, start, end) -> frame indices
IndexRule = Callable[[int, float, float | None, int, int, float | None, float | None], list[int]]


@dataclass(frozen=True)
class FrameRule:
    """One ``data.sampling`` rule: ``indices(num_frames, fps, framerate, max_frames,
    slice_framepos, start, end)`` gives the frame indices to read (ascending, repeats
    allowed, may be empty), and ``after_decode`` (uint8 (T, H, W, 3) -> same shape), when set,
    is applied to the decoded frames before the resize (e.g. a JPEG round trip). Functions,
    not names, so a rule pickles to spawned workers."""

    indices: IndexRule
    after_decode: Callable[[torch.Tensor], torch.Tensor] | None = None


DECORD = FrameRule(_decord)
CV2_GRID = FrameRule(cv2_grid_indices)


def frame_rule(sampling: str | FrameRule) -> FrameRule:
    """The registered rule named ``sampling`` (a FrameRule is returned as is); an unknown name
    (``reference`` included: the config resolves it first) raises a one-line error."""
    if isinstance(sampling, FrameRule):
        return sampling
    return FRAME_RULES.get(sampling)
