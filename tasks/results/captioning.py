"""The result spec of video captioning: BLEU-4, METEOR, ROUGE-L and CIDEr, with bootstrap
intervals for the two that are means of per-video scores.

Sample rows (written by :mod:`tasks.captioning`): ``video_id`` (str), optionally ``scores``
``{"ROUGE-L", "CIDEr"}`` (percent).
"""

from __future__ import annotations

import math
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
    is_number,
    require_field,
)

PER_VIDEO_KEYS = ("ROUGE-L", "CIDEr")
PERCENT = Bounds(0.0, 100.0)
# CIDEr-D averages, over n = 1..4, clipped cosine similarities times a length penalty (each at
# most 1), times 10: at most 1000 in percent.
CIDER = Bounds(0.0, 1000.0)


def _is_score(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def _check(row: Mapping[str, Any], line: int, num_samples: Mapping[str, Any]) -> None:
    require_field(row, line, "video_id", lambda v: isinstance(v, str), "a string")
    if "scores" in row:
        require_field(
            row,
            line,
            "scores",
            lambda v: isinstance(v, Mapping) and all(_is_score(x) for x in v.values()),
            "a mapping of metric -> finite number",
        )


def _per_query(samples: Sequence[Mapping[str, Any]], postprocessing: str | None) -> QueryData:
    """Each video's own ROUGE-L and CIDEr; a metric some row lacks is left out."""
    keys = tuple(r["video_id"] for r in samples)
    columns = {}
    for metric in PER_VIDEO_KEYS:
        if all(metric in r.get("scores", {}) for r in samples):
            values = np.array([r["scores"][metric] for r in samples], dtype=np.float64)
            columns[metric] = PerQuery(keys, values)
    return QueryData(columns, {})


SPEC = ResultSpec(
    title="Video captioning",
    columns=(
        Column("BLEU-4", "BLEU-4", ("BLEU-4",), bounds=PERCENT),
        Column("METEOR", "METEOR", ("METEOR",), bounds=PERCENT),
        Column("ROUGE-L", "ROUGE-L", ("ROUGE-L",), ci=True, bounds=PERCENT),
        Column("CIDEr", "CIDEr", ("CIDEr",), ci=True, bounds=CIDER),
    ),
    footnotes=(
        "pycocoevalcap scores in percent (CIDEr is CIDEr-D). BLEU-4 and METEOR are "
        "corpus-level statistics, not means of per-video scores, so they get no bootstrap "
        "interval; ROUGE-L and CIDEr are means of per-video scores and get one. CIDEr-D's "
        "document frequencies come from the whole evaluated set: the bootstrap resamples the "
        "per-video scores computed with them and does not recompute the frequencies.",
    ),
    counted=(Count("videos"),),
    check_sample=_check,
    per_query=_per_query,
)
