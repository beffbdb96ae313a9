"""Pieces every task builds the same way from the config: tokenizer, encoder, choice checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import DataLoader, Dataset, Sampler

from harness.cache import FrameCache, cache_dir_for
from harness.config import Config, check_choice
from harness.data import BAD_VIDEO_POLICIES, ClipSource, drop_bad_videos
from harness.data_types import VideoTextPairs
from harness.encoder import VideoTextEncoder, build_clip
from harness.encoder.clip import OPENAI_SUFFIXES
from harness.text import TextTokenizer, build_tokenizer

CLIP_BPE = (
    Path(__file__).resolve().parent.parent / "harness" / "assets" / "bpe_simple_vocab_16e6.txt.gz"
)


def build_text_tokenizer(config: Config, captions: Sequence[str]) -> TextTokenizer:
    """The tokenizer named by ``data.tokenizer``.

    ``auto``: the tokenizer of ``encoder.pretrained`` when that is a HF folder or hub id, else
    the OpenAI CLIP BPE (shipped in harness/assets). ``clip``: that BPE. ``word``: a word-level
    tokenizer built from the training ``captions``. Anything else: a BPE .txt.gz or HF folder.
    """
    spec = config["data"]["tokenizer"]
    pretrained = config["encoder"]["pretrained"]
    if spec == "auto":
        is_hf = pretrained and not str(pretrained).endswith(OPENAI_SUFFIXES)
        spec = pretrained if is_hf else "clip"
    if spec == "clip":
        return build_tokenizer(CLIP_BPE)
    if spec == "word":
        return build_tokenizer("word", corpus=captions)
    return build_tokenizer(spec)


def clip_source(config: Config, dataset_folder: Path) -> ClipSource:
    """The clip loader for this run's sampling settings; it reads the dataset's frame cache
    (built by ``run.py --prepare``) when ``data.frame_cache`` is ``auto`` and the cache exists."""
    data = config["data"]
    check_choice("data.on_bad_video", data["on_bad_video"], BAD_VIDEO_POLICIES)
    check_choice("data.frame_cache", data["frame_cache"], ("auto", "off"))
    settings = {
        "max_frames": data["max_frames"],
        "image_size": data["image_size"],
        "framerate": data["video_framerate"] or None,
    }
    cache_dir = cache_dir_for(dataset_folder, **settings)
    use_cache = data["frame_cache"] == "auto" and cache_dir.is_dir()
    return ClipSource(
        **settings,
        cache_in_memory=data["cache_in_memory"],
        cache=FrameCache.open(cache_dir, **settings) if use_cache else None,
    )


def drop_unreadable(
    config: Config, pairs: VideoTextPairs, source: ClipSource
) -> tuple[VideoTextPairs, list[dict[str, str]]]:
    """Under ``data.on_bad_video=skip``: ``pairs`` without unreadable videos and the skipped
    files (see :func:`harness.data.drop_bad_videos`); otherwise ``pairs`` unchanged and none."""
    if config["data"]["on_bad_video"] != "skip":
        return pairs, []
    return drop_bad_videos(pairs, source)


def build_encoder_for(config: Config, tokenizer: TextTokenizer) -> VideoTextEncoder:
    """The shared CLIP encoder for this run's data settings and tokenizer."""
    enc = config["encoder"]
    clip = build_clip(
        enc["pretrained"],
        size=enc["size"],
        image_size=config["data"]["image_size"],
        patch_size=enc["patch_size"],
        vocab_size=tokenizer.vocab_size,
        max_text_positions=max(77, config["data"]["max_words"]),
        sot_id=tokenizer.sot_id,
        eot_id=tokenizer.eot_id,
        pad_id=tokenizer.pad_id,
    )
    return VideoTextEncoder(clip)


def train_dataloader(
    config: Config, dataset: Dataset, sampler: Sampler, per_process_batch: int
) -> DataLoader:
    """The training loader every task uses: the task's sampler, full batches only."""
    return DataLoader(
        dataset,
        batch_size=per_process_batch,
        sampler=sampler,
        drop_last=True,
        num_workers=config["data"]["num_workers"],
    )
