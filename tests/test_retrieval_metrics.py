"""harness.metrics retrieval functions: reference parity (golden vectors) and honest ties."""

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from harness.config import ConfigError
from harness.metrics import (
    inverted_softmax,
    multi_sentence_metrics,
    retrieval_metrics,
    retrieval_ranks,
)

KEYS = ["R@1", "R@5", "R@10", "R@50", "MdR", "MnR"]
COMPUTE = np.load(FIXTURES / "metrics_compute.npz")
MULTI = np.load(FIXTURES / "metrics_multi_sentence.npz")
INVERTED = np.load(FIXTURES / "metrics_inverted_softmax.npz")


def cases(fixture) -> list[str]:
    return sorted({k.split("__")[0] for k in fixture.files})


def values(metrics: dict[str, float]) -> np.ndarray:
    return np.array([metrics[k] for k in KEYS])


@pytest.mark.parametrize("case", cases(COMPUTE))
def test_reference_ties_match_compute_metrics(case: str) -> None:
    got = values(retrieval_metrics(COMPUTE[f"{case}__sim"], ties="reference"))
    np.testing.assert_allclose(got, COMPUTE[f"{case}__metrics"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", cases(COMPUTE))
def test_per_query_ranks_lie_among_tied_positions(case: str) -> None:
    sim = COMPUTE[f"{case}__sim"]
    match = sim[np.arange(len(sim)), np.arange(len(sim))][:, None]
    above, tied = (sim > match).sum(axis=1), (sim == match).sum(axis=1)
    np.testing.assert_array_equal(retrieval_ranks(sim), above + tied)  # honest: the last one
    reference = retrieval_ranks(sim, ties="reference")
    assert len(reference) == len(sim)
    assert np.all((reference > above) & (reference <= above + tied))


def test_constant_scorer_gets_the_worst_rank() -> None:
    got = retrieval_metrics(np.zeros((10, 10)))
    assert got == {"R@1": 0.0, "R@5": 0.0, "R@10": 100.0, "R@50": 100.0, "MdR": 10.0, "MnR": 10.0}
    reference = retrieval_metrics(np.zeros((10, 10)), ties="reference")
    assert reference["R@1"] == 10.0 and reference["MnR"] == 5.5  # what honest ties prevent


def test_known_ranks_and_torch_input() -> None:
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.3, 0.2, 0.2], [0.0, 0.1, 0.3]])
    np.testing.assert_array_equal(retrieval_ranks(sim), [1, 3, 1])
    got = retrieval_metrics(sim)
    assert got["R@1"] == pytest.approx(200 / 3) and got["MdR"] == 1.0 and got["MnR"] == 5 / 3


def test_target_columns() -> None:
    sim = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.2], [0.7, 0.1, 0.7], [0.0, 0.1, 0.3]])
    np.testing.assert_array_equal(retrieval_ranks(sim, target=[1, 0, 0, 2]), [1, 1, 2, 1])
    np.testing.assert_array_equal(
        retrieval_ranks(sim, "reference", target=[1, 0, 0, 2]), [1, 1, 1, 1]
    )
    with pytest.raises(ValueError, match="target values"):
        retrieval_ranks(sim, target=[0, 1, 2, 3])


def test_nan_match_counts_as_worst() -> None:
    sim = np.eye(4)
    sim[2, 2] = np.nan
    np.testing.assert_array_equal(retrieval_ranks(sim), [1, 1, 4, 1])


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="query rows"):
        retrieval_metrics(np.zeros((5, 3)))
    with pytest.raises(ConfigError, match="ties='optimistic' is unknown.*eval.ties"):
        retrieval_metrics(np.eye(3), ties="optimistic")
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.zeros(3))


@pytest.mark.parametrize("case", cases(MULTI))
def test_multi_sentence_reference_matches(case: str) -> None:
    got = multi_sentence_metrics(
        MULTI[f"{case}__sim"], MULTI[f"{case}__video_of_sentence"], ties="reference"
    )
    np.testing.assert_allclose(values(got["v2t"]), MULTI[f"{case}__v2t"], rtol=0, atol=1e-10)
    t2v, expected = values(got["t2v"]), MULTI[f"{case}__t2v"]
    # The reference divides integer tensors by the count in float32 for R@K.
    np.testing.assert_allclose(t2v[:4], expected[:4], rtol=0, atol=1e-5)
    np.testing.assert_allclose(t2v[4:], expected[4:], rtol=0, atol=1e-10)


def test_multi_sentence_ignores_sentence_order() -> None:
    sim, vid = MULTI["ties__sim"], MULTI["ties__video_of_sentence"]
    perm = np.random.default_rng(0).permutation(len(vid))
    assert multi_sentence_metrics(sim[perm], vid[perm]) == multi_sentence_metrics(sim, vid)


def test_one_sentence_per_video_equals_single_sentence() -> None:
    sim = np.round(np.random.default_rng(1).normal(size=(9, 9)), 1)
    got = multi_sentence_metrics(sim, range(9))
    assert got["t2v"] == retrieval_metrics(sim)  # odd count: both medians agree
    assert got["v2t"] == retrieval_metrics(sim.T)


def test_multi_sentence_bad_mapping_raises() -> None:
    with pytest.raises(ValueError, match="video 2 has no sentence"):
        multi_sentence_metrics(np.zeros((3, 3)), [0, 1, 1])
    with pytest.raises(ValueError, match="video_of_sentence has 2 entries"):
        multi_sentence_metrics(np.zeros((3, 3)), [0, 1])


@pytest.mark.parametrize("case", ["square", "rectangular"])
def test_inverted_softmax_matches_reference(case: str) -> None:
    t2v, v2t = inverted_softmax(INVERTED[f"{case}__sim"], temp=0.01)
    np.testing.assert_allclose(t2v, INVERTED[f"{case}__t2v_sim"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(v2t, INVERTED[f"{case}__v2t_sim_T"], rtol=1e-12, atol=1e-12)
    if case == "square":
        for got, key in ((t2v, "t2v"), (v2t, "v2t")):
            metrics = values(retrieval_metrics(got, ties="reference"))
            np.testing.assert_allclose(metrics, INVERTED[f"{case}__{key}"], rtol=0, atol=1e-10)
