"""VATEX, English captions (METHODS.md §6.6): ``vatex_data.json`` and split lists.

Every (caption, video) pair of the listed videos, video by video in list order, the ten
``enCap`` captions in json order; multi-sentence evaluation. Splits as in HMMC ``tools/vatex_txt``
and the EMCL inference-module data: train 25,991, val 1,500, test 1,500 videos
(``test1k5_sec_list.txt`` is another 1,500-video list no loader uses).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import DataError
from tasks.datasets.annotations import ListedVideosEntry, read_json

TITLE = "VATEX"
SOURCE = "it comes with the VATEX data of the EMCL inference module or HMMC (tools/vatex_txt)"
CAPTION_KEY = "enCap"
DEFAULT_SUFFIX = ".mp4"  # only used to name a video that is missing


def load_vatex_captions(path: Path) -> dict[str, list[str]]:
    """``vatex_data.json`` ({video_id: {"enCap": [...], "chCap": [...]}}) -> video id -> English
    captions. Raises a one-line DataError when missing or malformed (a caption that is not a
    string); captions are kept as they are, like the reference."""
    data = read_json(path, TITLE, SOURCE)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object video_id -> {{'enCap': [...]}}")
    captions = {}
    for video, entry in data.items():
        caps = entry.get(CAPTION_KEY) if isinstance(entry, dict) else None
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise DataError(f"{path}: video {video!r} has no list of strings {CAPTION_KEY!r}")
        captions[video] = caps
    return captions


class VATEX(ListedVideosEntry):
    """The ``vatex`` dataset entry (English): all ten captions of every listed video.

    Reads ``vatex_data.json`` and the lists named in the ``vatex`` section from ``data.root``;
    videos are found by file stem anywhere under ``data.video_root`` (default ``<root>/videos``).
    """

    section = "vatex"
    title = TITLE
    contents = "vatex_data.json and train_list.txt, val_list.txt, test_list.txt"
    source = SOURCE
    missing_suffix = DEFAULT_SUFFIX
    read_captions = staticmethod(load_vatex_captions)
