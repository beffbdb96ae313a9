"""Bootstrap confidence intervals and paired bootstrap p-values over evaluation queries.

A reproduced score is the mean of per-query values ``x`` (n,): 100 * [rank <= 1] for R@1,
100 * [correct] for QA accuracy, a video's own CIDEr-D or ROUGE-L for captioning.

Resamples: ``rng = numpy.random.default_rng(BOOTSTRAP_SEED)``, then ``B = RESAMPLES`` rows of n
query indices drawn uniformly with replacement, ``idx = rng.integers(0, n, size=(B, n))``
(drawn in row chunks to bound memory; the stream is the same). Every score of every table uses
the same seed, so two runs evaluated on the same n queries are resampled with the same indices:
the resamples are paired.

95% confidence interval (percentile bootstrap): ``m_b = mean(x[idx[b]])`` for b = 1..B and
``(lo, hi) = numpy.percentile(m, [2.5, 97.5])`` (numpy's default linear interpolation).

Paired bootstrap p-value of system A against the reference system E on the same queries
(two-sided; H0: the two systems have the same expected score): ``d = mean(x_A) - mean(x_E)``,
``d_b = mean(x_A[idx[b]]) - mean(x_E[idx[b]])``, and

    p = (1 + #{b : |d_b - d| >= |d|}) / (B + 1)

i.e. how often the bootstrap distribution of the difference, shifted to be centred on 0 (the
null), lands at least as far from 0 as the observed difference (the shift method of
Berg-Kirkpatrick et al. 2012; the +1 terms make it a valid p-value, never 0: its smallest value
is 1 / (B + 1)). Identical per-query values give d = 0 and p = 1. The comparison is made on
sums (n times the means), which are exact for integer-valued scores such as 100 * [rank <= 1],
so that ties with |d| are never decided by rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 95.0
# Resampled query indices held in memory at once.
_CHUNK_ELEMENTS = 1 << 22


def resampled_means(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """Means of ``values`` (n,) over ``resamples`` bootstrap resamples of its n entries; (B,).

    Resample b uses row b of ``default_rng(seed).integers(0, n, size=(resamples, n))``.
    """
    values = _as_values(values)
    return _resampled_sums(values, resamples, seed) / len(values)


def percentile_ci(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval (lo, hi) of the mean of ``values`` (n,)."""
    tail = (100.0 - CONFIDENCE) / 2
    lo, hi = np.percentile(resampled_means(values, resamples, seed), [tail, 100.0 - tail])
    return float(lo), float(hi)


def paired_p_value(
    values: np.ndarray,
    reference: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """Two-sided paired bootstrap p-value of mean(values) != mean(reference); both (n,), entry i
    of each the score of the same query i (formula in the module docstring)."""
    values, reference = _as_values(values), _as_values(reference)
    if values.shape != reference.shape:
        raise ValueError(
            f"paired bootstrap needs the same queries: got {len(values)} and "
            f"{len(reference)} values"
        )
    observed = values.sum() - reference.sum()
    diffs = _resampled_sums(values, resamples, seed) - _resampled_sums(reference, resamples, seed)
    extreme = int(np.sum(np.abs(diffs - observed) >= abs(observed)))
    return (1 + extreme) / (resamples + 1)


def _as_values(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"bootstrap needs a non-empty 1-D array of per-query values, got {values.shape}"
        )
    return values


def _resampled_sums(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Sums of ``values`` (n,) over the ``resamples`` bootstrap resamples; (B,)."""
    chunks = _index_chunks(len(values), resamples, seed)
    return np.concatenate([values[idx].sum(axis=1) for idx in chunks])


def _index_chunks(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Consecutive row blocks of ``default_rng(seed).integers(0, n, size=(resamples, n))``."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))
