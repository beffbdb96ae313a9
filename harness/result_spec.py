"""What a task tells the leaderboard about its results, and nothing else: its metric columns
(with the values each can take) and footnotes, how its ``samples.jsonl`` rows are checked and
counted, and the per-query values behind bootstrap intervals, paired p-values and R@K curves.

A task registers one :class:`ResultSpec` as a lazy reference
(``TASKS.register(name, ..., results="module:SPEC")``); the leaderboard finds it through
``TASKS.entry(name).result_spec()``. This module stays light (numpy, no torch) so that the
leaderboard never loads a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.schema import SAMPLES_FILE


class SampleError(UserError, ValueError):
    """A samples.jsonl row that does not fit its task; the message is one line."""


@dataclass(frozen=True)
class Bounds:
    """The values a metric can take: ``low <= value <= high`` (None: unbounded), and at most the
    record's ``num_samples[at_most]`` when named (a rank never exceeds its gallery). Every metric
    must also be finite, bounded or not."""

    low: float | None = None
    high: float | None = None
    at_most: str | None = None

    def problem(self, value: float, num_samples: Mapping[str, Any]) -> str | None:
        """Why ``value`` is impossible, in words completing "must be ...", or None when it is
        possible; a count named by ``at_most`` that the record lacks bounds nothing."""
        if not math.isfinite(value):
            return "a finite number"
        below = self.low is not None and value < self.low
        if below or (self.high is not None and value > self.high):
            if self.low is None or self.high is None:
                return f">= {self.low:g}" if below else f"<= {self.high:g}"
            return f"between {self.low:g} and {self.high:g}"
        cap = num_samples.get(self.at_most) if self.at_most else None
        if is_number(cap) and value > cap:
            return f"at most num_samples.{self.at_most} ({cap})"
        return None


@dataclass(frozen=True)
class Column:
    """One metric column. ``key`` names it in rows and in the CSV header; ``path`` is where its
    value sits in a run's ``metrics`` (and in a reported entry's ``metrics``)."""

    key: str
    header: str
    path: tuple[str, ...]
    required: bool = True  # a run record without it is skipped
    ci: bool = False  # bootstrap interval over per-query values
    p_value: bool = False  # paired bootstrap p-value against the reference run
    higher_is_better: bool = True  # False for ranks (MdR, MnR): lower is better
    # a mean rank: a reported entry with ``mean_rank_label: true`` marks it as labelled
    # "Mean Rank" by its source although it may be a median rank
    mean_rank: bool = False
    bounds: Bounds = field(default_factory=Bounds)  # a run whose value is outside is skipped


@dataclass(frozen=True)
class PerQuery:
    """``values`` (n,): each query's contribution to a column's score (the score is their
    ``statistic``: ``"mean"``, ``"median"`` or ``"median_lower"``, see
    :mod:`harness.leaderboard.bootstrap`); ``keys``: each query's identity, equal across runs
    evaluated on the same queries; ``clusters`` (n,): the id of each query's cluster of
    dependent queries (e.g. the video of a sentence on a multi-sentence dataset), which the
    bootstrap resamples whole, or None when the queries are independent draws."""

    keys: tuple
    values: np.ndarray
    clusters: np.ndarray | None = None
    statistic: str = "mean"


@dataclass(frozen=True)
class QueryData:
    """``columns``: column key -> :class:`PerQuery`; ``ranks``: panel name (e.g. a retrieval
    direction) -> per-query ranks counted from 1, for R@K curves (empty when the task has
    none)."""

    columns: dict[str, PerQuery]
    ranks: dict[str, np.ndarray]


@dataclass(frozen=True)
class Count:
    """Sample rows whose number must equal ``num_samples[key]`` of the run's results.json: the
    rows whose ``field`` equals ``value``, or every row when ``field`` is None."""

    key: str
    field: str | None = None
    value: Any = None

    def rows(self, samples: Sequence[Mapping[str, Any]]) -> int:
        """How many of the checked ``samples`` this count covers."""
        if self.field is None:
            return len(samples)
        return sum(row.get(self.field) == self.value for row in samples)

    def label(self) -> str:
        """The counted rows in words, for error messages (``t2v rows``, ``rows``)."""
        return "rows" if self.field is None else f"{self.value} rows"


# (row, 1-based line number, the record's num_samples) -> None; raises SampleError for a row
# that does not fit (num_samples bounds values such as ranks; a count may be missing).
SampleCheck = Callable[[Mapping[str, Any], int, Mapping[str, Any]], None]
# (checked non-empty samples, post-processing name or None for the run's own metrics)
PerQueryValues = Callable[[Sequence[Mapping[str, Any]], str | None], QueryData]
# (record, post-processing name) -> its settings, or None when the record does not say
UnrecordedSettings = Callable[[Mapping[str, Any], str], Mapping[str, Any] | None]


@dataclass(frozen=True)
class ResultSpec:
    """The light description of one task's results.

    ``title``: the table title (``<title> on <dataset>``); ``columns``: every metric column, in
    display order; ``footnotes``: lines under every table of the task; ``counted``: the
    row counts that must agree with the record's ``num_samples``; ``check_sample``: checks one
    samples.jsonl row (against the record's ``num_samples``); ``per_query``: the per-query
    values of checked samples for a post-processing name (``metrics_postprocessed`` key) or
    None; ``rank_plot``: whether
    :attr:`QueryData.ranks` can be drawn as R@K curves; ``reference_note``: a sentence for the
    leaderboard index naming the run p-values are computed against (empty when no column has a
    p-value); ``mean_rank_note``: the footnote of a value its source labels "Mean Rank" (shown
    after the mark, for the ``mean_rank`` columns); ``postprocessings``: the label of each
    post-processed metric set, shown in its row group's header; ``unrecorded_settings``: the
    settings of a post-processing (record, name) for records written before results.json's
    ``protocol.postprocess`` stated them (None: not known).
    """

    title: str
    columns: tuple[Column, ...]
    footnotes: tuple[str, ...]
    counted: tuple[Count, ...]
    check_sample: SampleCheck
    per_query: PerQueryValues
    rank_plot: bool = False
    reference_note: str = ""
    mean_rank_note: str = ""
    # post-processing name (a metrics_postprocessed key) -> its label in the row group header
    postprocessings: Mapping[str, str] = field(default_factory=dict)
    unrecorded_settings: UnrecordedSettings | None = None

    def __post_init__(self) -> None:
        keys = [column.key for column in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"result spec {self.title!r} has duplicate column keys: {keys}")
        if any(column.mean_rank for column in self.columns) and not self.mean_rank_note:
            raise ValueError(f"result spec {self.title!r} has mean-rank columns but no note")


def metric_value(metrics: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` in nested ``metrics``; None when a key is missing."""
    value: Any = metrics
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def is_number(value: Any) -> bool:
    """True for int and float values (bool excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def require_field(
    row: Mapping[str, Any], line: int, key: str, ok: Callable[[Any], bool], what: str
) -> None:
    """Raise :class:`SampleError` (naming samples.jsonl ``line``) unless ``row`` has ``key``
    and ``ok(row[key])`` holds; ``what`` says what the value must be."""
    if key not in row:
        raise SampleError(f"{SAMPLES_FILE} line {line}: missing field {key!r}")
    if not ok(row[key]):
        raise SampleError(f"{SAMPLES_FILE} line {line}: field {key!r} must be {what}")
