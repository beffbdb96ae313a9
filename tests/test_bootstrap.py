"""Bootstrap intervals and paired p-values against direct computations: clustered (videos with
several sentences resampled whole), medians for MdR, means for MnR, and the paired test."""

from fractions import Fraction

import numpy as np
import pytest

from harness.leaderboard.bootstrap import paired_p_value, percentile_ci
from tasks.results.retrieval import SPEC

B = 1000
# 3 videos with 3, 1 and 3 sentences: R@1 hits of each sentence (text-to-video queries)
VIDEO_OF = np.array([0, 0, 0, 1, 2, 2, 2])
HITS = np.array([100.0, 100.0, 0.0, 0.0, 100.0, 0.0, 0.0])
RANKS = np.array([1.0, 1.0, 4.0, 2.0, 1.0, 7.0, 3.0])
OTHER = np.array([100.0, 0.0, 0.0, 100.0, 100.0, 100.0, 0.0])


def direct_resamples(values: np.ndarray, statistic) -> np.ndarray:
    """Resample the videos (every sentence of a drawn video, drawn twice: twice), then apply."""
    idx = np.random.default_rng(0).integers(0, 3, size=(B, 3))
    members = [np.flatnonzero(VIDEO_OF == v) for v in range(3)]
    return np.array([statistic(np.concatenate([values[members[v]] for v in row])) for row in idx])


def lower_median(x: np.ndarray) -> float:
    return float(np.sort(x)[(len(x) - 1) // 2])


@pytest.mark.parametrize(
    ("values", "statistic", "direct"),
    [
        (HITS, "mean", np.mean),
        (RANKS, "mean", np.mean),
        (RANKS, "median", np.median),
        (RANKS, "median_lower", lower_median),
    ],
    ids=["R@1", "MnR", "MdR", "MdR-lower"],
)
def test_clustered_interval_equals_resampling_videos_directly(values, statistic, direct):
    expected = np.percentile(direct_resamples(values, direct), [2.5, 97.5])
    got = percentile_ci(values, clusters=VIDEO_OF, statistic=statistic)
    assert got == pytest.approx(tuple(expected), rel=1e-12, abs=1e-12)


def test_clusters_change_the_interval_and_single_queries_do_not():
    # sentences of one video are not independent: resampling them alone narrows the interval
    assert percentile_ci(HITS, clusters=VIDEO_OF) != percentile_ci(HITS)
    assert percentile_ci(HITS, clusters=np.arange(7) * 10) == percentile_ci(HITS)
    idx = np.random.default_rng(0).integers(0, 7, size=(B, 7))
    assert percentile_ci(RANKS, statistic="median") == pytest.approx(
        tuple(np.percentile(np.median(RANKS[idx], axis=1), [2.5, 97.5])), rel=1e-12
    )


def direct_p(values: np.ndarray, reference: np.ndarray, clusters: np.ndarray | None) -> float:
    """The paired p-value by its definition, in exact fractions."""
    labels = np.arange(len(values)) if clusters is None else clusters
    groups = np.unique(labels)
    members = [np.flatnonzero(labels == g) for g in groups]
    idx = np.random.default_rng(0).integers(0, len(groups), size=(B, len(groups)))
    d = Fraction(int(values.sum() - reference.sum()), len(values))
    extreme = 0
    for row in idx:
        chosen = np.concatenate([members[g] for g in row])
        d_b = Fraction(int(values[chosen].sum() - reference[chosen].sum()), len(chosen))
        extreme += abs(d_b - d) >= abs(d)
    return (1 + extreme) / (B + 1)


@pytest.mark.parametrize("clustered", [False, True])
def test_paired_p_value_equals_its_definition(clustered):
    clusters = VIDEO_OF if clustered else None
    rng = np.random.default_rng(5)
    a, e = 100.0 * (rng.random(40) < 0.6), 100.0 * (rng.random(40) < 0.4)
    big_clusters = np.repeat(np.arange(10), 4) if clustered else None
    assert paired_p_value(a, e, big_clusters) == direct_p(a, e, big_clusters)
    assert paired_p_value(HITS, OTHER, clusters) == direct_p(HITS, OTHER, clusters)
    assert paired_p_value(HITS, HITS, clusters) == 1.0


def test_retrieval_spec_clusters_text_queries_by_video_on_multi_sentence_sets():
    samples = [
        {"direction": "t2v", "query": i, "video_id": f"v{v}", "rank": int(r)}
        for i, (v, r) in enumerate(zip(VIDEO_OF, RANKS, strict=True))
    ] + [{"direction": "v2t", "query": v, "video_id": f"v{v}", "rank": 1} for v in range(3)]
    data = SPEC.per_query(samples, None)
    t2v_mdr, v2t_mdr = data.columns["t2v MdR"], data.columns["v2t MdR"]
    assert t2v_mdr.clusters.tolist() == VIDEO_OF.tolist() and t2v_mdr.statistic == "median_lower"
    assert v2t_mdr.clusters is None and v2t_mdr.statistic == "median"
    assert data.columns["t2v R@1"].values.tolist() == HITS.tolist()
    assert data.columns["t2v MnR"].values.tolist() == RANKS.tolist()
    assert {c.key for c in SPEC.columns if c.ci} == {
        f"{d} {m}" for d in ("t2v", "v2t") for m in ("R@1", "MdR", "MnR")
    }
