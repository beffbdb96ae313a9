"""Retrieval ranks and recall metrics (METHODS.md §0.7, §4.4).

Two tie rules. ``"honest"`` (default): the rank of a query's match is 1 + the number of OTHER
candidates scored at least as high, so ties can only hurt and a constant scorer gets the worst
rank. ``"reference"``: the rule of the method repositories, kept for reproducing published
numbers; ``compute_metrics`` counts every tied position as a separate rank entry (a tie with the
match yields several entries for one query, some of them optimistic), and the multi-sentence
text-to-video path breaks ties by ``torch.argsort`` order. NaN scores count as ``-inf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from harness.config import ConfigError

Ties = Literal["honest", "reference"]
Median = Literal["mean_of_middles", "lower"]
RECALL_AT = (1, 5, 10, 50)
MetricDict = dict[str, float]


def _as_matrix(sim: np.ndarray | torch.Tensor) -> np.ndarray:
    """A float64 copy of a 2-D array or tensor (NaN -> -inf)."""
    if isinstance(sim, torch.Tensor):
        sim = sim.detach().cpu().to(torch.float64).numpy()
    arr = np.array(sim, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"sim must be a 2-D (queries x candidates) matrix, got {arr.shape}")
    arr[np.isnan(arr)] = -np.inf
    return arr


def _check_ties(ties: str) -> None:
    if ties not in ("honest", "reference"):
        raise ConfigError(f"ties={ties!r} is unknown; use 'honest' or 'reference' (eval.ties)")


def _targets(arr: np.ndarray, target: Sequence[int] | None, name: str = "target") -> np.ndarray:
    """Column of each row's match: ``target`` or the diagonal, checked against ``arr`` (Q, C)."""
    q, c = arr.shape
    if target is None:
        if q > c:
            raise ValueError(f"sim has {q} query rows but only {c} candidates; pass target=")
        return np.arange(q)
    cols = np.asarray(target, dtype=np.int64)
    if cols.shape != (q,):
        raise ValueError(f"{name} has {cols.size} entries but sim has {q} query rows")
    if q and (cols.min() < 0 or cols.max() >= c):
        raise ValueError(f"{name} values must lie in [0, {c}) (sim columns)")
    return cols


def _match_counts(arr: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: candidates scored above the match, and at least as high (match included)."""
    match = arr[np.arange(len(cols)), cols][:, None]
    return (arr > match).sum(axis=1), (arr >= match).sum(axis=1)


def retrieval_ranks(
    sim: np.ndarray | torch.Tensor, ties: Ties = "honest", target: Sequence[int] | None = None
) -> np.ndarray:
    """One rank (from 1) per query row of ``sim`` (Q, C); the match of row i is column
    ``target[i]`` (default: column i, which needs Q <= C). Returns an int64 array (Q,).

    ``"honest"``: ``1 + #{j != target[i] : sim[i, j] >= sim[i, target[i]]}``.
    ``"reference"``: the match's position in ``torch.argsort(sim[i], descending=True)`` plus one,
    the rule of the reference multi-sentence text-to-video metric (tied scores in torch's order).
    The single-sentence reference metric instead counts every tied position, so it has no
    single rank per query; ``retrieval_metrics(sim, "reference")`` reproduces it.
    """
    _check_ties(ties)
    arr = _as_matrix(sim)
    cols = _targets(arr, target)
    if ties == "honest":
        return _match_counts(arr, cols)[1].astype(np.int64)
    order = torch.argsort(torch.from_numpy(arr), dim=-1, descending=True).numpy()
    return (np.argmax(order == cols[:, None], axis=1) + 1).astype(np.int64)


def _tied_rank_entries(arr: np.ndarray) -> np.ndarray:
    """The rank entries of the reference ``compute_metrics`` for ``arr`` (Q, C), from 1.

    A query whose match ties with ``e - 1`` others contributes the ``e`` ranks ``g + 1 .. g + e``
    (``g`` = number scored strictly higher), grouped by query, so there can be more than Q.
    """
    above, at_least = _match_counts(arr, _targets(arr, None))
    tied = at_least - above
    offsets = np.arange(tied.sum()) - np.repeat(np.cumsum(tied) - tied, tied)
    return np.repeat(above, tied) + offsets + 1


def summarize_ranks(ranks: np.ndarray, median: Median = "mean_of_middles") -> MetricDict:
    """``{"R@1","R@5","R@10","R@50","MdR","MnR"}`` from ranks counted from 1 (R@K in percent).

    ``median="mean_of_middles"`` is ``np.median`` (single-sentence reference); ``"lower"`` is the
    lower middle value like ``torch.median`` (multi-sentence text-to-video reference).
    """
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no ranks to summarise: the similarity matrix has no valid query")
    out = {f"R@{k}": float(np.sum(ranks <= k)) * 100 / len(ranks) for k in RECALL_AT}
    if median == "lower":
        out["MdR"] = float(np.sort(ranks)[(len(ranks) - 1) // 2])
    else:
        out["MdR"] = float(np.median(ranks))
    out["MnR"] = float(np.mean(ranks))
    return out


def retrieval_metrics(sim: np.ndarray | torch.Tensor, ties: Ties = "honest") -> MetricDict:
    """Recall@K (percent), median and mean rank of ``sim`` (Q, C); the match of row i is column i.

    ``ties="reference"`` reproduces the reference ``compute_metrics`` (METHODS.md §0.7), except
    that a NaN match is a -inf score (the reference drops that query).
    """
    _check_ties(ties)
    if ties == "reference":
        return summarize_ranks(_tied_rank_entries(_as_matrix(sim)))
    return summarize_ranks(retrieval_ranks(sim))


def _group_rows(arr: np.ndarray, video_of_sentence: Sequence[int]) -> np.ndarray:
    """``video_of_sentence`` as an int array, checked against ``arr`` (S, V)."""
    vid = _targets(arr, video_of_sentence, name="video_of_sentence")
    missing = np.setdiff1d(np.arange(arr.shape[1]), vid)
    if missing.size:
        raise ValueError(
            f"video {int(missing[0])} has no sentence; every sim column needs at least one row"
        )
    return vid


def best_sentence_scores(
    sim: np.ndarray | torch.Tensor, video_of_sentence: Sequence[int]
) -> np.ndarray:
    """``Q`` (V, V) from ``sim`` (S, V): ``Q[v, g]`` = best score on video v of a sentence of g."""
    arr = _as_matrix(sim)
    vid = _group_rows(arr, video_of_sentence)
    order = np.argsort(vid, kind="stable")
    starts = np.searchsorted(vid[order], np.arange(arr.shape[1]))
    return np.maximum.reduceat(arr[order], starts, axis=0).T


def multi_sentence_metrics(
    sim: np.ndarray | torch.Tensor, video_of_sentence: Sequence[int], ties: Ties = "honest"
) -> dict[str, MetricDict]:
    """Metrics for several sentences per video; ``sim`` (S sentences, V videos).

    ``video_of_sentence[i]`` is the video (column) of sentence i; every video needs at least one
    sentence, in any order. ``"t2v"``: every sentence is a query. ``"v2t"``: video v ranks the
    videos g by the best score of any sentence of g on v (METHODS.md §0.7). The text-to-video
    median is the lower middle value (``torch.median``, as the reference) for both tie rules; the
    video-to-text median is ``np.median``. ``ties="reference"`` reproduces
    ``tensor_text_to_video_metrics`` and ``compute_metrics(tensor_video_to_text_sim(.))`` when
    the sentences of each video are contiguous and in video order (it drops sentences whose own
    score is not finite; the honest rule ranks them last).
    """
    _check_ties(ties)
    arr = _as_matrix(sim)
    vid = _group_rows(arr, video_of_sentence)
    t2v_ranks = retrieval_ranks(arr, ties, target=vid)
    if ties == "reference":
        t2v_ranks = t2v_ranks[np.isfinite(arr[np.arange(len(vid)), vid])]
    return {
        "t2v": summarize_ranks(t2v_ranks, median="lower"),
        "v2t": retrieval_metrics(best_sentence_scores(arr, vid), ties),
    }
