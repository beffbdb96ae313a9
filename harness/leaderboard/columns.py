"""What a leaderboard table shows per task: its metric columns, where each value sits in a run's
``metrics``, which get a bootstrap interval and a p-value, and the task's footnotes.

Task names are the ``task`` strings of run records and of reported.yaml; the columns follow each
field's convention (retrieval: R@1/5/10, MdR, MnR per direction; QA: accuracy; captioning:
BLEU-4, METEOR, ROUGE-L, CIDEr).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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


@dataclass(frozen=True)
class TaskColumns:
    """The columns and footnotes of one task's tables."""

    task: str
    title: str
    columns: tuple[Column, ...]
    footnotes: tuple[str, ...]

    def column(self, key: str) -> Column:
        """The column named ``key``."""
        return next(c for c in self.columns if c.key == key)


def _retrieval_columns() -> tuple[Column, ...]:
    columns = []
    for direction in ("t2v", "v2t"):
        for name in ("R@1", "R@5", "R@10", "R@50", "MdR", "MnR"):
            first = name == "R@1"
            columns.append(
                Column(
                    key=f"{direction} {name}",
                    header=f"{direction.upper()} {name}",
                    path=(direction, name),
                    required=name != "R@50",
                    ci=first,
                    p_value=first,
                )
            )
    return tuple(columns)


TASKS: dict[str, TaskColumns] = {
    "retrieval": TaskColumns(
        task="retrieval",
        title="Text-video retrieval",
        columns=_retrieval_columns(),
        footnotes=(
            "R@K: percentage of queries whose match is ranked in the top K; MdR / MnR: median / "
            "mean rank of the match (from 1). T2V: text queries over videos; V2T: video queries "
            "over texts (multi-sentence datasets: a video ranks the videos by the best score of "
            "their sentences).",
        ),
    ),
    "qa": TaskColumns(
        task="qa",
        title="Video question answering",
        columns=(
            Column("accuracy", "accuracy", ("accuracy",), ci=True),
            Column(
                "accuracy_in_vocab",
                "accuracy (in-vocab)",
                ("accuracy_in_vocab",),
                required=False,
                ci=True,
            ),
        ),
        footnotes=(
            "accuracy: percentage of all test questions answered exactly; a question whose answer "
            "is outside the answer vocabulary counts as wrong (the standard MSRVTT-QA protocol). "
            "accuracy (in-vocab): over the questions whose answer is in the vocabulary only (the "
            "EMCL-QA reference code's number, METHODS §4.9). Reported accuracies sit in the "
            "accuracy column because their sources do not say which convention they use.",
        ),
    ),
    "captioning": TaskColumns(
        task="captioning",
        title="Video captioning",
        columns=(
            Column("BLEU-4", "BLEU-4", ("BLEU-4",)),
            Column("METEOR", "METEOR", ("METEOR",)),
            Column("ROUGE-L", "ROUGE-L", ("ROUGE-L",), ci=True),
            Column("CIDEr", "CIDEr", ("CIDEr",), ci=True),
        ),
        footnotes=(
            "pycocoevalcap scores in percent (CIDEr is CIDEr-D). BLEU-4 and METEOR are "
            "corpus-level statistics, not means of per-video scores, so they get no bootstrap "
            "interval; ROUGE-L and CIDEr are means of per-video scores and get one. CIDEr-D's "
            "document frequencies come from the whole evaluated set: the bootstrap resamples the "
            "per-video scores computed with them and does not recompute the frequencies.",
        ),
    ),
}


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
