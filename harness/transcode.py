"""Video compression for the ``--prepare`` step: 3 fps, short side 224, with PyAV.

Compression reproduces CLIP4Clip's ``preprocess/compress_video.py`` (METHODS.md §10.13: ffmpeg
``-r 3``, short side scaled to 224 with even dimensions, video stream only, libx264 defaults)
with PyAV. Which input frames survive the frame-rate change follows the ffmpeg command line's
constant-frame-rate sync (`CfrResampler`), so the compressed files hold the frames the published
pipelines saw. `parallel_map` runs such per-video work in a pool of fresh processes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import closing, contextmanager, nullcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
import torch
from rich.progress import MofNCompleteColumn, Progress

from harness.errors import UsageError
from harness.video import VideoReadError, first_video_stream

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")


class CfrResampler:
    """Which input frames ffmpeg's ``-r RATE`` output (constant frame rate) emits, and how often.

    The rule of the ffmpeg 4.x/5.x command line (checked against ffmpeg 5.1): each input frame
    has a position ``p`` in output frame units (its timestamp times RATE, relative to the
    container start, rounded to 1/65536 and nudged away from zero by 1/131072) and a length
    ``d = min(RATE / input fps, 1)``. With ``n`` frames written so far, drift ``e = p - n``:
    the frame is dropped when ``e + d < -1.1``; written once when ``-1.1 <= e + d <= 1.1``; and
    written ``round(e + d)`` times when ``e + d > 1.1`` (the first ``round(e - 0.6)`` of those
    repeat the previous frame when ``e > 1.1``). At the end, the previous frame is repeated the
    median of the last three such repeat counts. A frame is thus dropped only once the output
    runs more than 1.1 frames ahead of it: 30 fps in keeps input frames 0, 1, 8, 18, 28, ...
    """

    def __init__(self, out_rate: Fraction, in_rate: Fraction) -> None:
        self.out_rate, self.in_rate = out_rate, in_rate
        self.length = min(float(out_rate / in_rate), 1.0)
        self.extra_bits = min(max(29 - int(math.log2(out_rate.numerator)), 0), 16)
        self.written = 0
        self.pushed = False
        self.repeat_history = [0, 0, 0]

    def position(self, seconds: Fraction) -> float:
        """Output-frame position of a frame at ``seconds`` after the container start."""
        scale = 1 << self.extra_bits
        position = _round_half_away(seconds * self.out_rate * scale) / scale
        return position + (1.0 if position > 0 else -1.0) / (1 << 17)

    def push(self, seconds: Fraction) -> tuple[int, int]:
        """Counts ``(copies of the previous frame, copies of this frame)`` to write now."""
        drift = self.position(seconds) - self.written
        ahead = drift + self.length
        if drift < 0 < ahead:
            drift = 0.0
        count, previous = 1, 0
        if ahead < -1.1:
            count = 0
        elif ahead > 1.1:
            count = round(ahead)
            if drift > 1.1:
                previous = round(drift - 0.6)
        self.repeat_history = [previous, *self.repeat_history[:2]]
        # The first frame has no predecessor: ffmpeg writes it in the repeats' place.
        previous = min(previous, count) if self.pushed else 0
        self.pushed = True
        self.written += count
        return previous, count - previous

    def flush(self) -> int:
        """Copies of the last frame to write at the end of the input."""
        count = sorted(self.repeat_history)[1]
        self.written += count
        return count


def _round_half_away(value: Fraction) -> int:
    """Nearest integer, halves away from zero (libavutil's default rescale rounding)."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side ``short_side`` and the long side scaled by the
    aspect ratio, truncated to an even number, as compress_video.py's scale expression does for
    landscape frames. For portrait frames that expression sets the height to
    ``short_side * width / height`` (squashing them); here they get the mirrored landscape rule.
    """
    if width > height:
        return math.trunc(short_side * (width / height) / 2) * 2, short_side
    return short_side, math.trunc(short_side * (height / width) / 2) * 2


def compressed_path(video: Path, video_root: Path, out_root: Path) -> Path:
    """``out_root / <video relative to video_root>`` with the suffix ``.mp4``."""
    return out_root / video.relative_to(video_root).with_suffix(".mp4")


def partial_path(final: Path) -> Path:
    """The temporary name ``final`` is written under before the rename: hidden, with a suffix
    no video search matches; a leftover one is overwritten by the next attempt."""
    return final.with_name(f".{final.name}.partial")


def compress_video(src: Path, dst: Path, fps: float = 3, short_side: int = 224) -> int:
    """Re-encode ``src`` as ``dst``: H.264 (libx264 defaults: crf 23, preset medium) at ``fps``
    frames per second, short side ``short_side`` (`scaled_size`), video stream only. The pixel
    format is always yuv420p (ffmpeg would keep a 4:4:4 or full-range input's format).

    Frames are kept or repeated by `CfrResampler` (ffmpeg ``-r``) and scaled with bicubic
    swscale (ffmpeg's ``scale`` filter). ``dst`` appears atomically (temp file, then rename).
    Returns the number of frames written. Raises VideoReadError when ``src`` cannot be decoded.
    """
    if short_side < 2 or short_side % 2:
        raise ValueError(f"short_side must be even and positive (yuv420p), got {short_side}")
    out_rate = Fraction(fps).limit_denominator(1001 * 1000)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(dst)
    try:
        written = _transcode(src, tmp, out_rate, short_side)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def _transcode(src: Path, dst: Path, out_rate: Fraction, short_side: int) -> int:
    try:
        source = av.open(str(src))
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoReadError(src, f"not a readable video file ({exc})") from exc
    with source, av.open(str(dst), mode="w", format="mp4") as sink:
        stream = first_video_stream(src, source)
        stream.thread_type = "AUTO"
        in_rate = stream.guessed_rate or stream.average_rate
        if not in_rate:
            raise VideoReadError(src, "the video stream has no frame rate")
        width, height = scaled_size(stream.width, stream.height, short_side)
        out = sink.add_stream("libx264", rate=out_rate)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        resampler = CfrResampler(out_rate, Fraction(in_rate))
        start = Fraction(source.start_time or 0, av.time_base)
        scale = _bicubic_scaler(stream, width, height)
        written = 0
        try:
            for frame in _resampled(source.decode(stream), resampler, stream.time_base, start):
                image = scale(frame)
                image.pts, image.time_base = written, 1 / out_rate
                sink.mux(out.encode(image))
                written += 1
        except (av.FFmpegError, ValueError, EOFError) as exc:
            raise VideoReadError(src, f"decoding failed ({exc})") from exc
        if not written:
            raise VideoReadError(src, "the video stream has no frames")
        sink.mux(out.encode(None))
    return written


def _bicubic_scaler(
    stream: av.VideoStream, width: int, height: int
) -> Callable[[av.VideoFrame], av.VideoFrame]:
    """A function scaling frames of ``stream`` to yuv420p ``width`` x ``height``.

    It runs libavfilter's ``scale`` filter, as the ffmpeg command line does (bit-identical to
    ffmpeg 5.1's output); ``VideoFrame.reformat`` takes another swscale path and differs.
    """
    graph = av.filter.Graph()
    chain = [
        graph.add_buffer(template=stream),
        graph.add("scale", f"{width}:{height}:flags=bicubic"),
        graph.add("format", "yuv420p"),
        graph.add("buffersink"),
    ]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        upstream.link_to(downstream)
    graph.configure()

    def scale(frame: av.VideoFrame) -> av.VideoFrame:
        graph.push(frame)
        return graph.pull()

    return scale


def _resampled(
    frames: Iterable[av.VideoFrame],
    resampler: CfrResampler,
    time_base: Fraction,
    start: Fraction,
) -> Iterator[av.VideoFrame]:
    """The decoded ``frames`` in output order, dropped or repeated by ``resampler``."""
    previous = None
    seconds = -start
    for frame in frames:
        # A frame without a timestamp follows its predecessor by one input frame.
        if frame.pts is not None:
            seconds = Fraction(frame.pts) * time_base - start
        repeats, copies = resampler.push(seconds)
        yield from [previous] * repeats
        yield from [frame] * copies
        previous = frame
        seconds += 1 / resampler.in_rate
    if previous is not None:
        yield from [previous] * resampler.flush()


def find_videos(root: Path) -> list[Path]:
    """Video files under ``root`` (recursively, by suffix), sorted; hidden files are skipped."""
    return sorted(
        path
        for path in Path(root).rglob("*")
        if path.suffix.lower() in VIDEO_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def compress_videos(
    video_paths: list[Path],
    out_root: Path,
    fps: float = 3,
    short_side: int = 224,
    workers: int = 2,
    progress: bool = True,
    video_root: Path | None = None,
) -> dict[str, Any]:
    """Compress every video with `compress_video` into ``out_root``, resumably.

    Each output is ``out_root / <path relative to video_root>`` with suffix ``.mp4``
    (``video_root`` defaults to the common folder of the inputs). An output that already exists
    (non-empty) is skipped; it can only be whole, since outputs appear by rename. ``workers``
    processes run in parallel (1: in this process). A file that fails is listed, not fatal.
    Returns ``{"done": int, "skipped_existing": int, "failed": [{"path", "error"}, ...]}``.
    """
    paths = [Path(p) for p in video_paths]
    report: dict[str, Any] = {"done": 0, "skipped_existing": 0, "failed": []}
    if not paths:
        return report
    root = Path(video_root) if video_root else Path(os.path.commonpath([p.parent for p in paths]))
    todo, claimed = [], set()
    for src in paths:
        dst = compressed_path(src, root, Path(out_root))
        if dst.resolve() == src.resolve():
            raise UsageError(f"cannot compress {src} onto itself: choose another output folder")
        if dst in claimed:
            report["failed"].append(
                {"path": str(src), "error": f"another input also maps to {dst}"}
            )
        elif dst.is_file() and dst.stat().st_size > 0:
            report["skipped_existing"] += 1
        else:
            todo.append((src, dst, fps, short_side))
        claimed.add(dst)
    with closing(parallel_map(_compress_task, todo, workers, progress, "compress")) as errors:
        for (src, *_), error in zip(todo, errors, strict=True):
            if error is None:
                report["done"] += 1
            else:
                report["failed"].append({"path": str(src), "error": error})
    return report


def _compress_task(task: tuple[Path, Path, float, int]) -> str | None:
    """Worker: compress one file; None on success, else the one-line reason."""
    src, dst, fps, short_side = task
    try:
        compress_video(src, dst, fps, short_side)
    except VideoReadError as exc:
        return exc.reason
    except (av.FFmpegError, OSError) as exc:
        return str(exc)
    return None


def parallel_map(
    fn: Callable[[Any], Any], tasks: list, workers: int, progress: bool, label: str
) -> Iterator[Any]:
    """``fn`` over ``tasks``, results in task order; in ``workers`` fresh processes when more
    than one (``fn`` and the tasks must pickle), with a progress bar labelled ``label`` when
    ``progress``. Closing the generator early cancels the tasks not started."""
    with (
        Progress(*Progress.get_default_columns(), MofNCompleteColumn())
        if progress
        else nullcontext() as bar,
        _pool(workers) as pool,
    ):
        task_id = bar.add_task(label, total=len(tasks)) if bar else None
        for result in pool.map(fn, tasks) if pool else map(fn, tasks):
            if bar:
                bar.advance(task_id)
            yield result


@contextmanager
def _pool(workers: int) -> Iterator[Executor | None]:
    """A pool of ``workers`` spawned processes, or None for one worker (run in this process)."""
    if workers <= 1:
        yield None
        return
    # spawn: PyAV and torch threads in this process make fork unsafe. One torch thread per
    # worker: the workers already fill the cores, and oversubscribed torch ops stall.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=torch.set_num_threads,
        initargs=(1,),
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
