"""DiDeMo paragraph retrieval (METHODS.md §6.5).

One item per video: all its descriptions, in json order, joined with single spaces, against the
first 31 seconds of the video (the reference forces the segment ``(0, 31)``: DiDeMo videos were
truncated to 30 s for annotation). As in the reference, only videos present in the split list,
the caption json and the video folder are kept, in order of first appearance in the json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.data_types import VideoTextPairs
from harness.errors import DataError
from tasks.datasets.annotations import (
    FilteredPairsEntry,
    SplitListing,
    dropped_text,
    pairs_from_items,
    read_id_list,
    read_json,
)

TITLE = "DiDeMo"
SOURCE = "it comes with the EMCL-processed DiDeMo archive"
SEGMENT = (0.0, 31.0)


def read_descriptions(path: Path) -> dict[str, list[str]]:
    """``{train,val,test}_data.json`` (a list of ``{"video", "description", "times"}``) ->
    video -> its descriptions in json order (videos in order of first appearance)."""
    data = read_json(path, TITLE, SOURCE)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{video, description, times}} objects")
    descriptions: dict[str, list[str]] = {}
    for n, item in enumerate(data):
        for key in ("video", "description"):
            if not isinstance(item, dict) or not isinstance(item.get(key), str):
                raise DataError(f"{path}: item [{n}] has no string {key!r}")
        descriptions.setdefault(item["video"], []).append(item["description"])
    return descriptions


def didemo_pairs(
    listed: Sequence[str], descriptions: Mapping[str, list[str]], videos: Mapping[str, Path]
) -> tuple[VideoTextPairs, dict[str, int]]:
    """Paragraph-video pairs of the videos in ``listed`` ∩ ``descriptions`` ∩ ``videos`` (file
    stem -> file), in description order, each with the segment (0, 31). Also returns the count
    of dropped listed videos per reason."""
    wanted = set(listed)
    kept = [v for v in descriptions if v in wanted and v in videos]
    pairs = pairs_from_items(
        [(v, " ".join(descriptions[v])) for v in kept], videos, dict.fromkeys(kept, SEGMENT)
    )
    no_captions = len(wanted - set(descriptions))
    dropped = {"no captions": no_captions, "no video file": len(wanted) - no_captions - len(kept)}
    return pairs, dropped


class DiDeMo(FilteredPairsEntry):
    """The ``didemo`` dataset entry: paragraph retrieval on the train/val/test lists.

    Reads the lists and caption files named in the ``didemo`` section from ``data.root``; videos
    are found by file stem anywhere under ``data.video_root`` (default ``<root>/videos``).
    """

    section = "didemo"
    title = TITLE
    contents = "{train,val,test}_list.txt and {train,val,test}_data.json"
    listing = SplitListing(key="lists", videos="<name>.mp4")

    def kept_pairs(self, split: str, listed: Path) -> tuple[VideoTextPairs, str | None]:
        """Paragraph-video pairs of the videos of the list ``listed`` that have descriptions in
        the split's caption file and a video file."""
        ids = read_id_list(listed, TITLE, SOURCE)
        descriptions = read_descriptions(self.split_file("captions", split))
        pairs, dropped = didemo_pairs(ids, descriptions, self.videos)
        return pairs, dropped_text(dropped, len(set(ids)))
