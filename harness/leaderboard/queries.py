"""Per-query values of a run, read from its ``samples.jsonl``: the numbers whose mean is a
column's score (for bootstrap intervals and paired tests) and, for retrieval, the ranks behind
the R@K curves.

Sample rows by task (written by tasks/*.py):
- retrieval: ``direction`` ("t2v" | "v2t"), ``query`` (int), ``rank`` (int >= 1), optionally
  ``rank_<postprocessing>`` (e.g. ``rank_inverted_softmax``), ``video_id``, ``caption``;
- qa: ``question_id``, ``correct`` (bool), ``in_vocab`` (bool), ``video_id``, ``question``;
- captioning: ``video_id``, optionally ``scores`` ``{"ROUGE-L", "CIDEr"}`` (percent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.leaderboard.columns import is_number

DIRECTIONS = ("t2v", "v2t")
PER_VIDEO_CAPTION_KEYS = ("ROUGE-L", "CIDEr")


class SampleError(ValueError):
    """A samples.jsonl row that does not fit its task; the message is one line."""


@dataclass(frozen=True)
class PerQuery:
    """``values`` (n,): each query's contribution to a column's score (the score is their
    mean); ``keys``: each query's identity, equal across runs evaluated on the same queries."""

    keys: tuple
    values: np.ndarray


@dataclass(frozen=True)
class QueryData:
    """``columns``: column key -> :class:`PerQuery`; ``ranks``: direction -> per-query ranks
    (retrieval only)."""

    columns: dict[str, PerQuery]
    ranks: dict[str, np.ndarray]


def check_samples(task: str, samples: Sequence[Mapping[str, Any]], record: Mapping) -> None:
    """Raise :class:`SampleError` unless every row of ``samples`` fits ``task`` and the row
    counts agree with the record's ``num_samples``."""
    for line, row in enumerate(samples, start=1):
        if not isinstance(row, Mapping):
            raise SampleError(f"samples.jsonl line {line} is not a JSON object")
        _CHECKS[task](row, line)
    counts = record.get("num_samples") or {}
    for direction, key in _COUNTED[task]:
        rows = [r for r in samples if direction is None or r["direction"] == direction]
        expected = counts.get(key)
        if is_number(expected) and len(rows) != expected:
            what = f"{direction} rows" if direction else "rows"
            raise SampleError(
                f"samples.jsonl has {len(rows)} {what} but results.json num_samples.{key} "
                f"says {expected}"
            )


def query_data(
    task: str, samples: Sequence[Mapping[str, Any]], postprocessing: str | None
) -> QueryData:
    """Per-query values of checked ``samples``; ``postprocessing`` names the metrics_postprocessed
    entry (retrieval ranks from ``rank_<postprocessing>``) or is None for the run's own metrics.
    A column whose values are not in the samples (e.g. an older run) is left out."""
    if not samples:
        return QueryData({}, {})
    return _EXTRACTORS[task](samples, postprocessing)


def _require(row: Mapping, line: int, key: str, ok: Callable[[Any], bool], what: str) -> None:
    if key not in row:
        raise SampleError(f"samples.jsonl line {line}: missing field {key!r}")
    if not ok(row[key]):
        raise SampleError(f"samples.jsonl line {line}: field {key!r} must be {what}")


def _is_rank(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_retrieval(row: Mapping, line: int) -> None:
    _require(row, line, "direction", lambda v: v in DIRECTIONS, "'t2v' or 'v2t'")
    _require(row, line, "query", lambda v: isinstance(v, int), "an integer")
    _require(row, line, "rank", _is_rank, "an integer >= 1")
    for key in row:
        if key.startswith("rank_"):
            _require(row, line, key, _is_rank, "an integer >= 1")


def _check_qa(row: Mapping, line: int) -> None:
    _require(row, line, "question_id", lambda v: v is not None, "set")
    _require(row, line, "correct", lambda v: isinstance(v, bool), "true or false")
    _require(row, line, "in_vocab", lambda v: isinstance(v, bool), "true or false")


def _check_captioning(row: Mapping, line: int) -> None:
    _require(row, line, "video_id", lambda v: isinstance(v, str), "a string")
    if "scores" in row:
        _require(
            row,
            line,
            "scores",
            lambda v: isinstance(v, Mapping) and all(is_number(x) for x in v.values()),
            "a mapping of metric -> number",
        )


def _retrieval(samples: Sequence[Mapping], postprocessing: str | None) -> QueryData:
    field = "rank" if postprocessing is None else f"rank_{postprocessing}"
    columns, ranks = {}, {}
    for direction in DIRECTIONS:
        rows = sorted((r for r in samples if r["direction"] == direction), key=lambda r: r["query"])
        if not rows or any(field not in r for r in rows):
            continue
        ranks[direction] = np.array([r[field] for r in rows], dtype=np.int64)
        keys = tuple((direction, r["query"], r.get("video_id"), r.get("caption")) for r in rows)
        columns[f"{direction} R@1"] = PerQuery(keys, 100.0 * (ranks[direction] <= 1))
    return QueryData(columns, ranks)


def _qa(samples: Sequence[Mapping], postprocessing: str | None) -> QueryData:
    keys = tuple((r["question_id"], r.get("video_id"), r.get("question")) for r in samples)
    correct = np.array([r["correct"] and r["in_vocab"] for r in samples], dtype=np.float64) * 100
    in_vocab = np.array([r["in_vocab"] for r in samples], dtype=bool)
    columns = {"accuracy": PerQuery(keys, correct)}
    if in_vocab.any():
        kept = tuple(k for k, inside in zip(keys, in_vocab, strict=True) if inside)
        columns["accuracy_in_vocab"] = PerQuery(kept, correct[in_vocab])
    return QueryData(columns, {})


def _captioning(samples: Sequence[Mapping], postprocessing: str | None) -> QueryData:
    keys = tuple(r["video_id"] for r in samples)
    columns = {}
    for metric in PER_VIDEO_CAPTION_KEYS:
        if all(metric in r.get("scores", {}) for r in samples):
            values = np.array([r["scores"][metric] for r in samples], dtype=np.float64)
            columns[metric] = PerQuery(keys, values)
    return QueryData(columns, {})


# Per task: the sample rows counted (a retrieval direction, or None for all) and the
# results.json num_samples key that must equal their number.
_COUNTED: dict[str, tuple[tuple[str | None, str], ...]] = {
    "retrieval": (("t2v", "texts"), ("v2t", "videos")),
    "qa": ((None, "questions"),),
    "captioning": ((None, "videos"),),
}
_CHECKS: dict[str, Callable[[Mapping, int], None]] = {
    "retrieval": _check_retrieval,
    "qa": _check_qa,
    "captioning": _check_captioning,
}
_EXTRACTORS: dict[str, Callable[[Sequence[Mapping], str | None], QueryData]] = {
    "retrieval": _retrieval,
    "qa": _qa,
    "captioning": _captioning,
}
