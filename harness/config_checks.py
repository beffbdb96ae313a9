"""Range and choice rules of config keys, checked when a config is resolved.

Layering already checks that a key exists and that its value has the default's type; a rule says
what the type cannot: that a count is positive, a rate within [0, 1], a mode one of a few words.
Each rule names one dotted key. The harness declares the rules of the keys it reads
(:data:`HARNESS`: the ``data``, ``train``, ``eval`` and ``encoder`` sections of base.yaml); a
registry entry declares the rules of the keys it owns in a light module
(``checks="module:RULES"``), so that :func:`harness.config.resolve_config` checks every key
before anything is generated, loaded or trained on, without importing torch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.config import AUTO, Config, ConfigError, get_key

# The words of the harness's mode keys. The modules that act on them (harness.data, .optim,
# .distributed, .encoder, .metrics) import torch, so the words are spelled here, and
# tests/test_config.py checks that they equal those modules' constants.
BAD_VIDEO_POLICIES = ("error", "skip")
FRAME_CACHE_MODES = ("auto", "read", "off")
ENCODER_SIZES = ("tiny", "base")
OPTIMIZERS = ("adamw", "bertadam")
GATHER_MODES = ("global", "local", "sum")
TIE_RULES = ("honest", "reference")
SELECT_ON = ("last", "val", "test")  # harness.selection.SELECT_ON
AGGREGATORS = ("meanP", "seqLSTM", "seqTransf")  # temporal modules over frame features
# data.sampling also takes "reference", which the config resolves to the method's own rule
# (data.reference_sampling); the rules themselves are the entries of harness.registry.FRAME_RULES.
REFERENCE_SAMPLING = "reference"
RESIZE_MODES = ("torch", "pil")
SLICE_POSITIONS = (0, 1, 2)  # slice_framepos: head, tail, uniform


class Rule(ABC):
    """What the value of config key ``key`` may be."""

    key: str

    @abstractmethod
    def check(self, config: Config) -> None:
        """Raise a one-line :class:`ConfigError` naming the key, its value and what is allowed,
        unless the value of ``key`` in ``config`` is allowed."""


class ValueRule(Rule):
    """A rule on the value alone."""

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is allowed."""

    @abstractmethod
    def allowed(self) -> str:
        """The allowed values in words, completing "must be ..."."""

    def check(self, config: Config) -> None:
        value = get_key(config, self.key)
        if not self.accepts(value):
            raise ConfigError(f"config key {self.key!r} must be {self.allowed()}, got {value!r}")


@dataclass(frozen=True)
class IntRange(ValueRule):
    """An integer with ``low <= value`` (and ``<= high`` when given); null too when
    ``optional`` (a key whose null means "derived from another")."""

    key: str
    low: int = 1
    high: int | None = None
    optional: bool = False
    auto: bool = False  # the word "auto" too: the harness derives the value

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if value == AUTO:
            return self.auto
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return self.low <= value and (self.high is None or value <= self.high)

    def allowed(self) -> str:
        if self.high is not None:
            words = f"an integer from {self.low} to {self.high}"
        else:
            words = {1: "a positive integer", 0: "a non-negative integer"}.get(
                self.low, f"an integer >= {self.low}"
            )
        if self.auto:
            words = f"{AUTO} or {words}"
        return f"null or {words}" if self.optional else words


@dataclass(frozen=True)
class FloatRange(ValueRule):
    """A finite number within ``low``..``high`` (either may be None: unbounded); ``open_low`` /
    ``open_high`` exclude that end."""

    key: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value):  # nan and inf pass no comparison usefully
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def allowed(self) -> str:
        if self.low is None and self.high is None:
            return "a finite number"
        if self.high is None:
            if self.low == 0 and self.open_low:
                return "a positive number"
            return f"a number {'>' if self.open_low else '>='} {self.low:g}"
        if self.low is None:
            return f"a number {'<' if self.open_high else '<='} {self.high:g}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class Choice(ValueRule):
    """One of ``options``."""

    key: str
    options: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        # 1 == True in Python: a flag must not pass for a numbered choice, nor the reverse
        return any(value == o and type(value) is type(o) for o in self.options)

    def allowed(self) -> str:
        return f"one of {', '.join(map(str, self.options))}"


@dataclass(frozen=True)
class SubsetOf(ValueRule):
    """A list of distinct ``options``, in any order (empty allowed)."""

    key: str
    options: tuple[str, ...]

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, list)
            and all(isinstance(v, str) and v in self.options for v in value)
            and len(set(value)) == len(value)
        )

    def allowed(self) -> str:
        return f"a list of distinct names out of {', '.join(self.options)}"


@dataclass(frozen=True)
class Text(ValueRule):
    """A non-empty string: a word the harness knows or a path."""

    key: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value.strip())

    def allowed(self) -> str:
        return "a word or a path"


@dataclass(frozen=True)
class KeyOf(Rule):
    """One of the keys of the mapping at config key ``table`` (e.g. a split name of a dataset
    whose yaml maps split names to files)."""

    key: str
    table: str

    def check(self, config: Config) -> None:
        Choice(self.key, tuple(get_key(config, self.table))).check(config)


def subset_of(key: str, *options: str) -> SubsetOf:
    """A list of distinct words out of ``options``."""
    return SubsetOf(key, options)


@dataclass(frozen=True)
class Divides(Rule):
    """When set, the value of ``key`` divides the value of ``multiple`` (e.g. a process count
    and the global batch it splits)."""

    key: str
    multiple: str

    def check(self, config: Config) -> None:
        value, total = get_key(config, self.key), get_key(config, self.multiple)
        if value is not None and total % value:
            raise ConfigError(
                f"config key {self.key!r} must be a divisor of {self.multiple} ({total}), "
                f"got {value!r}"
            )


@dataclass(frozen=True)
class Unsupported(Rule):
    """A key that must stay null (unset) where its owner cannot honour it; ``why`` completes
    "must be null ..." (e.g. "for captioning (its loss has no in-batch negatives)")."""

    key: str
    why: str

    def check(self, config: Config) -> None:
        value = get_key(config, self.key)
        if value is not None:
            raise ConfigError(f"config key {self.key!r} must be null {self.why}, got {value!r}")


def positive_int(key: str, optional: bool = False) -> IntRange:
    """An integer >= 1 (or null when ``optional``): counts, sizes, depths."""
    return IntRange(key, 1, optional=optional)


def non_negative_int(key: str) -> IntRange:
    """An integer >= 0."""
    return IntRange(key, 0)


def positive(key: str) -> FloatRange:
    """A finite number > 0: temperatures, scales, anything divided by."""
    return FloatRange(key, 0.0, open_low=True)


def non_negative(key: str) -> FloatRange:
    """A finite number >= 0: rates, weights of loss terms."""
    return FloatRange(key, 0.0)


def fraction(key: str) -> FloatRange:
    """A number in [0, 1]: proportions, momenta."""
    return FloatRange(key, 0.0, 1.0)


def dropout(key: str) -> FloatRange:
    """A dropout probability, in [0, 1) (1 would zero every activation)."""
    return FloatRange(key, 0.0, 1.0, open_high=True)


def finite(key: str) -> FloatRange:
    """Any finite number (a float key without a range still refuses nan and inf)."""
    return FloatRange(key)


def one_of(key: str, *options: Any) -> Choice:
    """One of ``options``."""
    return Choice(key, options)


@dataclass(frozen=True)
class FrameRuleName(Rule):
    """The name of a registered frame rule (``harness.registry.FRAME_RULES``), or also
    ``reference`` when ``reference_ok``."""

    key: str
    reference_ok: bool = False

    def check(self, config: Config) -> None:
        from harness.registry import FRAME_RULES  # light; imported here as config.py does

        words = (*FRAME_RULES.names(), *((REFERENCE_SAMPLING,) if self.reference_ok else ()))
        Choice(self.key, tuple(words)).check(config)


@dataclass(frozen=True)
class SliceNeedsGrid(Rule):
    """``data.slice_framepos`` acts only under ``data.sampling=cv2_grid`` (the decord and hmmc
    readers subsample uniformly, always): another value with another rule would be ignored."""

    key: str = "data.slice_framepos"

    def check(self, config: Config) -> None:
        position, sampling = get_key(config, self.key), get_key(config, "data.sampling")
        if position != 2 and sampling != "cv2_grid":
            raise ConfigError(
                f"config key {self.key!r} is {position!r}, but only data.sampling=cv2_grid "
                f"slices (data.sampling is {sampling!r}): drop it or set data.sampling=cv2_grid"
            )


@dataclass(frozen=True)
class WholeRateForGrid(Rule):
    """Under ``data.sampling=cv2_grid`` the frame rate is a whole number of frames per second
    (the OpenCV reader's ``--feature_framerate`` is an integer flag)."""

    key: str = "data.video_framerate"

    def check(self, config: Config) -> None:
        rate = get_key(config, self.key)
        if get_key(config, "data.sampling") == "cv2_grid" and rate != int(rate):
            raise ConfigError(
                f"config key {self.key!r} must be a whole number under data.sampling=cv2_grid, "
                f"got {rate!r}"
            )


HARNESS: tuple[Rule, ...] = (
    IntRange("seed", 0, 2**32 - 1),  # numpy's seed range
    positive_int("data.max_words"),
    positive_int("data.max_frames"),
    non_negative("data.video_framerate"),  # 0 = every frame
    positive_int("data.image_size"),
    FrameRuleName("data.reference_sampling"),  # before data.sampling: it may hold it
    FrameRuleName("data.sampling", reference_ok=True),
    one_of("data.resize", *RESIZE_MODES),
    one_of("data.slice_framepos", *SLICE_POSITIONS),
    SliceNeedsGrid(),
    WholeRateForGrid(),
    one_of("data.on_bad_video", *BAD_VIDEO_POLICIES),
    one_of("data.frame_cache", *FRAME_CACHE_MODES),
    IntRange("data.num_workers", 0, auto=True),
    Text("data.tokenizer"),  # auto | clip | word | a BPE file or HF folder
    one_of("encoder.size", *ENCODER_SIZES),
    positive_int("encoder.patch_size"),
    positive_int("train.epochs"),
    positive_int("train.batch_size"),
    non_negative("train.lr"),
    non_negative("train.coef_lr"),
    non_negative("train.weight_decay"),
    fraction("train.warmup_proportion"),
    one_of("train.optimizer", *OPTIMIZERS),
    positive("train.grad_clip"),  # a max norm of 0 would zero every gradient
    positive_int("train.grad_accum"),
    one_of("train.gather_grad", *GATHER_MODES),
    positive_int("train.micro_batch", optional=True),  # null: the whole batch in one chunk
    positive_int("train.reference_world_size", optional=True),
    Divides("train.reference_world_size", "train.batch_size"),
    positive_int("train.checkpoint_every"),  # optimizer steps between checkpoints
    positive_int("train.keep_checkpoints"),  # --resume needs at least the newest
    positive_int("train.log_every"),  # optimizer steps between loss read-backs
    positive_int("eval.batch_size"),
    positive_int("eval.block_size"),
    one_of("eval.ties", *TIE_RULES),
    one_of("eval.select_on", *SELECT_ON),
)


def check_config(config: Config, rules: Iterable[Rule]) -> None:
    """Check ``config`` against ``rules`` in order; the first value a rule refuses raises a
    one-line :class:`ConfigError`."""
    for rule in rules:
        rule.check(config)
