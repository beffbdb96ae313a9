"""The Arrow frame cache of the ``--prepare`` step: sampled clips stored once, read memory-mapped.

The frame cache stores what `harness.video.load_clip_uint8` returns for one run's sampling
settings (max_frames, image_size, framerate and the frame protocol: sampling rule, resize,
slice_framepos): one clip per row of a Hugging Face ``datasets``
Arrow file, read memory-mapped, so a cached clip costs a copy instead of a decode.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.config import check_choice
from harness.data import BAD_VIDEO_POLICIES
from harness.errors import DataError, UserError
from harness.frame_rules import FrameRule, frame_rule
from harness.transcode import parallel_map
from harness.video import VideoReadError, load_clip_uint8

CACHE_FORMAT = 1
CACHE_FILE = "frames.arrow"
META_FILE = "meta.json"
# Rows per Arrow record batch: a 12 x 224 x 224 clip is 1.8 MB, so this bounds writer memory.
WRITER_BATCH_ROWS = 16


class FrameCacheError(UserError, ValueError):
    """A frame cache that cannot serve this run (missing, other settings, stale); one line."""


def sampling_settings(
    max_frames: int,
    image_size: int,
    framerate: float | None,
    sampling: str = "decord",
    resize: str = "torch",
    slice_framepos: int | None = 2,
) -> dict:
    """The settings a cache is valid for, normalised so that settings giving the same clips
    compare equal: framerate None (or <= 0) means every frame, and only cv2_grid slices
    (``slice_framepos`` None for the other rules)."""
    rate = float(framerate) if framerate and framerate > 0 else None
    return {
        "max_frames": int(max_frames),
        "image_size": int(image_size),
        "framerate": rate,
        "sampling": sampling,
        "resize": resize,
        "slice_framepos": int(slice_framepos) if sampling == "cv2_grid" else None,
    }


def config_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The sampling settings of a run's ``data`` config section, as keyword arguments of
    :func:`cache_dir_for`, :func:`build_frame_cache` and `harness.data.ClipSource`."""
    return {
        "max_frames": data["max_frames"],
        "image_size": data["image_size"],
        "framerate": data["video_framerate"] or None,
        "sampling": data["sampling"],
        "resize": data["resize"],
        "slice_framepos": data["slice_framepos"],
    }


def _meta_settings(meta: dict) -> dict:
    """The settings a cache's meta.json records; a cache written before the frame protocols
    existed used today's default rule (decord, torch resize)."""
    return sampling_settings(
        meta["max_frames"],
        meta["image_size"],
        meta["framerate"],
        meta.get("sampling", "decord"),
        meta.get("resize", "torch"),
        meta.get("slice_framepos"),
    )


def cache_dir_for(
    data_root: Path, max_frames: int, image_size: int, framerate: float | None, **protocol: Any
) -> Path:
    """Where the frame cache of the videos under ``data_root`` with these sampling settings
    lives: ``data_root/frame_cache/frames{F}_size{S}_rate{R}`` (R ``all`` for every frame) for
    the default rule, with ``_{sampling}[_slice{P}]`` and ``_{resize}`` added for the others
    (``protocol``: ``sampling``, ``resize``, ``slice_framepos``)."""
    settings = sampling_settings(max_frames, image_size, framerate, **protocol)
    rate = "all" if settings["framerate"] is None else format(settings["framerate"], "g")
    name = f"frames{settings['max_frames']}_size{settings['image_size']}_rate{rate}"
    if settings["sampling"] != "decord":
        name += f"_{settings['sampling']}"
    if settings["slice_framepos"] is not None:
        name += f"_slice{settings['slice_framepos']}"
    if settings["resize"] != "torch":
        name += f"_{settings['resize']}"
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
    **protocol: Any,
) -> Path:
    """Decode every video with `load_clip_uint8` and store the clips in ``cache_dir``
    (``protocol``: the frame rule's ``sampling``, ``resize``, ``slice_framepos``).

    One row per video: ``video_id`` (file stem; stems must be unique), ``source_bytes`` (file
    size, to detect a changed file), ``num_frames`` (real frames; the mask is that many ones
    then zeros) and ``frames`` (the real frames, uint8 (num_frames, S, S, 3) as raw bytes;
    padding is restored on read). ``meta.json`` holds the settings and the skipped files.
    The folder appears atomically (built beside it, then renamed); an existing cache with these
    settings that already holds every video (same sizes) is kept as is. ``on_bad_video``:
    ``"error"`` raises VideoReadError at the first unreadable file, ``"skip"`` leaves it out
    and lists it in meta.json. Returns ``cache_dir``.
    """
    check_choice("data.on_bad_video", on_bad_video, BAD_VIDEO_POLICIES)
    cache_dir = Path(cache_dir)
    settings = sampling_settings(max_frames, image_size, framerate, **protocol)
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
    """``{video id: file size}``; raises DataError when two files share an id (stem)."""
    sizes: dict[str, int] = {}
    first: dict[str, Path] = {}
    for path in paths:
        if path.stem in first:
            raise DataError(
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
    if meta.get("format") != CACHE_FORMAT:
        return False
    try:
        if _meta_settings(meta) != settings:
            return False
    except KeyError:  # a meta.json without its settings is not a finished cache
        return False
    cached = meta.get("sources", {})
    return all(cached.get(k) == v for k, v in sources.items())


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
    # The rule itself, not its name: spawned workers have not imported the method packages.
    rule = frame_rule(settings["sampling"])
    tasks = [(video, settings, rule) for video in videos]
    skipped = []
    with (
        ArrowWriter(features=features, path=str(path), writer_batch_size=WRITER_BATCH_ROWS) as out,
        closing(parallel_map(_clip_row, tasks, workers, progress, "cache")) as rows,
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


def _clip_row(task: tuple[Path, dict, FrameRule]) -> dict[str, Any] | VideoReadError:
    """Worker: the cache row of one video, or the VideoReadError that decoding raised."""
    video, settings, rule = task
    try:
        frames, mask = load_clip_uint8(
            video,
            settings["max_frames"],
            settings["image_size"],
            settings["framerate"],
            sampling=rule,
            resize=settings["resize"],
            slice_framepos=settings["slice_framepos"],
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
        self.settings = _meta_settings(meta)
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
        cls,
        cache_dir: Path,
        max_frames: int,
        image_size: int,
        framerate: float | None,
        **protocol: Any,
    ) -> FrameCache:
        """Open the cache in ``cache_dir`` for a run with these sampling settings
        (``protocol``: ``sampling``, ``resize``, ``slice_framepos``).

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
        cache.check(max_frames, image_size, framerate, **protocol)
        return cache

    def check(
        self, max_frames: int, image_size: int, framerate: float | None, **protocol: Any
    ) -> None:
        """Raise FrameCacheError unless the cache was built with these sampling settings."""
        wanted = sampling_settings(max_frames, image_size, framerate, **protocol)
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
        return (_reopen, (self.cache_dir, self.settings))

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


def _reopen(cache_dir: Path, settings: dict) -> FrameCache:
    """Unpickle a FrameCache: open ``cache_dir`` again, checked against its ``settings``."""
    settings = dict(settings)
    sizes = (settings.pop("max_frames"), settings.pop("image_size"), settings.pop("framerate"))
    return FrameCache.open(cache_dir, *sizes, **settings)


def _video_id(key: str | Path) -> str:
    return key.stem if isinstance(key, Path) else key


def _describe(settings: dict) -> str:
    rate = settings["framerate"] or "all"
    text = (
        f"max_frames={settings['max_frames']}, image_size={settings['image_size']}, "
        f"framerate={rate}, sampling={settings['sampling']}, resize={settings['resize']}"
    )
    if settings["slice_framepos"] is not None:
        text += f", slice_framepos={settings['slice_framepos']}"
    return text
