"""The one definition of a run record, ``results.json``, and of its ``samples.jsonl`` rows.

:class:`ResultsRecord` lists every field with its type; the engine writes each of them (the
optional ones when the evaluation has them) and checks the record with :func:`check_record`
before writing it; the leaderboard checks what it reads with the same function, requiring only
:data:`CORE_FIELDS` because records written by hand or by older versions may lack the rest.
"""

# No ``from __future__ import annotations`` here: TypedDict only sees NotRequired[...] in
# evaluated annotations (Python 3.11), and check_record reads the types at run time.
import types
from collections.abc import Collection, Mapping
from typing import Any, NotRequired, TypedDict, Union, get_args, get_origin, get_type_hints

# The optional fields: written when the evaluation produced them.
METRICS_POSTPROCESSED = "metrics_postprocessed"  # post-processing name -> metrics like ``metrics``
BASELINES = "baselines"  # trivial predictor name -> its metrics (and what it predicts)
SKIPPED_VIDEOS = "skipped_videos"  # the unreadable videos left out of the evaluation
INTEGRITY = "integrity"  # checks measured at evaluation time (query independence, ...)
OPTIONAL_FIELDS = (METRICS_POSTPROCESSED, BASELINES, SKIPPED_VIDEOS, INTEGRITY)

# ``training`` of an evaluation of the model as built from its pretrained encoder, no training
ZERO_SHOT = "zero-shot"

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
# One samples.jsonl line: one evaluated query; its fields are the task's (its ResultSpec checks
# them).
SampleRow = dict[str, Any]


class ResultsRecord(TypedDict):
    """The fields of ``results.json``, in the order the engine writes them."""

    task: str
    dataset: str
    method: str
    metrics: dict[str, Any]  # the task's metrics, nested as its result spec's column paths say
    metrics_postprocessed: NotRequired[dict[str, Any]]
    baselines: NotRequired[dict[str, Any]]
    num_samples: dict[str, int]  # evaluated items by kind (texts, videos, questions, ...)
    protocol: dict[str, Any]  # the task's describe(): split, frames, resolution, ...
    seed: int
    config: dict[str, Any]  # the fully resolved config
    # epochs and steps, or the checkpoint (folder or reference file) an eval-only run loaded,
    # or ZERO_SHOT
    training: dict[str, Any] | str
    selection: NotRequired[dict[str, Any]]  # training runs: the evaluated epoch and how chosen
    num_processes: int
    # the training batch (harness/batching.py): processes and the batch of each, the gradient
    # cache's chunk (null: none), the global batch, the negatives of each query's contrastive
    # term (null: none), the gradient convention and the reference process count it reproduces
    world_size: int
    per_device_batch: int
    micro_batch: int | None
    global_batch: int
    negatives_per_query: int | None
    gather_grad: str
    reference_world_size: int | None
    mixed_precision: str
    git_commit: str | None
    versions: dict[str, str]
    timings: dict[str, float]
    notes: list[str]
    skipped_videos: NotRequired[list[Any]]
    integrity: NotRequired[dict[str, Any]]


FIELDS: dict[str, Any] = get_type_hints(ResultsRecord)
REQUIRED_FIELDS = tuple(name for name in FIELDS if name in ResultsRecord.__required_keys__)
# What any reader may rely on: which run, its numbers and the protocol they were measured under.
CORE_FIELDS = ("task", "dataset", "method", "metrics", "protocol", "config")


class RecordError(ValueError):
    """A run record that breaks the schema; the message is one line naming the field."""


def check_record(record: Any, required: Collection[str] = REQUIRED_FIELDS) -> None:
    """Raise :class:`RecordError` unless ``record`` is a mapping that has every field of
    ``required`` and whose schema fields all have their type (nested values are the task's
    and are not checked here); fields outside the schema are left alone."""
    if not isinstance(record, Mapping):
        raise RecordError("not a JSON object")
    for name, annotation in FIELDS.items():
        if name not in record:
            if name in required:
                raise RecordError(f"missing field {name!r}")
            continue
        if not _has_type(record[name], annotation):
            raise RecordError(f"field {name!r} must be {_describe(annotation)}")


def _has_type(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is a JSON value of ``annotation``, looking only at the outer type."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_has_type(value, arg) for arg in get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is int:  # JSON true/false load as bool, a subclass of int
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, get_origin(annotation) or annotation)


_NAMES = {str: "a string", int: "an integer", dict: "a JSON object", list: "a JSON array"}


def _describe(annotation: Any) -> str:
    """``annotation`` in words: ``a string``, ``a JSON object``, ``a string or null``."""
    if get_origin(annotation) in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in get_args(annotation))
    if annotation is type(None):
        return "null"
    return _NAMES[get_origin(annotation) or annotation]
