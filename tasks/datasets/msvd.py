"""MSVD (METHODS.md §6.2): ``raw-captions.pkl`` and split lists, multi-sentence evaluation.

Every (caption, video) pair of the listed videos, video by video in list order, captions in
pickle order (about 41 per video). ``emcl_net_cut_off`` rebuilds the caption -> video mapping
that EMCL-Net's evaluation effectively uses (METHODS.md §4.6).
"""

from __future__ import annotations

import bisect
import pickle
from pathlib import Path

from harness.config import ConfigError
from harness.data_types import VideoTextPairs
from harness.errors import DataError
from tasks.datasets.annotations import ListedVideosEntry, require_file

TITLE = "MSVD"
SOURCE = "it comes with the EMCL-processed MSVD archive or CLIP4Clip's msvd_data.zip"
DEFAULT_SUFFIX = ".avi"  # the published MSVD clips; only used to name a video that is missing
# What reading a damaged or foreign pickle raises: besides format errors, lengths that ask for
# impossible sizes (OverflowError, MemoryError) and an unreadable file.
_UNPICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    OverflowError,
    MemoryError,
    OSError,
)


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only built-in containers and strings: a caption file needs nothing else, and
    refusing classes keeps a tampered file from running code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_raw_captions(path: Path) -> dict[str, list[str]]:
    """``raw-captions.pkl``: video id -> captions, each a list of word tokens joined with single
    spaces. Raises a one-line DataError when it is missing or not a pickled dict of lists of
    token lists. An empty token list stays an empty caption, as in the reference."""
    require_file(path, TITLE, SOURCE)
    try:
        with Path(path).open("rb") as f:
            data = _PlainUnpickler(f).load()
    except _UNPICKLE_ERRORS as exc:
        raise DataError(
            f"{path}: not a pickled dict of captions ({exc or type(exc).__name__})"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict video_id -> list of token lists")
    captions = {}
    for video, caps in data.items():
        if not isinstance(caps, list) or not all(
            isinstance(cap, list) and all(isinstance(w, str) for w in cap) for cap in caps
        ):
            raise DataError(
                f"{path}: captions of video {video!r} must be a list of token lists (list of str)"
            )
        captions[video] = [" ".join(cap) for cap in caps]
    return captions


def emcl_net_cut_off(pairs: VideoTextPairs) -> VideoTextPairs:
    """The caption -> video mapping EMCL-Net's multi-sentence evaluation effectively uses.

    Its loader stores the index of each video's last sentence, ``last_g``, where the evaluation
    expects a count, so sentence group g becomes ``[last_{g-1}, last_g)``: each video loses its
    own last sentence to the next video and the final sentence of the last video is dropped.
    ``pairs`` must list the sentences video by video in video order (as MSVD does), each video
    with at least two (else the reference takes a video feature from the wrong video). Returns
    pairs with one caption fewer; videos, paths and segments are unchanged.
    """
    counts = [0] * pairs.num_videos
    for video in pairs.caption_video:
        counts[video] += 1
    if pairs.caption_video != sorted(pairs.caption_video) or min(counts, default=0) < 2:
        raise ConfigError(
            "msvd.emcl_net_cut_off_bug needs the sentences grouped video by video, at least two "
            "per video; set msvd.emcl_net_cut_off_bug=false"
        )
    last, total = [], 0
    for count in counts:
        total += count
        last.append(total - 1)
    kept = range(last[-1])
    return VideoTextPairs(
        video_ids=pairs.video_ids,
        video_paths=pairs.video_paths,
        captions=[pairs.captions[s] for s in kept],
        caption_video=[bisect.bisect_right(last, s) for s in kept],
        groups=pairs.groups,
        segments=pairs.segments,
    )


class MSVD(ListedVideosEntry):
    """The ``msvd`` dataset entry: train/val/test lists of 1,200/100/670 videos, all captions.

    Reads ``raw-captions.pkl`` and the lists named in the ``msvd`` section from ``data.root``;
    videos are found by file stem anywhere under ``data.video_root`` (default ``<root>/videos``).
    With ``msvd.emcl_net_cut_off_bug: true`` the val and test splits use EMCL-Net's shifted
    caption -> video mapping (:func:`emcl_net_cut_off`) to reproduce its reported numbers.
    """

    section = "msvd"
    title = TITLE
    contents = "raw-captions.pkl and train_list.txt, val_list.txt, test_list.txt"
    source = SOURCE
    missing_suffix = DEFAULT_SUFFIX
    read_captions = staticmethod(load_raw_captions)

    def pairs(self, split: str) -> VideoTextPairs:
        """Caption-video pairs of ``split`` (train, val or test), with EMCL-Net's mapping for val
        and test when ``msvd.emcl_net_cut_off_bug`` asks for it."""
        pairs = super().pairs(split)
        if split != "train" and self.options["emcl_net_cut_off_bug"]:
            pairs = emcl_net_cut_off(pairs)
            self.note(
                split,
                f"EMCL-Net cut-off bug reproduced: {pairs.num_videos - 1} sentences scored "
                "against the next video and the last one dropped; not comparable to correct "
                'MSVD numbers (README "Datasets: MSVD")',
            )
        return pairs
