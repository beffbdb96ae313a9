"""ActivityNet Captions paragraph retrieval (METHODS.md §6.4).

One item per video: the paragraph ``" ".join(sentences)`` of all its captions against the whole
video, read as the segment ``(0, ceil(duration))`` seconds. Ids files list pseudo ids
``v_XXXXXXXXXXX``; video files are ``v_XXXXXXXXXXX.<ext>`` (the reference strips the first two
characters of the file stem and compares with the id). Test = ``val_1``; val is the same.
Listed videos without captions or without a file are dropped, as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from harness.data_types import VideoTextPairs
from harness.errors import DataError
from tasks.datasets.annotations import (
    FilteredPairsEntry,
    SplitListing,
    dropped_text,
    pairs_from_items,
    read_json,
)

TITLE = "ActivityNet"
SOURCE = "it comes with the EMCL-processed ActivityNet archive"
PREFIX = 2  # characters before the real id in a pseudo id and a file stem ("v_")


def read_pseudo_ids(path: Path) -> list[str]:
    """The pseudo ids of ``train_ids.json`` / ``val_ids.json`` (a JSON list), duplicates
    removed, in file order."""
    ids = read_json(path, TITLE, SOURCE)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataError(f"{path}: expected a JSON list of video ids like 'v_XXXXXXXXXXX'")
    return list(dict.fromkeys(ids))


def read_paragraphs(path: Path) -> dict[str, tuple[str, float]]:
    """``train.json`` / ``val_1.json`` -> pseudo id -> (paragraph, segment end): all sentences
    joined with single spaces, and ``ceil(duration)`` seconds. One-line errors when malformed."""
    data = read_json(path, TITLE, SOURCE)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object video_id -> {{duration, sentences}}")
    paragraphs = {}
    for video, entry in data.items():
        entry = entry if isinstance(entry, dict) else {}
        duration, sentences = entry.get("duration"), entry.get("sentences")
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise DataError(f"{path}: video {video!r} has no list of strings 'sentences'")
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
            raise DataError(f"{path}: video {video!r} needs a positive number 'duration'")
        paragraphs[video] = (" ".join(sentences), float(math.ceil(duration)))
    return paragraphs


def activitynet_pairs(
    ids: list[str], paragraphs: Mapping[str, tuple[str, float]], videos: Mapping[str, Path]
) -> tuple[VideoTextPairs, dict[str, int]]:
    """Paragraph-video pairs of the pseudo ``ids`` (in that order) with their ``paragraphs``
    (:func:`read_paragraphs`); ``videos`` maps file stems to files. Video ids are the pseudo
    ids; ``segments`` are ``(0, ceil(duration))``. Also returns the count of dropped listed
    videos per reason."""
    by_real_id: dict[str, Path] = {}
    for stem, path in videos.items():
        by_real_id.setdefault(stem[PREFIX:], path)
    kept = [v for v in ids if v in paragraphs and v[PREFIX:] in by_real_id]
    pairs = pairs_from_items(
        [(v, paragraphs[v][0]) for v in kept],
        {v: by_real_id[v[PREFIX:]] for v in kept},
        {v: (0.0, paragraphs[v][1]) for v in kept},
    )
    no_captions = sum(v not in paragraphs for v in ids)
    dropped = {"no captions": no_captions, "no video file": len(ids) - no_captions - len(kept)}
    return pairs, dropped


class ActivityNet(FilteredPairsEntry):
    """The ``activitynet`` dataset entry: paragraph retrieval, train on ``train.json``, test (and
    val) on ``val_1.json``, whole videos.

    Reads the ids and caption files named in the ``activitynet`` section from ``data.root``;
    videos ``v_<id>.<ext>`` are found anywhere under ``data.video_root`` (default
    ``<root>/videos``).
    """

    section = "activitynet"
    title = TITLE
    contents = "train_ids.json, val_ids.json, train.json and val_1.json"
    listing = SplitListing(key="ids", videos="v_<id>.mp4")

    def kept_pairs(self, split: str, listed: Path) -> tuple[VideoTextPairs, str | None]:
        """Paragraph-video pairs of the pseudo ids in ``listed`` that have captions in the
        split's caption file and a video file."""
        ids = read_pseudo_ids(listed)
        paragraphs = read_paragraphs(self.split_file("captions", split))
        pairs, dropped = activitynet_pairs(ids, paragraphs, self.videos)
        return pairs, dropped_text(dropped, len(ids))
