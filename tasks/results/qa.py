"""The result spec of video question answering: accuracy over all questions and over the
questions whose answer is in the vocabulary, both with bootstrap intervals.

Sample rows (written by :mod:`tasks.qa`): ``question_id``, ``correct`` (bool), ``in_vocab``
(bool), optionally ``video_id`` and ``question``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.result_spec import (
    Bounds,
    Column,
    Count,
    PerQuery,
    QueryData,
    ResultSpec,
    require_field,
)

PERCENT = Bounds(0.0, 100.0)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _check(row: Mapping[str, Any], line: int, num_samples: Mapping[str, Any]) -> None:
    require_field(row, line, "question_id", lambda v: v is not None, "set")
    require_field(row, line, "correct", _is_bool, "true or false")
    require_field(row, line, "in_vocab", _is_bool, "true or false")


def _per_query(samples: Sequence[Mapping[str, Any]], postprocessing: str | None) -> QueryData:
    """100 per correct question (an answer outside the vocabulary is wrong), over all questions
    and over the in-vocabulary ones (left out when there is none)."""
    keys = tuple((r["question_id"], r.get("video_id"), r.get("question")) for r in samples)
    correct = np.array([r["correct"] and r["in_vocab"] for r in samples], dtype=np.float64) * 100
    in_vocab = np.array([r["in_vocab"] for r in samples], dtype=bool)
    columns = {"accuracy": PerQuery(keys, correct)}
    if in_vocab.any():
        kept = tuple(k for k, inside in zip(keys, in_vocab, strict=True) if inside)
        columns["accuracy_in_vocab"] = PerQuery(kept, correct[in_vocab])
    return QueryData(columns, {})


SPEC = ResultSpec(
    title="Video question answering",
    columns=(
        Column("accuracy", "accuracy", ("accuracy",), ci=True, bounds=PERCENT),
        Column(
            "accuracy_in_vocab",
            "accuracy (in-vocab)",
            ("accuracy_in_vocab",),
            required=False,
            ci=True,
            bounds=PERCENT,
        ),
    ),
    footnotes=(
        "accuracy: percentage of all test questions answered exactly; a question whose answer "
        "is outside the answer vocabulary counts as wrong (the standard MSRVTT-QA protocol). "
        "accuracy (in-vocab): over the questions whose answer is in the vocabulary only (the "
        "EMCL-QA reference code's number, METHODS §4.9). Reported accuracies sit in the "
        "accuracy column because their sources do not say which convention they use.",
    ),
    counted=(Count("questions"),),
    check_sample=_check,
    per_query=_per_query,
)
