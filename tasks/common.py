"""What every task builds the same way from the config: the dataset entry, its clip loader and
usable data, tokenizer, encoder, the run's method, and the protocol facts of a run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from harness.config import Config, ConfigError, check_choice
from harness.data import (
    BAD_VIDEO_POLICIES,
    ClipSource,
    drop_bad_videos,
    loader_options,
    worker_count,
)
from harness.data_types import VideoTextPairs
from harness.distributed import on_main_process
from harness.encoder import VideoTextEncoder, build_clip
from harness.encoder.clip import is_openai_file
from harness.frame_cache import FrameCache, cache_dir_for, config_settings
from harness.prepare import cache_on_first_use
from harness.registry import DATASETS, METHODS
from harness.task import Task
from harness.text import TextTokenizer, build_tokenizer, load_tokenizer

TOKENIZER_FILE = "tokenizer.json"  # in each checkpoint folder
CLIP_BPE = (
    Path(__file__).resolve().parent.parent / "harness" / "assets" / "bpe_simple_vocab_16e6.txt.gz"
)


def build_text_tokenizer(config: Config, captions: Sequence[str]) -> TextTokenizer:
    """The tokenizer named by ``data.tokenizer``.

    ``auto``: the tokenizer of ``encoder.pretrained`` when that is a HF folder or hub id, else
    the OpenAI CLIP BPE (shipped in harness/assets). ``clip``: that BPE. ``word``: a word-level
    tokenizer built from the training ``captions`` for a random-init encoder; with
    ``encoder.pretrained`` it means ``auto`` (a vocabulary built from the captions cannot index
    a pretrained token table; synthvtt's default is ``word``). Anything else: a BPE .txt.gz or
    HF folder.
    """
    spec = config["data"]["tokenizer"]
    pretrained = config["encoder"]["pretrained"]
    if spec == "auto" or (spec == "word" and pretrained):
        is_hf = pretrained and not is_openai_file(pretrained)
        spec = pretrained if is_hf else "clip"
    if spec == "clip":
        return build_tokenizer(CLIP_BPE)
    if spec == "word":
        return build_tokenizer("word", corpus=captions)
    return build_tokenizer(spec)


def clip_source(config: Config, dataset_folder: Path, videos: Path) -> ClipSource:
    """The clip loader for this run's sampling settings. It reads the dataset's frame cache for
    these settings: with ``data.frame_cache`` ``auto`` the cache of the ``videos`` folder is
    built first unless it exists (one decode per video for the whole run, and for every method
    of a comparison), with ``read`` only one ``run.py --prepare`` built; ``off`` decodes."""
    data = config["data"]
    check_choice("data.on_bad_video", data["on_bad_video"], BAD_VIDEO_POLICIES)
    settings = config_settings(data)
    cache_dir = cache_dir_for(dataset_folder, **settings)
    mode = data["frame_cache"]
    if mode == "auto":
        workers = worker_count(data["num_workers"])
        use_cache = on_main_process(
            lambda: cache_on_first_use(videos, cache_dir, settings, workers, data["on_bad_video"])
        )
    else:
        use_cache = mode == "read" and cache_dir.is_dir()
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
    words = config["data"]["max_words"]
    # A random-init text tower gets CLIP's 77 positions (the temporal modules copy that table); a
    # checkpoint brings its own, which must hold the run's words.
    positions = words if enc["pretrained"] else max(77, words)
    clip = build_clip(
        enc["pretrained"],
        size=enc["size"],
        image_size=config["data"]["image_size"],
        patch_size=enc["patch_size"],
        vocab_size=tokenizer.vocab_size,
        max_text_positions=positions,
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
        **loader_options(config["data"]["num_workers"], persistent=True),
    )


def method_settings(config: Config) -> dict[str, Any]:
    """The run's ``method`` section without its name: the method's keyword arguments."""
    return {k: v for k, v in config["method"].items() if k != "name"}


class VideoTask(Task):
    """What the three tasks share: the dataset entry and its clip loader (:meth:`load_dataset`),
    usable data under ``data.on_bad_video`` (:meth:`usable`), the run's method
    (:meth:`build_model` with the task's :meth:`make_method`) and the common protocol facts."""

    tokenizer: TextTokenizer
    saved_tokenizer: TextTokenizer | None = None

    def use_checkpoint(self, folder: Path) -> None:
        self.saved_tokenizer = load_tokenizer(folder / TOKENIZER_FILE)

    def save_with_checkpoint(self, folder: Path) -> None:
        self.tokenizer.save(folder / TOKENIZER_FILE)

    def text_tokenizer(self, texts: Sequence[str]) -> TextTokenizer:
        """The run's tokenizer: the one saved with the checkpoint being resumed or evaluated
        (its ids must not follow later edits of the data), else :func:`build_text_tokenizer` of
        the training ``texts``."""
        return self.saved_tokenizer or build_text_tokenizer(self.config, texts)

    def load_dataset(self, protocol: type | None = None, lacking: str = "") -> Any:
        """The dataset entry of ``config.dataset``, built; sets ``source`` (its clip loader).
        With ``protocol`` (a runtime-checkable Protocol), an entry that does not implement it is
        a one-line ConfigError: "dataset NAME ``lacking``". A ``data.root`` left null is set to
        the folder the entry chose, so that the run's record says where its data was."""
        self.dataset = DATASETS.get(self.config["dataset"])(self.config)
        if protocol is not None and not isinstance(self.dataset, protocol):
            raise ConfigError(f"dataset {self.config['dataset']!r} {lacking}")
        if self.config["data"]["root"] is None and hasattr(self.dataset, "root"):
            self.config["data"]["root"] = str(Path(self.dataset.root).resolve())
        videos = getattr(self.dataset, "video_root", None) or Path(self.dataset.folder) / "videos"
        self.source = clip_source(self.config, self.dataset.folder, videos)
        self.skipped: list[dict[str, str]] = []
        return self.dataset

    def usable(self, pairs: VideoTextPairs) -> VideoTextPairs:
        """``pairs`` without unreadable videos under ``data.on_bad_video=skip`` (else as is);
        the skipped files are added to ``skipped``."""
        kept, skipped = drop_unreadable(self.config, pairs, self.source)
        self.skipped += skipped
        return kept

    def build_model(self) -> nn.Module:
        """The registered method ``method.name`` of this task on the shared encoder, with the
        run's ``train.reference_world_size``."""
        encoder = build_encoder_for(self.config, self.tokenizer)
        method_cls = METHODS.get(self.config["task"], self.config["method"]["name"])
        model = self.make_method(method_cls, encoder)
        model.reference_world_size = self.config["train"]["reference_world_size"]
        return model

    def make_method(self, method_cls: type[nn.Module], encoder: VideoTextEncoder) -> nn.Module:
        """``method_cls`` built on ``encoder`` with the arguments this task gives its methods."""
        raise NotImplementedError

    def after_step(self, model: nn.Module) -> None:
        model.clamp_logit_scale()

    def skipped_notes(self) -> list[str]:
        """The console line about skipped videos, if any were."""
        if not self.skipped:
            return []
        return [f"skipped {len(self.skipped)} unreadable videos (listed in results.json)"]

    def describe_clips(self) -> dict[str, Any]:
        """Protocol facts every task records: split, frames, rate, resolution, the frame rule
        (``data.sampling``, resize, slice_framepos where it acts), frame cache and encoder."""
        data = self.config["data"]
        return {
            "split": self.config["eval"]["split"],
            "max_frames": data["max_frames"],
            "video_framerate": data["video_framerate"],
            "image_size": data["image_size"],
            "frame_sampling": data["sampling"],
            "resize": data["resize"],
            "slice_framepos": data["slice_framepos"] if data["sampling"] == "cv2_grid" else None,
            "frame_cache": str(self.source.cache.cache_dir) if self.source.cache else None,
            "encoder": self.config["encoder"]["pretrained"]
            or f"random:{self.config['encoder']['size']}",
        }
