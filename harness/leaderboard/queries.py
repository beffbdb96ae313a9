"""Per-query values of a run, read from its ``samples.jsonl`` through its task's result spec:
the rows are checked and counted against results.json, then turned into the numbers whose mean
is a column's score (for bootstrap intervals and paired tests) and the ranks behind R@K curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.result_spec import QueryData, ResultSpec, SampleError, is_number
from harness.schema import RESULTS_FILE, SAMPLES_FILE, SampleRow


def check_samples(spec: ResultSpec, samples: Sequence[SampleRow], record: Mapping) -> None:
    """Raise :class:`SampleError` unless every row of ``samples`` fits ``spec`` and the record's
    ``num_samples`` (e.g. a rank within its gallery), and the row counts agree with them."""
    counts = record.get("num_samples") or {}
    for line, row in enumerate(samples, start=1):
        if not isinstance(row, Mapping):
            raise SampleError(f"{SAMPLES_FILE} line {line} is not a JSON object")
        spec.check_sample(row, line, counts)
    for count in spec.counted:
        rows, expected = count.rows(samples), counts.get(count.key)
        if is_number(expected) and rows != expected:
            raise SampleError(
                f"{SAMPLES_FILE} has {rows} {count.label()} but {RESULTS_FILE} "
                f"num_samples.{count.key} says {expected}"
            )


def query_data(
    spec: ResultSpec, samples: Sequence[Mapping[str, Any]], postprocessing: str | None
) -> QueryData:
    """Per-query values of checked ``samples``; ``postprocessing`` names the metrics_postprocessed
    entry or is None for the run's own metrics. A column whose values are not in the samples
    (e.g. an older run) is left out."""
    if not samples:
        return QueryData({}, {})
    return spec.per_query(samples, postprocessing)
