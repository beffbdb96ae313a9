"""LSMDC (METHODS.md §6.3): tab-separated annotation files, one sentence per line.

Each line holds ``clip_id, start_aligned, end_aligned, start_extracted, end_extracted,
sentence``; the whole clip file is used (the times are ignored). As in the reference loaders,
pairs whose clip has no video file are dropped, and so are the clips of ``lsmdc.exclude_clips``
(EMCL-Net's three, by default).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from harness.data_types import VideoTextPairs
from harness.errors import DataError
from tasks.datasets.annotations import (
    FilteredPairsEntry,
    SplitListing,
    dropped_text,
    pairs_from_items,
    read_text,
)

TITLE = "LSMDC"
SOURCE = "it comes from the LSMDC download page, access granted by MPII"
FIELDS = "clip_id, start_aligned, end_aligned, start_extracted, end_extracted, sentence"


def read_lsmdc_annotations(path: Path) -> list[tuple[str, str]]:
    """``(clip_id, sentence)`` of every line of an LSMDC annotation file, in file order. Raises a
    one-line DataError when it is missing or has a line without 6 fields."""
    items = []
    for lineno, line in enumerate(read_text(path, TITLE, SOURCE).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split("\t")
        if len(fields) != 6:
            raise DataError(
                f"{path}:{lineno}: expected 6 tab-separated fields ({FIELDS}), got {len(fields)}"
            )
        items.append((fields[0], fields[5]))
    return items


def lsmdc_pairs(
    items: list[tuple[str, str]], videos: Mapping[str, Path], exclude: Collection[str] = ()
) -> tuple[VideoTextPairs, dict[str, int]]:
    """Pairs of the ``(clip_id, sentence)`` items (:func:`read_lsmdc_annotations`) in item order,
    videos in order of first appearance, without the clips in ``exclude`` and those missing from
    ``videos`` (file stem -> file). Also returns how many pairs were dropped for each reason."""
    kept = [(clip, s) for clip, s in items if clip not in exclude and clip in videos]
    excluded = sum(clip in exclude for clip, _ in items)
    dropped = {"excluded clips": excluded, "no video file": len(items) - excluded - len(kept)}
    return pairs_from_items(kept, videos), dropped


class LSMDC(FilteredPairsEntry):
    """The ``lsmdc`` dataset entry: LSMDC16 training/val annotations and the 1,000-clip test.

    Reads the annotation files named in the ``lsmdc`` section from ``data.root``; clip files are
    found by file stem anywhere under ``data.video_root`` (default ``<root>/videos``; the LSMDC
    layout of one folder per movie works as is).
    """

    section = "lsmdc"
    title = TITLE
    contents = "LSMDC16_annos_training.csv, LSMDC16_annos_val.csv and the 1000-clip test csv"
    listing = SplitListing(key="annotations", videos="<clip_id>.avi")

    def kept_pairs(self, split: str, listed: Path) -> tuple[VideoTextPairs, str | None]:
        """The pairs of the annotation file ``listed`` without the excluded clips and those
        without a video file."""
        items = read_lsmdc_annotations(listed)
        pairs, dropped = lsmdc_pairs(items, self.videos, set(self.options["exclude_clips"]))
        return pairs, dropped_text(dropped, len(items), "pairs")
