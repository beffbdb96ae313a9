"""synthvtt: the embedded synthetic text-video benchmark, generated on first use.

Each video (64x64, 16 frames at 8 fps, real H.264) shows one to three objects (shape x colour x
size on a plain or lightly textured background); each object undergoes one event (appears,
disappears, moves left/right/up/down across about half the frame, grows, shrinks) in its own
time slot. Captions come from a small grammar with paraphrases and state the events in temporal
order ("a red circle appears then a big blue square moves left", "... after ...", "first ...
then ..."). Order twins, pairs of videos with the same objects and events but two events in
swapped order, make temporal order matter; their captions use the same words in a different
order. Questions (MSRVTT-QA format) ask about colour, shape, motion, count and order.

Layout of ``ensure_synthvtt(root, seed)`` (MSR-VTT file formats, METHODS.md §6.1 and §4.9)::

    synthvtt-v1-seed0/
      videos/videoN.mp4           train video0.., then val, then test ids
      MSRVTT_data.json            every video and all its paraphrased captions
      MSRVTT_train.9k.csv         train video ids
      MSRVTT_val.csv              val pairs, JSFusion format (key,vid_key,video_id,sentence)
      MSRVTT_JSFUSION_test.csv    test pairs, one caption per test video
      qa/{train,val,test}.jsonl   questions; qa/train_ans2label.json
      twins.json                  order-twin pairs per split
      meta.json                   sizes, grammar, chance levels, oracle ceiling, twin statistics
      COMPLETE                    written last: the folder is whole

The default cache root is ``$EMCL_BENCH_DATA`` or ``~/.cache/emcl-bench``. Generation is
deterministic in the seed (annotation files byte-identical, rendered frames identical; the mp4
files are as deterministic as the H.264 encoder of ``harness.video.write_test_video``) and
happens once: a complete folder is never rewritten, and an interrupted one is regenerated from
scratch. GENERATOR_VERSION is part of the folder name, so changing the generator means a new
folder.

This module is the dataset entry (`SynthVTT`) and the folder's life cycle (`ensure_synthvtt`).
The generator: ``scene`` (what a video is), ``sampling`` (scenes from the seed), ``captions``
(the grammar), ``questions``, ``rendering`` (frames and mp4), ``files`` (the folder's files),
``meta`` and ``oracle`` (meta.json and its calibration statistics), ``lock`` (one generation at
a time), ``readback`` (twins.json and meta.json read back, checked).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

from harness.config import ConfigError
from harness.data_types import VideoTextPairs
from harness.phases import announce
from tasks.datasets.msrvtt import (
    load_answer_vocabulary,
    load_msrvtt_captions,
    load_msrvtt_pairs,
    load_qa_questions,
    video_file,
)
from tasks.datasets.synthvtt.files import SPLIT_CSV, generate
from tasks.datasets.synthvtt.lock import locked
from tasks.datasets.synthvtt.oracle import oracle_ceiling
from tasks.datasets.synthvtt.readback import calibration_notes, twin_partners
from tasks.datasets.synthvtt.rendering import render
from tasks.datasets.synthvtt.sampling import DEFAULT_SIZES, GENERATOR_VERSION, SPLITS, sample_scenes

__all__ = [
    "DEFAULT_SIZES",
    "GENERATOR_VERSION",
    "SynthVTT",
    "default_data_root",
    "ensure_synthvtt",
    "generate",
    "oracle_ceiling",
    "render",
    "sample_scenes",
    "synthvtt_pairs",
]


def default_data_root() -> Path:
    """Where datasets are generated or found: ``$EMCL_BENCH_DATA`` or ``~/.cache/emcl-bench``."""
    env = os.environ.get("EMCL_BENCH_DATA")
    return Path(env) if env else Path.home() / ".cache" / "emcl-bench"


def synthvtt_folder_name(seed: int, sizes: dict[str, int]) -> str:
    """Folder name of one generation: version and seed, plus the sizes when not the defaults."""
    name = f"synthvtt-v{GENERATOR_VERSION}-seed{seed}"
    if sizes != DEFAULT_SIZES:
        name += "-" + "-".join(f"{sizes[f'{s}_videos']}{s}" for s in SPLITS)
    return name


def ensure_synthvtt(
    root: Path,
    seed: int = 0,
    *,
    train_videos: int = DEFAULT_SIZES["train_videos"],
    val_videos: int = DEFAULT_SIZES["val_videos"],
    test_videos: int = DEFAULT_SIZES["test_videos"],
    workers: int | None = None,
) -> Path:
    """Generate synthvtt under ``root`` unless it is already complete; return its folder.

    The folder is ``root/synthvtt-v{GENERATOR_VERSION}-seed{seed}[-sizes]``. Generation writes a
    temporary sibling folder and renames it when whole, under a lock file, so concurrent callers
    (one per process of a distributed run) generate once, and leftovers of an interrupted run
    are removed. ``workers`` processes render videos (default: up to 2).
    """
    sizes = {"train_videos": train_videos, "val_videos": val_videos, "test_videos": test_videos}
    for key, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"synthvtt size {key} must be a positive integer, got {value!r}")
    root = Path(root)
    target = root / synthvtt_folder_name(seed, sizes)
    if (target / "COMPLETE").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f".{target.name}.lock"):
        if (target / "COMPLETE").is_file():
            return target
        for stale in root.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale)
        if target.exists():
            shutil.rmtree(target)
        tmp = root / f".{target.name}.tmp-{os.getpid()}"
        started = time.perf_counter()
        announce(f"generate: synthvtt {sum(sizes.values())} videos into {target}")
        try:
            generate(tmp, seed, sizes, workers)
            tmp.rename(target)
            announce(f"generate: done in {time.perf_counter() - started:.1f} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def synthvtt_pairs(
    root: Path, split: str, seed: int = 0, video_root: Path | None = None, **sizes: int
) -> VideoTextPairs:
    """Caption-video pairs of a synthvtt split (train, val or test), generating it if needed.

    Train has every paraphrase of every train video; val and test one caption per video. The
    two videos of an order twin share a group id (``groups``).
    """
    check_split(split)
    folder = ensure_synthvtt(root, seed, **sizes)
    if split == "train":
        pairs = load_msrvtt_pairs(folder, "train", video_root)
    else:
        pairs = load_msrvtt_pairs(
            folder, "test", video_root, test_csv=SPLIT_CSV[split], captions_in_csv=True
        )
    partner = twin_partners(folder, split)
    group_of: dict[str, int] = {}
    groups = []
    for video in pairs.video_ids:
        key = min(video, partner.get(video, video))
        groups.append(group_of.setdefault(key, len(group_of)))
    return dataclasses.replace(pairs, groups=groups)


def check_split(split: str) -> None:
    """Raise a one-line ConfigError unless ``split`` is train, val or test."""
    if split not in SPLITS:
        raise ConfigError(f"synthvtt split must be one of {', '.join(SPLITS)}, got {split!r}")


class SynthVTT:
    """The ``synthvtt`` dataset entry: generated on first use under ``data.root`` (default
    :func:`default_data_root`), sizes and seed from the ``synthvtt`` config section. Building it
    reads meta.json, so a damaged one stops a run before it trains."""

    def __init__(self, config: dict) -> None:
        section = config["synthvtt"]
        self.root = Path(config["data"]["root"] or default_data_root())
        self.video_root = (
            Path(config["data"]["video_root"]) if config["data"]["video_root"] else None
        )
        self.seed = section["seed"]
        self.sizes = {key: section[key] for key in DEFAULT_SIZES}
        self.folder = ensure_synthvtt(self.root, self.seed, **self.sizes)
        self.split = config["eval"]["split"]
        self.calibration = calibration_notes(self.folder, self.split)

    def pairs(self, split: str) -> VideoTextPairs:
        """Caption-video pairs of ``split`` (train, val or test)."""
        return synthvtt_pairs(self.root, split, self.seed, self.video_root, **self.sizes)

    def notes(self) -> list[str]:
        """Chance level and oracle ceiling of the evaluated split, from meta.json."""
        return list(self.calibration)

    def qa_questions(self, split: str) -> list[dict[str, str]]:
        """The MSRVTT-QA items (answer, question, video_id, answer_type) of ``qa/{split}.jsonl``."""
        check_split(split)
        return load_qa_questions(self.folder / "qa" / f"{split}.jsonl")

    def qa_vocabulary(self) -> dict[str, int]:
        """The answer vocabulary answer -> label of ``qa/train_ans2label.json``."""
        return load_answer_vocabulary(self.folder / "qa" / "train_ans2label.json")

    def video_path(self, video_id: str) -> Path:
        """The file of ``video_id`` under ``data.video_root`` (default ``<folder>/videos``)."""
        return video_file(self.video_root or self.folder / "videos", video_id)

    def captioning_pairs(self, split: str) -> VideoTextPairs:
        """Every paraphrase in MSRVTT_data.json of every video of ``split`` (train: the training
        captions; val/test: the full reference sets of captioning)."""
        check_split(split)
        ids_csv = SPLIT_CSV.get(split, "MSRVTT_train.9k.csv")
        return load_msrvtt_captions(self.folder, ids_csv, self.video_root)
