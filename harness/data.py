"""Torch datasets over caption-video pairs: decoded clips, tokenized captions, bad-video policy."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from harness import distributed
from harness.data_types import VideoTextPairs
from harness.frame_rules import frame_rule
from harness.text import TextTokenizer, tokenize
from harness.video import VideoReadError, load_clip_uint8, pixels_from_uint8

if TYPE_CHECKING:
    from harness.frame_cache import FrameCache

BAD_VIDEO_POLICIES = ("error", "skip")


class ClipSource:
    """Turns a video path into sampled frames with one run's sampling settings: frame counts and
    rate, and the frame protocol (``sampling`` rule, ``resize``, ``slice_framepos``; see
    `harness.video.load_clip_uint8`), fixed at construction.

    ``__call__(path)`` returns ``(frames (F, S, S, 3) uint8, mask (F,) int64)``; they become
    model input on the accelerator (:func:`model_input`). With
    ``cache_in_memory`` the sampled uint8 frames of each video are kept after the first decode
    (a small benchmark fits in memory; later epochs then skip decoding). With a frame ``cache``
    (built by ``--prepare`` with the same settings) clips it holds are read from it instead of
    decoded; the result is the same.
    """

    def __init__(
        self,
        max_frames: int,
        image_size: int,
        framerate: float | None,
        cache_in_memory: bool = False,
        cache: FrameCache | None = None,
        sampling: str = "decord",
        resize: str = "torch",
        slice_framepos: int = 2,
    ) -> None:
        protocol = {"sampling": sampling, "resize": resize, "slice_framepos": slice_framepos}
        if cache is not None:
            cache.check(max_frames, image_size, framerate, **protocol)
        # The rule itself, not its name: DataLoader workers need not import the method packages.
        self.rule = frame_rule(sampling)
        self.cache = cache
        self.max_frames = max_frames
        self.image_size = image_size
        self.framerate = framerate
        self.protocol = protocol
        self.cache_in_memory = cache_in_memory
        # Keyed by the settings too: clips read under one rule are never served under another.
        self._settings_key = (max_frames, image_size, framerate, *protocol.values())
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def frames_uint8(
        self, path: Path, segment: tuple[float, float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The sampled, resized frames (F, S, S, 3) uint8 and the mask (F,) of ``path``, read
        from the ``segment`` (start, end) seconds when given (clamped to the file's end).

        The frame cache holds whole-file clips, so a segment is always decoded.
        """
        key = (self._settings_key, path, segment)
        cached = self._cache.get(key)
        if cached is None and self.cache is not None and segment is None:
            cached = self.cache.get(path)
        if cached is None:
            start, end = segment if segment is not None else (None, None)
            cached = load_clip_uint8(
                path,
                self.max_frames,
                self.image_size,
                self.framerate,
                start,
                end,
                sampling=self.rule,
                resize=self.protocol["resize"],
                slice_framepos=self.protocol["slice_framepos"],
            )
            if self.cache_in_memory:
                self._cache[key] = cached
        return cached

    def __call__(
        self, path: Path, segment: tuple[float, float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.frames_uint8(path, segment)


def segment_of(pairs: VideoTextPairs, video: int) -> tuple[float, float] | None:
    """The time window of video ``video`` of ``pairs`` (None: the whole file)."""
    return None if pairs.segments is None else pairs.segments[video]


def drop_bad_videos(
    pairs: VideoTextPairs, source: ClipSource
) -> tuple[VideoTextPairs, list[dict[str, str]]]:
    """Decode every video once (sharded over processes) and drop the unreadable ones.

    Returns the pairs without those videos and their captions, and one record
    ``{"path", "error"}`` per skipped file (identical on every process).
    """
    local_bad = []
    for i in distributed.shard(pairs.num_videos):
        try:
            source.frames_uint8(pairs.video_paths[i], segment_of(pairs, i))
        except VideoReadError as exc:
            local_bad.append((i, str(exc)))
    bad = dict(distributed.all_gather_objects(local_bad))
    if not bad:
        return pairs, []
    kept = pairs.keep_videos([i for i in range(pairs.num_videos) if i not in bad])
    skipped = [{"path": str(pairs.video_paths[i]), "error": bad[i]} for i in sorted(bad)]
    return kept, skipped


class IndexedDataset(Dataset):
    """Item ``i`` is ``{"index": i, **self.fields(i)}`` for each entry ``i`` of ``self.items``;
    the index travels with the item so that evaluation can gather features in dataset order."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"index": index, **self.fields(index)}

    def fields(self, index: int) -> dict[str, Any]:
        """The model input of item ``index`` (without ``"index"``)."""
        raise NotImplementedError


class CaptionDataset(IndexedDataset):
    """Tokenized captions: item -> ``{"index", "ids" (L,), "mask" (L,)}``."""

    def __init__(self, captions: list[str], tokenizer: TextTokenizer, max_words: int) -> None:
        super().__init__(captions)
        self.tokenizer = tokenizer
        self.max_words = max_words

    def fields(self, index: int) -> dict[str, Any]:
        """The token ids and mask of caption ``index``."""
        ids, mask = tokenize(self.tokenizer, self.items[index], self.max_words)
        return {"ids": ids, "mask": mask}


class VideoDataset(IndexedDataset):
    """Decoded clips: item -> ``{"index", "frames" (F,S,S,3) uint8, "video_mask" (F,)}``;
    ``segments`` (one per path, None: the whole file) as in :class:`VideoTextPairs`."""

    def __init__(
        self,
        paths: list[Path],
        source: ClipSource,
        segments: list[tuple[float, float] | None] | None = None,
    ) -> None:
        super().__init__(list(zip(paths, segments or [None] * len(paths), strict=True)))
        self.source = source

    def fields(self, index: int) -> dict[str, Any]:
        """The clip and frame mask of video ``index``, read from its segment."""
        path, segment = self.items[index]
        frames, mask = self.source(path, segment)
        return {"frames": frames, "video_mask": mask}


class PairDataset(Dataset):
    """Training pairs: item i = caption i with its video (both dataset items merged)."""

    def __init__(self, pairs: VideoTextPairs, tokenizer: TextTokenizer, max_words: int, source):
        self.pairs = pairs
        self.captions = CaptionDataset(pairs.captions, tokenizer, max_words)
        self.videos = VideoDataset(pairs.video_paths, source, pairs.segments)

    def __len__(self) -> int:
        return self.pairs.num_captions

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.captions[index]
        video = self.videos[self.pairs.caption_video[index]]
        item.update(frames=video["frames"], video_mask=video["video_mask"])
        return item


def model_input(batch: dict[str, Any]) -> dict[str, Any]:
    """A batch as methods take it: its uint8 ``frames`` (B, F, S, S, 3), wherever they are (the
    accelerator, once moved), become normalized float32 ``pixels`` (B, F, 3, S, S) with zeros in
    padded slots; a batch without frames is returned as it is."""
    if "frames" not in batch:
        return batch
    out = {k: v for k, v in batch.items() if k != "frames"}
    out["pixels"] = pixels_from_uint8(batch["frames"], batch["video_mask"])
    return out


MAX_AUTO_WORKERS = 8
PREFETCH_BATCHES = 4  # per worker: enough to hide a slow video behind the others


def worker_count(num_workers: int | str) -> int:
    """``data.num_workers`` as a count: ``auto`` is the CPU cores this process may use, shared
    with the other processes of this node (``LOCAL_WORLD_SIZE``), at least 1 and at most 8; 0 for
    a multi-process run without CUDA (gloo)."""
    if num_workers != "auto":
        return int(num_workers)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local_processes > 1 and not torch.cuda.is_available():
        # Forking loader workers beside gloo's threads can deadlock the child (seen in 2-process
        # CPU runs): several CPU processes decode in their main processes instead.
        return 0
    cores = len(os.sched_getaffinity(0))
    return min(MAX_AUTO_WORKERS, max(1, cores // local_processes))


def loader_options(num_workers: int | str, persistent: bool) -> dict[str, Any]:
    """DataLoader keyword arguments for ``data.num_workers`` (see :func:`worker_count`).

    Workers stay alive across passes when ``persistent`` (a training loader: their in-memory
    clip caches then survive epochs); batches are pinned for a fast copy when CUDA is there.
    """
    num_workers = worker_count(num_workers)
    options: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": torch.cuda.is_available(),
    }
    if num_workers > 0:
        options.update(persistent_workers=persistent, prefetch_factor=PREFETCH_BATCHES)
    return options
