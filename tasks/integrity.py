"""Integrity checks of a retrieval evaluation, measured when it runs and written to results.json
(``integrity``). Each is cheap: it re-scores a few queries, never the whole matrix.

* query independence: the first ``2 * eval.block_size`` queries (at most) are scored again
  without their odd-numbered half; a query whose scores change (beyond float noise) depends on
  the other test queries. Measured for the raw scores and for every post-processed set.
* gallery-order invariance: the same queries against the whole gallery in a seeded random
  order; the scores, put back in order, must not change.
* eval-batch invariance: the first ``2 * eval.block_size`` texts and videos (at most) encoded
  again under another ``eval.batch_size`` (half of it, or 2 for 1); their features must not
  change.
* split hygiene: no evaluated video id is in the training list.

Scores are compared row by row after dividing each row by its largest magnitude, so that a
factor a post-processing applies to the whole matrix (its row count) does not count as a change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from harness.similarity import Features
from tasks.postprocessing import Matrices, PostProcess

# the method's tiled scoring (RetrievalModel.score): texts, videos, block -> (T, V) scores
Score = Callable[[Features, Features, int], torch.Tensor]

# relative change (of a row's largest score) below which two scores count as equal: float32
# scores re-computed in other blocks or batches differ in their last bits only
TOLERANCE = 1e-5
RAW = "raw"


def pick(features: Features, rows: Sequence[int] | np.ndarray) -> Features:
    """The rows ``rows`` of every tensor in ``features``."""
    index = torch.as_tensor(np.asarray(rows), dtype=torch.long)
    return {k: v[index] for k, v in features.items()}


def row_change(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference of rows of ``a`` and ``b`` (Q, C), each row scaled by its largest
    magnitude (a row of zeros by 1)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)

    def scaled(x: np.ndarray) -> np.ndarray:
        x = np.where(np.isfinite(x), x, 0.0)
        top = np.abs(x).max(axis=1, keepdims=True)
        return x / np.where(top > 0, top, 1.0)

    return float(np.abs(scaled(a) - scaled(b)).max()) if a.size else 0.0


def _verdict(change: float, key: str) -> dict[str, Any]:
    return {key: change <= TOLERANCE, "max_change": change}


def query_independence(
    score: Score,
    text: Features,
    video: Features,
    block: int,
    full: np.ndarray,
    post: PostProcess,
    full_post: Matrices,
) -> dict[str, Any]:
    """``{"queries": kept, "removed": n, "raw": {"independent", "max_change"}, <post-processing>:
    ...}``: the kept queries' text-to-video rows of ``full`` (T, V) and of ``full_post`` against
    those scored without the removed queries (None when there are fewer than 2 queries)."""
    num = min(len(full), 2 * block)
    if num < 2:
        return {"queries": num, "removed": 0}
    kept = np.arange(0, num, 2)
    alone = score(pick(text, kept), video, block).float().cpu().numpy()
    report: dict[str, Any] = {"queries": len(kept), "removed": num - len(kept)}
    report[RAW] = _verdict(row_change(full[kept], alone), "independent")
    for name, (t2v, _) in post(alone).items():
        report[name] = _verdict(row_change(full_post[name][0][kept], t2v), "independent")
    return report


def gallery_order(
    score: Score, text: Features, video: Features, block: int, full: np.ndarray, seed: int
) -> dict[str, Any]:
    """``{"queries", "invariant", "max_change"}``: the first ``2 * block`` queries (at most)
    scored against the gallery in the order ``default_rng(seed).permutation``, against their rows
    of ``full`` (T, V)."""
    rows = np.arange(min(len(full), 2 * block))
    order = np.random.default_rng(seed).permutation(full.shape[1])
    shuffled = score(pick(text, rows), pick(video, order), block)
    restored = np.empty((len(rows), full.shape[1]), dtype=np.float64)
    restored[:, order] = shuffled.float().cpu().numpy()
    return {"queries": len(rows), **_verdict(row_change(full[rows], restored), "invariant")}


def eval_batch(
    encode: Callable[[int, int], tuple[Features, Features]],
    text: Features,
    video: Features,
    batch_size: int,
    block: int,
) -> dict[str, Any]:
    """``{"batch_size", "items", "invariant", "max_change"}``: the features of the first
    ``2 * block`` texts and videos (at most) from ``encode(other_batch_size, count)`` against
    ``text`` and ``video`` (encoded under ``batch_size``)."""
    other = batch_size // 2 if batch_size > 1 else 2
    count = min(2 * block, *(len(next(iter(f.values()))) for f in (text, video)))
    again = encode(other, count)
    change = 0.0
    for before, after in zip((text, video), again, strict=True):
        for key, value in after.items():
            if value.is_floating_point():
                a, b = before[key][:count].reshape(count, -1), value.reshape(count, -1)
                change = max(change, row_change(a.double().numpy(), b.double().numpy()))
    return {"batch_size": other, "items": count, **_verdict(change, "invariant")}


def split_hygiene(evaluated: Sequence[str], training: Sequence[str]) -> dict[str, Any]:
    """``{"clean", "overlap", "examples"}``: evaluated video ids that are also training ids."""
    overlap = sorted(set(evaluated) & set(training))
    return {"clean": not overlap, "overlap": len(overlap), "examples": overlap[:5]}
