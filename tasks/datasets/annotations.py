"""Shared pieces of the file-backed dataset entries: reading annotation files with one-line
errors, finding video files, building VideoTextPairs, and the config glue (roots, notes)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from harness.config import ConfigError
from harness.data_types import VideoTextPairs
from harness.errors import DataError

SPLITS = ("train", "val", "test")


def readme_hint(title: str) -> str:
    """The pointer every error of dataset ``title`` ends with."""
    return f'see README section "Datasets: {title}"'


def require_file(path: Path, title: str, source: str) -> Path:
    """``path`` if it is a file, else a one-line DataError naming it, where the file ``source``
    comes from and the README section of dataset ``title``."""
    if not Path(path).is_file():
        raise DataError(
            f"{title} annotation file not found: {path} ({source}; {readme_hint(title)})"
        )
    return Path(path)


@contextmanager
def open_text(path: Path, title: str, source: str, newline: str | None = None) -> Iterator[TextIO]:
    """The UTF-8 annotation file ``path`` open for reading (``newline`` as in :func:`open`).

    A missing file is a one-line DataError (:func:`require_file`), and so is a file that cannot
    be read or decoded, also when that only shows while the body reads it.
    """
    require_file(path, title, source)
    try:
        with Path(path).open(encoding="utf-8", newline=newline) as f:
            yield f
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        raise DataError(
            f"{path}: cannot read it as UTF-8 text ({reason}); replace it ({readme_hint(title)})"
        ) from None


def read_text(path: Path, title: str, source: str) -> str:
    """The text of the UTF-8 annotation file ``path``, with :func:`open_text`'s errors."""
    with open_text(path, title, source) as f:
        return f.read()


def read_json(path: Path, title: str, source: str) -> Any:
    """The parsed JSON file ``path`` (one-line errors for a missing or malformed file)."""
    return parse_json(read_text(path, title, source), str(path))


def parse_json(text: str, where: str) -> Any:
    """``json.loads(text)``; malformed JSON is a one-line DataError naming ``where``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_id_list(path: Path, title: str, source: str) -> list[str]:
    """Video ids of a split list (one per line, surrounding whitespace and blank lines ignored),
    in file order. Raises DataError when it is missing or lists no id."""
    ids = [line.strip() for line in read_text(path, title, source).splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise DataError(f"{path}: lists no video id ({readme_hint(title)})")
    return ids


def caption_text(text: Any, path: Path, video_id: str) -> str:
    """``text`` if it is a non-blank string, else a one-line DataError naming file and video."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{path}: empty caption for video {video_id!r}")
    return text


def index_videos(video_root: Path, title: str) -> dict[str, Path]:
    """Every file under ``video_root`` (recursively) by its stem, the name without its last
    extension, as the reference loaders match files. Folders and files are visited in sorted
    order and the first file of a stem wins, so the result does not depend on the file system.
    Hidden files (temporary downloads) are ignored. A missing folder is a one-line DataError."""
    if not Path(video_root).is_dir():
        raise DataError(
            f"{title} video folder not found: {video_root} (set --video-root DIR or "
            f"-o data.video_root=DIR; {readme_hint(title)})"
        )
    found: dict[str, Path] = {}
    for folder, subfolders, files in os.walk(video_root):
        subfolders.sort()
        for name in sorted(files):
            if not name.startswith("."):
                found.setdefault(os.path.splitext(name)[0], Path(folder) / name)
    return found


def pairs_from_items(
    items: Sequence[tuple[str, str]],
    video_paths: Mapping[str, Path],
    segments: Mapping[str, tuple[float, float]] | None = None,
) -> VideoTextPairs:
    """VideoTextPairs of ``(video_id, caption)`` items in item order; videos are numbered in order
    of first appearance. ``video_paths`` (and ``segments``, when given) map every video id."""
    first_seen: dict[str, int] = {}
    caption_video = [first_seen.setdefault(video, len(first_seen)) for video, _ in items]
    video_ids = list(first_seen)
    return VideoTextPairs(
        video_ids=video_ids,
        video_paths=[video_paths[v] for v in video_ids],
        captions=[caption for _, caption in items],
        caption_video=caption_video,
        segments=None if segments is None else [segments[v] for v in video_ids],
    )


def listed_pairs(
    ids: Sequence[str],
    captions: Mapping[str, list[str]],
    videos: Mapping[str, Path],
    video_root: Path,
    suffix: str,
    title: str,
) -> tuple[VideoTextPairs, list[str]]:
    """Every (caption, video) pair of the videos ``ids`` (a split list), video by video in list
    order, captions in their order (the MSVD and VATEX loaders).

    ``videos`` maps file stems to files (:func:`index_videos`); a listed video without a file
    gets ``video_root/{id}{suffix}`` so the clip loader reports it (``data.on_bad_video``).
    Returns the pairs and the ids of those missing videos. A listed id without captions is a
    one-line DataError (the reference loaders assert).
    """
    items = []
    for video in ids:
        if video not in captions:
            raise DataError(
                f"{title} captions have no entry for the listed video {video!r} "
                f"({readme_hint(title)})"
            )
        items += [(video, caption) for caption in captions[video]]
    missing = [v for v in ids if v not in videos]
    paths = {v: videos.get(v, Path(video_root) / f"{v}{suffix}") for v in ids}
    return pairs_from_items(items, paths), missing


def check_split(split: str, title: str, splits: Sequence[str] = SPLITS) -> None:
    """A one-line ConfigError when ``split`` (``eval.split``, or a task's own) is not one of
    ``splits``."""
    if split not in splits:
        raise ConfigError(
            f"{title} has no split {split!r}: choose one of {', '.join(splits)} (eval.split)"
        )


def choose(key: str, choice: str, files: Mapping[str, str]) -> str:
    """``files[choice]``, or a one-line ConfigError when config key ``key`` names no entry."""
    if choice not in files:
        raise ConfigError(f"config key {key!r} must be one of {', '.join(files)}, got {choice!r}")
    return files[choice]


def require_pairs(
    pairs: VideoTextPairs, split: str, listed: str, title: str, video_root: Path, pattern: str
) -> VideoTextPairs:
    """``pairs`` unless empty; then a one-line DataError: no video of ``listed`` was found under
    ``video_root`` (expected file names ``pattern``)."""
    if pairs.num_videos == 0:
        raise DataError(
            f"{title} {split}: none of the videos of {listed} found under {video_root} "
            f"(expected files named {pattern}; {readme_hint(title)})"
        )
    return pairs


class DatasetEntry:
    """Base of the dataset entries that read files: ``data.root`` (annotations; also ``folder``,
    where the frame cache of ``run.py --prepare`` lives), ``data.video_root`` (default
    ``<root>/videos``), the config section ``self.section`` and notes collected while loading.
    Subclasses set ``section``, ``title`` (README "Datasets: <title>") and ``contents`` (what the
    root folder holds, for the error on a missing ``--data-root``)."""

    section: str
    title: str
    contents: str

    def __init__(self, config: dict) -> None:
        data = config["data"]
        if not data["root"]:
            raise ConfigError(
                f"dataset {self.section} needs --data-root DIR (the folder with {self.contents}; "
                f"{readme_hint(self.title)})"
            )
        self.root = self.folder = Path(data["root"])
        self.video_root = Path(data["video_root"]) if data["video_root"] else self.root / "videos"
        self.options: dict[str, Any] = config[self.section]
        self._notes: dict[str, None] = {}  # an ordered set: loading a split twice adds nothing

    @cached_property
    def videos(self) -> dict[str, Path]:
        """Video files under the video root by stem (walked once per entry)."""
        return index_videos(self.video_root, self.title)

    def split_file(self, key: str, split: str) -> Path:
        """``<root>/<options[key][split]>``: the file of ``split`` named in the config section."""
        files = self.options[key]
        check_split(split, self.title, list(files))
        return self.root / files[split]

    def note(self, split: str, text: str | None) -> None:
        """Record the line ``"<section> <split>: <text>"`` for :meth:`notes` (None: nothing)."""
        if text:
            self._notes[f"{self.section} {split}: {text}"] = None

    def note_missing(self, split: str, missing: Sequence[str], listed: int) -> None:
        """Note the listed videos of ``split`` that have no file (the clip loader will report them
        or, with ``data.on_bad_video=skip``, skip them)."""
        if missing:
            self.note(
                split,
                f"{len(missing)} of {listed} listed videos have no file under {self.video_root} "
                f"(first: {missing[0]})",
            )

    def notes(self) -> list[str]:
        """Lines shown under the results table: what loading the splits changed or assumed."""
        return list(self._notes)


class ListedVideosEntry(DatasetEntry):
    """Base of the entries whose splits are lists of video ids over one caption file (MSVD,
    VATEX): every (caption, video) pair of the listed videos (:func:`listed_pairs`); listed videos
    without a file are noted and left to the clip loader. Subclasses also set ``source`` (where
    the files come from), ``missing_suffix`` (the extension that names a missing video) and
    ``read_captions`` (caption file -> video id -> captions, a staticmethod)."""

    source: str
    missing_suffix: str
    read_captions: Callable[[Path], dict[str, list[str]]]

    @cached_property
    def captions(self) -> dict[str, list[str]]:
        """The captions of every video (the section's ``captions`` file, read once)."""
        return self.read_captions(self.root / self.options["captions"])

    def pairs(self, split: str) -> VideoTextPairs:
        """Caption-video pairs of ``split`` (train, val or test)."""
        ids = read_id_list(self.split_file("lists", split), self.title, self.source)
        pairs, missing = listed_pairs(
            ids, self.captions, self.videos, self.video_root, self.missing_suffix, self.title
        )
        self.note_missing(split, missing, len(ids))
        return pairs


class SplitListing(NamedTuple):
    """Where an entry lists the items of a split and what their videos are called: ``key``, the
    key of the config section that names each split's listing file, and ``videos``, the expected
    video file names (shown when none of the listed videos has a file)."""

    key: str
    videos: str


class FilteredPairsEntry(DatasetEntry):
    """Base of the entries that drop, as the reference loaders do, the listed items whose video
    has no file or no captions (LSMDC, ActivityNet, DiDeMo): the drops are noted, and a split left
    without any video is a DataError. Subclasses also set ``listing`` (:class:`SplitListing`) and
    implement :meth:`kept_pairs`."""

    listing: SplitListing

    def kept_pairs(self, split: str, listed: Path) -> tuple[VideoTextPairs, str | None]:
        """The pairs of ``split`` that the file ``listed`` lists and have a video file, and a
        note on what was dropped (:func:`dropped_text`)."""
        raise NotImplementedError

    def pairs(self, split: str) -> VideoTextPairs:
        """Caption-video pairs of ``split`` (train, val or test)."""
        listed = self.split_file(self.listing.key, split)
        pairs, dropped = self.kept_pairs(split, listed)
        self.note(split, dropped)
        return require_pairs(
            pairs, split, listed.name, self.title, self.video_root, self.listing.videos
        )


def dropped_text(
    dropped: Mapping[str, int], listed: int, what: str = "listed videos"
) -> str | None:
    """``"3 of 1000 listed videos dropped as the reference loaders do (no video file: 3)"``, or
    None when nothing was dropped."""
    total = sum(dropped.values())
    if not total:
        return None
    reasons = ", ".join(f"{why}: {n}" for why, n in dropped.items() if n)
    return f"{total} of {listed} {what} dropped as the reference loaders do ({reasons})"
