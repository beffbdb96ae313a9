"""Video decoding (PyAV) and CLIP preprocessing in torch (no torchvision).

Which frames are read is one of the reference loaders' rules (`harness.frame_rules`, METHODS.md
§0.3); only what those frames need is decoded: from the keyframe before each run of sampled
frames up to the run's last one (`read_frames`, planned by `harness.decode_plan`), with a
sequential decode as the fallback where the packets cannot number the frames; only the sampled
frames are converted to RGB.
Preprocessing is ``Resize(short side, bicubic)`` -> ``CenterCrop`` -> ``/255`` -> CLIP
``Normalize``, split in a uint8 half (what a frame cache stores) and a float half; the resize
runs in torch or, bit-exact with the references, in PIL (`harness.pil_frames`).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from harness.config import check_choice
from harness.config_checks import RESIZE_MODES
from harness.decode_plan import DecodeRun, PacketTable, decode_runs, presentation_order
from harness.errors import UserError
from harness.frame_rules import FrameRule, frame_rule
from harness.pil_frames import crop_geometry, pil_resize_center_crop

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_DECODE_ERRORS = (av.FFmpegError, ValueError, EOFError)


class VideoReadError(UserError):
    """A video file that cannot be decoded; ``str()`` is one line naming the file and the fix."""

    def __init__(self, path: str | Path, reason: str | None = None) -> None:
        if reason is None:
            # Rebuilt by torch's DataLoader from a worker's formatted traceback (it passes one
            # string): our own line is the traceback's last one, after the class name.
            line = str(path).strip().splitlines()[-1]
            super().__init__(line.split(f"{type(self).__name__}: ", 1)[-1])
            self.path = self.reason = None
            return
        # Keep the constructor arguments as args so the exception pickles across processes.
        super().__init__(str(path), " ".join(reason.split()))
        self.path, self.reason = self.args

    def __str__(self) -> str:
        if self.path is None:
            return str(self.args[0])
        return (
            f"cannot read video {self.path}: {self.reason}. Check or replace the file, or rerun "
            "with `-o data.on_bad_video=skip` to skip it"
        )


@dataclass
class VideoInfo:
    """Stream metadata: average fps, frame count, duration in seconds, frame size in pixels."""

    fps: float
    num_frames: int
    duration: float
    width: int
    height: int


def _reason(exc: BaseException) -> str:
    # PyAV messages repeat the file name; strerror is the part worth showing.
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


@contextmanager
def _open_video(path: str | Path) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """The open container and its first video stream; PyAV errors in the body become
    VideoReadError, and the container is always closed."""
    _check_regular_file(Path(path))
    try:
        container = av.open(str(path))
    except (*_DECODE_ERRORS, OSError) as exc:
        raise VideoReadError(path, f"not a readable video file ({_reason(exc)})") from exc
    try:
        yield container, first_video_stream(path, container)
    except _DECODE_ERRORS as exc:
        raise VideoReadError(path, f"decoding failed ({_reason(exc)})") from exc
    finally:
        container.close()


def first_video_stream(path: str | Path, container: av.container.InputContainer) -> av.VideoStream:
    """The first video stream of ``container`` (opened from ``path``), with a codec to decode
    it; raises VideoReadError when there is none."""
    if not container.streams.video:
        raise VideoReadError(path, "the file has no video stream")
    stream = container.streams.video[0]
    # A file cut inside its index opens with a stream whose codec is unknown: PyAV then gives
    # it no codec context, and every attribute read through it fails.
    if stream.codec_context is None:
        raise VideoReadError(
            path, "its video stream names no known codec (a cut or damaged header?)"
        )
    return stream


def _check_regular_file(path: Path) -> None:
    """Raise VideoReadError unless ``path`` is a regular file; a FIFO or device is refused
    before opening, since reading it could block or never end."""
    if path.is_dir():
        raise VideoReadError(path, "is a directory, not a video file")
    if not path.exists():
        raise VideoReadError(path, "file not found")
    if not path.is_file():
        raise VideoReadError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "the file is empty (0 bytes)")


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, frame count, duration and size of the first video stream of ``path``.

    Uses the stream header; when it lacks a frame count, packets are counted (no decoding).
    A header is not trusted: a frame count over what the file can hold (`_frame_limit`) is a
    VideoReadError, as is a missing, unreadable or frameless file.
    """
    with _open_video(path) as (container, stream):
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise VideoReadError(path, "the video stream has no frame rate")
        fps = float(rate)
        header_duration = _header_duration(container, stream)
        num_frames = _frame_count(path, container, stream, fps, header_duration)
        duration = num_frames / fps if header_duration is None else header_duration
        width, height = stream.codec_context.width, stream.codec_context.height
    if num_frames == 0:
        raise VideoReadError(path, "the video stream has no frames")
    return VideoInfo(fps, num_frames, duration, width, height)


def _header_duration(
    container: av.container.InputContainer, stream: av.VideoStream
) -> float | None:
    """Seconds the stream lasts by its header, else by the container's; None when neither says."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _frame_count(
    path: str | Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    fps: float,
    duration: float | None,
) -> int:
    """The frame count of ``stream``: the header's when it gives one, else its packets counted.

    Counting demuxes each packet once without decoding, so it is bounded by the file's size.
    A header count over what the file can hold (`_frame_limit`) raises VideoReadError.
    """
    if stream.frames <= 0:
        return sum(1 for packet in container.demux(stream) if packet.size)
    limit, reason = _frame_limit(container.size, fps, duration)
    if stream.frames > limit:
        raise VideoReadError(
            path, f"its header claims {stream.frames} frames, more than {reason} (damaged header?)"
        )
    return stream.frames


def _frame_limit(size: int, fps: float, duration: float | None) -> tuple[int, str]:
    """The most frames a file of ``size`` bytes can hold, and why, as ``(limit, reason)``.

    Every frame takes at least one byte of the file. When the header gives a duration, the
    frames also fit in it at twice the average rate: containers derive that rate from the
    frame count and the duration, so a sound header is within 1x; 2x leaves room for rounding
    and edit lists, and for any count within it decoding stays bounded by the file's content.
    """
    limit, reason = size, f"its {size} bytes can hold"
    frames_in_time = 2 * duration * fps if duration is not None and duration > 0 else math.inf
    if math.isfinite(frames_in_time):
        by_time = math.ceil(frames_in_time) + 1
        if by_time < limit:
            limit, reason = by_time, f"{duration:.2f} s at {fps:g} fps can hold"
    return limit, reason


# Codecs whose packets are one frame each, so that a packet table numbers frames as a
# sequential decode does; other codecs are read sequentially.
SEEKABLE_CODECS = frozenset({"h264", "hevc"})


@dataclass
class DecodeStats:
    """What `read_frames` decoded: ``frames`` sent to the decoder (packets, one frame each,
    counting those a B-frame's decode needs after it) and ``seeks`` made, a fallback's included,
    and ``sequential`` True when it ended up decoding every frame up to the last wanted one."""

    frames: int = 0
    seeks: int = 0
    sequential: bool = False


class _NotSeekable(Exception):
    """The stream's packets do not number its frames reliably: read it sequentially."""


def _check_indices(indices: list[int]) -> None:
    """Raise ValueError unless ``indices`` is a non-empty list of indices >= 0 (a bug)."""
    if not indices or min(indices) < 0:
        raise ValueError(f"frame indices must be a non-empty list of indices >= 0, got {indices}")


def read_frames(
    path: str | Path, indices: list[int], stats: DecodeStats | None = None
) -> torch.Tensor:
    """Decode frames ``indices`` (presentation order, 0-based; any order, repeats allowed).

    Demuxes the packets (no decoding) until the wanted frames' numbers are final, then seeks to
    the keyframe before each run of wanted frames and decodes forward to the run's last wanted
    frame (`harness.decode_plan`); the frames equal `read_frames_sequential`'s, which it falls
    back to when the packets cannot number the frames (codecs outside SEEKABLE_CODECS, missing
    or repeated pts, timestamps in decode order, discarded packets, fewer packets than
    ``max(indices) + 1``) or a decode goes wrong.
    ``stats``, when given, is filled in. Returns uint8 (T, H, W, 3) RGB with T = len(indices).
    Raises VideoReadError when the file fails or has fewer frames than needed.
    """
    _check_indices(indices)
    stats = DecodeStats() if stats is None else stats
    try:
        with _open_video(path) as (container, stream):
            rgb = _read_seeking(container, stream, indices, stats)
    except _NotSeekable:
        return read_frames_sequential(path, indices, stats)
    return torch.from_numpy(np.stack([rgb[i] for i in indices]))


def read_frames_sequential(
    path: str | Path, indices: list[int], stats: DecodeStats | None = None
) -> torch.Tensor:
    """`read_frames` by decoding every frame in order up to the largest index (only requested
    frames are converted): the frame numbering `read_frames` keeps, for any codec and
    container. Returns uint8 (T, H, W, 3).
    """
    _check_indices(indices)
    stats = DecodeStats() if stats is None else stats
    stats.sequential = True
    wanted = set(indices)
    last = max(indices)
    rgb: dict[int, np.ndarray] = {}
    decoded = 0
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        for frame in _counted_decode(container, stream, stats):
            if decoded in wanted:
                rgb[decoded] = frame.to_ndarray(format="rgb24")
            decoded += 1
            if decoded > last:
                break
    if decoded <= last:
        raise VideoReadError(
            path, f"frame {last} was requested but only {decoded} frames decode (truncated file?)"
        )
    return torch.from_numpy(np.stack([rgb[i] for i in indices]))


def _counted_decode(
    container: av.container.InputContainer, stream: av.VideoStream, stats: DecodeStats
) -> Iterator[av.VideoFrame]:
    """``container.decode(stream)``, adding each packet sent to the decoder to ``stats``."""
    for packet in container.demux(stream):
        stats.frames += bool(packet.size)
        yield from packet.decode()


def _read_seeking(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    indices: list[int],
    stats: DecodeStats,
) -> dict[int, np.ndarray]:
    """Frame index -> RGB (H, W, 3) for every index, decoded run by run; raises _NotSeekable
    (never a decoding error) when the sequential reader must answer instead."""
    if stream.codec_context.name not in SEEKABLE_CODECS:
        raise _NotSeekable
    try:
        table = _packet_table(container, stream, max(indices))
        order = presentation_order(table)
        # A codec that reorders frames behind timestamps in decode order (AVI's): the
        # timestamps are not presentation times.
        reorders = stream.codec_context.has_b_frames
        if order is None or (reorders and all(p == i for i, p in enumerate(order))):
            raise _NotSeekable
        frame_of_pts = {table.pts[order[i]]: i for i in set(indices)}
        # One thread: runs are short, and frame threads cost more to restart after each drain
        # than they save (fewer clips/s measured at GOP 12 and 250); loader workers run in
        # parallel instead.
        stream.thread_type = "NONE"
        rgb: dict[int, np.ndarray] = {}
        for run in decode_runs(table, [order[i] for i in frame_of_pts.values()]):
            shown = -math.inf
            for frame in _decode_run(container, stream, table, run, stats):
                if frame.pts is None or frame.pts <= shown:
                    raise _NotSeekable  # frames come out in presentation order, or pts lie
                shown = frame.pts
                if frame.pts in frame_of_pts:
                    rgb[frame_of_pts[frame.pts]] = frame.to_ndarray(format="rgb24")
    except _DECODE_ERRORS as exc:
        raise _NotSeekable from exc
    if len(rgb) != len(frame_of_pts):
        raise _NotSeekable
    return rgb


def _packet_table(
    container: av.container.InputContainer, stream: av.VideoStream, last: int
) -> PacketTable:
    """The stream's packets (demuxed, not decoded) until frames 0..``last`` have final numbers;
    raises _NotSeekable for a packet without pts or marked discarded or corrupt, and when the
    file ends first (the sequential reader then reports how many frames it has)."""
    table = PacketTable()
    for packet in container.demux(stream):
        if not packet.size:
            continue
        if packet.pts is None or packet.is_discard or packet.is_corrupt:
            raise _NotSeekable
        table.add(packet.pts, packet.dts, packet.is_keyframe)
        if table.settled() > last:
            return table
    if len(table) <= last:
        raise _NotSeekable
    return table


def _decode_run(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    table: PacketTable,
    run: DecodeRun,
    stats: DecodeStats,
) -> Iterator[av.VideoFrame]:
    """Seek to the keyframe of ``run``, skip (demuxed, not decoded) what comes before it,
    decode packets ``run.first`` .. ``run.last`` and drain the decoder: the frames as they come
    out (in presentation order). Raises _NotSeekable when the packets met differ from the
    table."""
    # Seek by the keyframe's decode time: containers index keyframes by dts (mp4) or by pts
    # (never below dts), so the seek lands on it or an earlier keyframe; should a demuxer land
    # after it anyway, seek again to the stream's first packet.
    for position in (run.first, 0):
        target = table.dts[position] if table.dts[position] is not None else table.pts[position]
        container.seek(target, stream=stream, backward=True, any_frame=False)
        stats.seeks += 1
        packets = (packet for packet in container.demux(stream) if packet.size)
        first = next(packets, None)
        if first is not None and first.pts in table.pts[: run.first + 1]:
            start = table.pts.index(first.pts)
            yield from _decode_packets(
                itertools.chain([first], packets), start, stream, table, run, stats
            )
            return
    raise _NotSeekable


def _decode_packets(
    packets: Iterator[av.Packet],
    position: int,
    stream: av.VideoStream,
    table: PacketTable,
    run: DecodeRun,
    stats: DecodeStats,
) -> Iterator[av.VideoFrame]:
    """`_decode_run` after its seek, from ``packets`` whose first is at decode ``position``."""
    codec = stream.codec_context
    for packet in packets:
        if packet.pts != table.pts[position]:
            raise _NotSeekable
        if position >= run.first:
            stats.frames += 1
            yield from codec.decode(packet)
        if position == run.last:
            yield from codec.decode(None)
            codec.flush_buffers()
            return
        position += 1
    raise _NotSeekable  # the file ended before the run did


def resize_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3): bicubic resize of the short side to
    ``size`` (long side ``int(size * long / short)``, as torchvision), then a center crop.

    Interpolation runs on uint8 (antialiased, rounded and saturated per pass, like PIL's bicubic
    resize that the reference pipelines use); a frame whose short side is already ``size`` is
    not resampled, as torchvision skips it.
    """
    height, width = frames.shape[1:3]
    new_h, new_w, top, left = crop_geometry(height, width, size)
    if (new_h, new_w) != (height, width):
        # (T, H, W, 3) permuted to (T, 3, H, W) is channels-last: the fast uint8 kernel's layout.
        chw = F.interpolate(
            frames.permute(0, 3, 1, 2), size=(new_h, new_w), mode="bicubic", antialias=True
        )
        frames = chw.permute(0, 2, 3, 1)
    return frames[:, top : top + size, left : left + size].contiguous()


def normalize(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (T, S, S, 3) -> float32 (T, 3, S, S): scaled to [0, 1], then CLIP mean/std."""
    return pixels_from_uint8(frames, torch.ones(frames.shape[0]))


def preprocess_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (T, 3, size, size): `resize_center_crop`, `normalize`."""
    return normalize(resize_center_crop(frames, size))


def pixels_from_uint8(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Model input from padded uint8 clips, computed where they are (on the accelerator once a
    batch has moved): frames (..., F, S, S, 3) uint8 and mask (..., F) -> float32
    (..., F, 3, S, S), scaled to [0, 1] and CLIP-normalized where the mask is 1, zeros in padded
    slots. Frames travel as uint8 up to here: a quarter of float32's bytes."""
    channels_first = frames.movedim(-1, -3).contiguous()
    mean = torch.tensor(CLIP_MEAN, device=frames.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, device=frames.device).view(3, 1, 1)
    pixels = channels_first.float().div_(255.0).sub_(mean).div_(std)
    return torch.where(mask.bool()[..., None, None, None], pixels, 0.0)


def load_clip_uint8(
    path: str | Path,
    max_frames: int,
    size: int,
    framerate: float | None,
    start: float | None = None,
    end: float | None = None,
    sampling: str | FrameRule = "decord",
    resize: str = "torch",
    slice_framepos: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled, resized and cropped frames of ``path``: uint8 (max_frames, size, size, 3) with
    zero frames after the real ones, and mask (max_frames,) int64 (1 for real frames).

    ``sampling`` (a registered frame rule's name, or the rule) picks the frames from
    ``framerate`` (frames per second), ``start``/``end`` (seconds) and ``slice_framepos``
    (`harness.frame_rules`), and may transform them after decoding. ``resize``: ``torch``
    (`resize_center_crop`) or ``pil`` (`harness.pil_frames.pil_resize_center_crop`). Raises
    VideoReadError for unreadable files or an empty window.
    """
    rule = frame_rule(sampling)
    info = probe_video(path)
    indices = rule.indices(
        info.num_frames, info.fps, framerate, max_frames, slice_framepos, start, end
    )
    if not indices:
        raise VideoReadError(
            path, f"no frames between {start} s and {end} s (video lasts {info.duration:.2f} s)"
        )
    frames = read_frames(path, indices)
    if rule.after_decode is not None:
        frames = rule.after_decode(frames)
    check_choice("data.resize", resize, RESIZE_MODES)
    resized = pil_resize_center_crop if resize == "pil" else resize_center_crop
    frames = resized(frames, size)
    clip = torch.zeros(max_frames, size, size, 3, dtype=torch.uint8)
    clip[: len(indices)] = frames
    mask = torch.zeros(max_frames, dtype=torch.long)
    mask[: len(indices)] = 1
    return clip, mask


# No lookahead: x264's lookahead threads made the same frames encode differently between runs.
X264_OPTIONS = {"crf": "18", "preset": "fast", "rc-lookahead": "0"}


def write_test_video(
    path: str | Path,
    frames: torch.Tensor | np.ndarray,
    fps: int | Fraction,
    codec: str = "libx264",
    gop: int = 12,
) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) as an H.264 yuv420p file (crf 18, a keyframe at
    least every ``gop`` frames) at ``fps`` frames per second (a Fraction for NTSC rates such
    as 30000/1001).

    H and W must be even (yuv420p). The file appears atomically: it is written to a temporary
    name in the same folder and renamed; the container format follows the suffix of ``path``.
    """
    path = Path(path)
    array = np.ascontiguousarray(np.asarray(frames))
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
        raise ValueError(
            f"cannot write video {path}: frames must be uint8 (T, H, W, 3) with T >= 1, "
            f"got {array.dtype} {tuple(array.shape)}"
        )
    height, width = array.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(
            f"cannot write video {path}: yuv420p needs even height and width, got "
            f"{height}x{width}; crop or pad the frames"
        )
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(codec, rate=fps, options=X264_OPTIONS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.gop_size = gop
            for image in array:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
