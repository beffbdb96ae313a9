"""Bootstrap confidence intervals and paired bootstrap p-values over evaluation queries.

A reproduced score is a statistic of per-query values ``x`` (n,): the mean of 100 * [rank <= 1]
for R@1, of the ranks for MnR, of 100 * [correct] for QA accuracy, of a video's own CIDEr-D or
ROUGE-L for captioning; the median of the ranks for MdR.

Clusters: queries that are not independent draws share a cluster id (on a multi-sentence
dataset, the sentences of one video). The bootstrap resamples clusters, each with all its
queries; without cluster ids every query is its own cluster. With C clusters:
``rng = numpy.random.default_rng(BOOTSTRAP_SEED)``, then ``B = RESAMPLES`` rows of C cluster
indices drawn uniformly with replacement, ``idx = rng.integers(0, C, size=(B, C))`` (drawn in
row chunks to bound memory; the stream is the same); resample b holds the queries of the
clusters in ``idx[b]``, a cluster drawn twice counted twice. Clusters are numbered in the order
of their sorted ids. Every score of every table uses the same seed, so two runs evaluated on the
same queries are resampled with the same indices: the resamples are paired.

95% confidence interval (percentile bootstrap): ``m_b`` = the statistic of resample b for b =
1..B and ``(lo, hi) = numpy.percentile(m, [2.5, 97.5])`` (numpy's default linear
interpolation). Medians: ``"median"`` is ``numpy.median`` (the mean of the two middle values),
``"median_lower"`` the lower middle value (the multi-sentence text-to-video MdR).

Paired bootstrap p-value of system A against the reference system E on the same queries
(two-sided; H0: the two systems have the same expected score): ``d = mean(x_A) - mean(x_E)``,
``d_b = mean(x_A[resample b]) - mean(x_E[resample b])``, and

    p = (1 + #{b : |d_b - d| >= |d|}) / (B + 1)

i.e. how often the bootstrap distribution of the difference, shifted to be centred on 0 (the
null), lands at least as far from 0 as the observed difference (the shift method of
Berg-Kirkpatrick et al. 2012; the +1 terms make it a valid p-value, never 0: its smallest value
is 1 / (B + 1)). Identical per-query values give d = 0 and p = 1. The comparison is made on
sums cross-multiplied by the query counts (n times the means without clusters), which are exact
for integer-valued scores such as 100 * [rank <= 1], so that ties with |d| are never decided by
rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 95.0
Statistic = Literal["mean", "median", "median_lower"]
# Resampled cluster indices held in memory at once.
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class _Clusters:
    """``of_query`` (n,): each query's cluster number; ``sizes`` (C,): queries per cluster."""

    of_query: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, n: int, clusters: np.ndarray | None) -> _Clusters:
        if clusters is None:
            return cls(np.arange(n), np.ones(n, dtype=np.int64))
        clusters = np.asarray(clusters)
        if clusters.shape != (n,):
            raise ValueError(f"{clusters.shape} cluster ids for {n} per-query values")
        _, of_query = np.unique(clusters, return_inverse=True)
        return cls(of_query, np.bincount(of_query))

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster sums of ``values`` (n,); (C,)."""
        return np.bincount(self.of_query, weights=values, minlength=len(self.sizes))


def resampled_statistics(
    values: np.ndarray,
    clusters: np.ndarray | None = None,
    statistic: Statistic = "mean",
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """``statistic`` of ``values`` (n,) on each of ``resamples`` bootstrap resamples of its
    clusters (``clusters`` (n,): a cluster id per value; None: every value its own); (B,)."""
    values = _as_values(values)
    groups = _Clusters.of(len(values), clusters)
    if statistic == "mean":
        sums, sizes = groups.sums(values), groups.sizes
        return np.concatenate(
            [
                sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
                for idx in _index_chunks(len(sizes), resamples, seed)
            ]
        )
    if statistic not in ("median", "median_lower"):
        raise ValueError(f"unknown statistic {statistic!r}")
    order = np.argsort(values, kind="stable")
    ordered, cluster_of = values[order], groups.of_query[order]
    out = []
    for idx in _index_chunks(len(groups.sizes), resamples, seed):
        for row in idx:
            # each value weighted by how often its cluster was drawn: the resample, sorted
            cumulative = np.cumsum(np.bincount(row, minlength=len(groups.sizes))[cluster_of])
            total = int(cumulative[-1])
            lower = ordered[np.searchsorted(cumulative, (total - 1) // 2, side="right")]
            upper = ordered[np.searchsorted(cumulative, total // 2, side="right")]
            out.append(lower if statistic == "median_lower" else (lower + upper) / 2)
    return np.asarray(out)


def resampled_means(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """Means of ``values`` (n,) over ``resamples`` bootstrap resamples of its n entries; (B,).

    Resample b uses row b of ``default_rng(seed).integers(0, n, size=(resamples, n))``.
    """
    return resampled_statistics(values, None, "mean", resamples, seed)


def percentile_ci(
    values: np.ndarray,
    clusters: np.ndarray | None = None,
    statistic: Statistic = "mean",
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval (lo, hi) of ``statistic`` of ``values`` (n,),
    resampling ``clusters`` (n,) of them (None: each value alone)."""
    tail = (100.0 - CONFIDENCE) / 2
    resampled = resampled_statistics(values, clusters, statistic, resamples, seed)
    lo, hi = np.percentile(resampled, [tail, 100.0 - tail])
    return float(lo), float(hi)


def paired_p_value(
    values: np.ndarray,
    reference: np.ndarray,
    clusters: np.ndarray | None = None,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """Two-sided paired bootstrap p-value of mean(values) != mean(reference); both (n,), entry i
    of each the score of the same query i, ``clusters`` (n,) its cluster id (None: each query
    alone; formula in the module docstring)."""
    values, reference = _as_values(values), _as_values(reference)
    if values.shape != reference.shape:
        raise ValueError(
            f"paired bootstrap needs the same queries: got {len(values)} and "
            f"{len(reference)} values"
        )
    groups = _Clusters.of(len(values), clusters)
    gaps = groups.sums(values) - groups.sums(reference)
    observed, total = values.sum() - reference.sum(), len(values)
    extreme = 0
    for idx in _index_chunks(len(groups.sizes), resamples, seed):
        # |d_b - d| >= |d| with d_b = gap_b / n_b and d = observed / n, times n * n_b > 0
        gap, count = gaps[idx].sum(axis=1), groups.sizes[idx].sum(axis=1)
        extreme += int(np.sum(np.abs(gap * total - observed * count) >= abs(observed) * count))
    return (1 + extreme) / (resamples + 1)


def _as_values(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"bootstrap needs a non-empty 1-D array of per-query values, got {values.shape}"
        )
    return values


def _index_chunks(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Consecutive row blocks of ``default_rng(seed).integers(0, n, size=(resamples, n))``."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))
