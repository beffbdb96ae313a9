"""The ``--prepare`` step: video compression (3 fps, short side 224) and the Arrow frame cache.

Compression reproduces CLIP4Clip's ``preprocess/compress_video.py`` (METHODS.md §10.13: ffmpeg
``-r 3``, short side scaled to 224 with even dimensions, video stream only, libx264 defaults)
with PyAV. Which input frames survive the frame-rate change follows the ffmpeg command line's
constant-frame-rate sync (`CfrResampler`), so the compressed files hold the frames the published
pipelines saw.

The frame cache stores what `harness.video.load_clip_uint8` returns for one run's sampling
settings (max_frames, image_size, framerate): one clip per row of a Hugging Face ``datasets``
Arrow file, read memory-mapped, so a cached clip costs a copy instead of a decode.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import closing, contextmanager, nullcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
import numpy as np
import torch
from rich.progress import MofNCompleteColumn, Progress

from harness.video import VideoReadError, load_clip_uint8

CACHE_FORMAT = 1
CACHE_FILE = "frames.arrow"
META_FILE = "meta.json"
ON_BAD_VIDEO = ("error", "skip")
VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")
# Rows per Arrow record batch: a 12 x 224 x 224 clip is 1.8 MB, so this bounds writer memory.
WRITER_BATCH_ROWS = 16


class FrameCacheError(ValueError):
    """A frame cache that cannot serve this run (missing, other settings, stale); one line."""


# ---------------------------------------------------------------------------------------------
# Compression


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
        if not source.streams.video:
            raise VideoReadError(src, "the file has no video stream")
        stream = source.streams.video[0]
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
            raise ValueError(f"cannot compress {src} onto itself: choose another output folder")
        if dst in claimed:
            report["failed"].append(
                {"path": str(src), "error": f"another input also maps to {dst}"}
            )
        elif dst.is_file() and dst.stat().st_size > 0:
            report["skipped_existing"] += 1
        else:
            todo.append((src, dst, fps, short_side))
        claimed.add(dst)
    with closing(_map(_compress_task, todo, workers, progress, "compress")) as errors:
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


def _map(
    fn: Callable[[Any], Any], tasks: list, workers: int, progress: bool, label: str
) -> Iterator[Any]:
    """``fn`` over ``tasks``, results in task order; in ``workers`` fresh processes when more
    than one, with a progress bar when ``progress``. Closing the generator early cancels the
    tasks not started."""
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


# ---------------------------------------------------------------------------------------------
# Frame cache


def sampling_settings(max_frames: int, image_size: int, framerate: float | None) -> dict:
    """The settings a cache is valid for, normalised: framerate None (or <= 0) means every
    frame, as in `harness.video.sample_frame_indices`."""
    rate = float(framerate) if framerate and framerate > 0 else None
    return {"max_frames": int(max_frames), "image_size": int(image_size), "framerate": rate}


def cache_dir_for(
    data_root: Path, max_frames: int, image_size: int, framerate: float | None
) -> Path:
    """Where the frame cache of the videos under ``data_root`` with these sampling settings
    lives: ``data_root/frame_cache/frames{F}_size{S}_rate{R}`` (R ``all`` for every frame)."""
    settings = sampling_settings(max_frames, image_size, framerate)
    rate = "all" if settings["framerate"] is None else format(settings["framerate"], "g")
    name = f"frames{settings['max_frames']}_size{settings['image_size']}_rate{rate}"
    return Path(data_root) / "frame_cache" / name


def build_frame_cache(
    video_paths: list[Path],
    cache_dir: Path,
    max_frames: int,
    image_size: int,
    framerate: float | None,
    workers: int = 2,
    on_bad_video: str = "error",
    progress: bool = True,
) -> Path:
    """Decode every video with `load_clip_uint8` and store the clips in ``cache_dir``.

    One row per video: ``video_id`` (file stem; stems must be unique), ``source_bytes`` (file
    size, to detect a changed file), ``num_frames`` (real frames; the mask is that many ones
    then zeros) and ``frames`` (the real frames, uint8 (num_frames, S, S, 3) as raw bytes;
    padding is restored on read). ``meta.json`` holds the settings and the skipped files.
    The folder appears atomically (built beside it, then renamed); an existing cache with these
    settings that already holds every video (same sizes) is kept as is. ``on_bad_video``:
    ``"error"`` raises VideoReadError at the first unreadable file, ``"skip"`` leaves it out
    and lists it in meta.json. Returns ``cache_dir``.
    """
    if on_bad_video not in ON_BAD_VIDEO:
        raise ValueError(f"on_bad_video must be one of {ON_BAD_VIDEO}, got {on_bad_video!r}")
    cache_dir = Path(cache_dir)
    settings = sampling_settings(max_frames, image_size, framerate)
    paths = [Path(p) for p in video_paths]
    sources = _source_sizes(paths)
    if _covers(cache_dir, settings, sources):
        return cache_dir
    tmp = cache_dir.with_name(f".{cache_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        skipped = _write_rows(tmp / CACHE_FILE, paths, settings, workers, on_bad_video, progress)
        meta = {"format": CACHE_FORMAT, **settings, "sources": sources, "skipped": skipped}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        _swap_in(tmp, cache_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache_dir


def _source_sizes(paths: list[Path]) -> dict[str, int]:
    """``{video id: file size}``; raises ValueError when two files share an id (stem)."""
    sizes: dict[str, int] = {}
    first: dict[str, Path] = {}
    for path in paths:
        if path.stem in first:
            raise ValueError(
                f"videos {first[path.stem]} and {path} share the id {path.stem!r}: a frame "
                "cache keys videos by file name, so rename one of them"
            )
        first[path.stem] = path
        sizes[path.stem] = path.stat().st_size if path.is_file() else -1
    return sizes


def _covers(cache_dir: Path, settings: dict, sources: dict[str, int]) -> bool:
    """Whether ``cache_dir`` is a finished cache with ``settings`` built from these files."""
    try:
        meta = json.loads((cache_dir / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    cached = meta.get("sources", {})
    same = meta.get("format") == CACHE_FORMAT and all(meta.get(k) == v for k, v in settings.items())
    return same and all(cached.get(k) == v for k, v in sources.items())


def _write_rows(
    path: Path, videos: list[Path], settings: dict, workers: int, on_bad: str, progress: bool
) -> list[dict[str, str]]:
    """Write one row per readable video to the Arrow file ``path``; returns the skipped ones."""
    # Imported here: datasets takes 0.7 s to load, and compression workers never need it.
    from datasets import Features, Value
    from datasets.arrow_writer import ArrowWriter

    features = Features(
        {
            "video_id": Value("string"),
            "source_bytes": Value("int64"),
            "num_frames": Value("int32"),
            "frames": Value("large_binary"),
        }
    )
    tasks = [(video, settings) for video in videos]
    skipped = []
    with (
        ArrowWriter(features=features, path=str(path), writer_batch_size=WRITER_BATCH_ROWS) as out,
        closing(_map(_clip_row, tasks, workers, progress, "cache")) as rows,
    ):
        for video, row in zip(videos, rows, strict=True):
            if isinstance(row, VideoReadError):
                if on_bad == "error":
                    raise row
                skipped.append({"path": str(video), "error": str(row)})
            else:
                out.write(row)
        out.finalize()
    return skipped


def _clip_row(task: tuple[Path, dict]) -> dict[str, Any] | VideoReadError:
    """Worker: the cache row of one video, or the VideoReadError that decoding raised."""
    video, settings = task
    try:
        frames, mask = load_clip_uint8(
            video, settings["max_frames"], settings["image_size"], settings["framerate"]
        )
    except VideoReadError as exc:
        return exc
    count = int(mask.sum())
    return {
        "video_id": video.stem,
        "source_bytes": video.stat().st_size,
        "num_frames": count,
        "frames": frames[:count].numpy().tobytes(),
    }


def _swap_in(new: Path, final: Path) -> None:
    """Put the finished folder ``new`` at ``final``, replacing an older one."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


class FrameCache:
    """Read access to a frame cache written by `build_frame_cache` (memory-mapped Arrow).

    ``get(key)`` returns what `load_clip_uint8` returned for that video when the cache was
    built: ``(frames uint8 (F, S, S, 3), mask int64 (F,))``, or None for a video not cached.
    Pickles by path, so DataLoader workers reopen it.
    """

    def __init__(self, cache_dir: Path, meta: dict) -> None:
        from datasets import Dataset  # see _write_rows

        self.cache_dir = Path(cache_dir)
        self.settings = sampling_settings(meta["max_frames"], meta["image_size"], meta["framerate"])
        table = Dataset.from_file(str(self.cache_dir / CACHE_FILE)).data.table
        self._chunks = table.column("frames").chunks
        self._counts = table.column("num_frames").to_pylist()
        self._sizes = table.column("source_bytes").to_pylist()
        self._rows = {key: row for row, key in enumerate(table.column("video_id").to_pylist())}
        # (chunk, index in chunk) of every row, for O(1) random access.
        self._where = [
            (chunk, i) for chunk, part in enumerate(self._chunks) for i in range(len(part))
        ]

    @classmethod
    def open(
        cls, cache_dir: Path, max_frames: int, image_size: int, framerate: float | None
    ) -> FrameCache:
        """Open the cache in ``cache_dir`` for a run with these sampling settings.

        Raises FrameCacheError (one line) when there is no finished cache there, or when it was
        built with other settings or by another version of this code.
        """
        meta_path = Path(cache_dir) / META_FILE
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise FrameCacheError(
                f"no usable frame cache in {cache_dir} ({type(exc).__name__}): build it with "
                "`python run.py --prepare`"
            ) from exc
        if meta.get("format") != CACHE_FORMAT:
            raise FrameCacheError(
                f"frame cache {cache_dir} has format {meta.get('format')}, this code reads "
                f"{CACHE_FORMAT}: rebuild it with `python run.py --prepare`"
            )
        cache = cls(cache_dir, meta)
        cache.check(max_frames, image_size, framerate)
        return cache

    def check(self, max_frames: int, image_size: int, framerate: float | None) -> None:
        """Raise FrameCacheError unless the cache was built with these sampling settings."""
        wanted = sampling_settings(max_frames, image_size, framerate)
        if wanted != self.settings:
            raise FrameCacheError(
                f"frame cache {self.cache_dir} was built with {_describe(self.settings)} but this "
                f"run samples {_describe(wanted)}: rebuild it with `python run.py --prepare`"
            )

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str | Path) -> bool:
        return _video_id(key) in self._rows

    def __reduce__(self) -> tuple:
        settings = self.settings
        return (
            FrameCache.open,
            (self.cache_dir, settings["max_frames"], settings["image_size"], settings["framerate"]),
        )

    def get(self, key: str | Path) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The cached clip of video ``key`` (a Path, matched by stem, or a video id string):
        frames uint8 (F, S, S, 3) zero-padded after the real ones, mask int64 (F,); None when
        the cache does not hold it. Raises FrameCacheError when ``key`` is an existing file
        whose size differs from the one cached (the video changed since the cache was built).
        """
        row = self._rows.get(_video_id(key))
        if row is None:
            return None
        if isinstance(key, Path) and key.is_file() and key.stat().st_size != self._sizes[row]:
            raise FrameCacheError(
                f"frame cache {self.cache_dir} was built from another version of {key} "
                f"({self._sizes[row]} bytes, now {key.stat().st_size}): rebuild it with "
                "`python run.py --prepare`"
            )
        size, count = self.settings["image_size"], self._counts[row]
        chunk, index = self._where[row]
        data = self._chunks[chunk][index].as_buffer()
        # numpy, not torch: torch fills large tensors on its thread pool, which stalls for
        # milliseconds when the cores are oversubscribed; this path stays one plain copy.
        frames = np.zeros((self.settings["max_frames"], size, size, 3), np.uint8)
        frames[:count] = np.frombuffer(data, np.uint8).reshape(count, size, size, 3)
        mask = np.zeros(self.settings["max_frames"], np.int64)
        mask[:count] = 1
        return torch.from_numpy(frames), torch.from_numpy(mask)


def _video_id(key: str | Path) -> str:
    return key.stem if isinstance(key, Path) else key


def _describe(settings: dict) -> str:
    rate = settings["framerate"] or "all"
    return (
        f"max_frames={settings['max_frames']}, image_size={settings['image_size']}, "
        f"framerate={rate}"
    )


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
            raise FileNotFoundError(f"no video files under {raw_videos}: check --video-root")
        report["compress"] = compress_videos(found, videos, workers=workers, video_root=raw_videos)
    elif raw_videos is not None:
        videos = Path(raw_videos)
    if build_cache:
        found = find_videos(videos)
        if not found:
            raise FileNotFoundError(f"no video files under {videos}: pass --video-root DIR")
        cache_dir = cache_dir_for(folder, **settings)
        build_frame_cache(found, cache_dir, **settings, workers=workers, on_bad_video=on_bad_video)
        report["cache"] = str(cache_dir)
        report["cached_videos"] = len(found)
    return report
