"""Post-processings of a full text x video score matrix, each a labelled metric set that is never
the headline (README "Post-processing"). None of them is part of a method: they re-rank the
scores of any method after the fact, and each looks beyond the single query it ranks.

* ``inverted_softmax`` (EMCL-Net++, METHODS.md §4.4): ``S * softmax(S / t)`` with the softmax
  taken over the other side's items of the whole test matrix, times its row count; ``t`` =
  ``eval.inverted_softmax_temp`` (0.01).
* ``dsl``: the dual softmax of CAMoE at inference, the same product on the model's logits
  ``L = exp(logit_scale) * S`` with temperature 1 (its authors: the training temperature "should
  be set to 1 during inference"), i.e. ``L * softmax(L)`` over the other side's items, times
  the row count. It ranks like ``inverted_softmax`` at ``t = 1 / exp(logit_scale)``.
* ``qb_norm``: QB-Norm's dynamic inverted softmax (Bogolin et al. 2022), text-to-video only: a
  bank of training captions is scored against the test videos; a test query whose best video is
  the best video of some bank query gets ``exp(beta * S[q, v]) / sum_b exp(beta * S[b, v])``,
  every other query keeps its raw row. It uses the bank, not the other test queries.

The ``* N`` factors and the mix of normalised and raw rows follow the references; neither
changes a ranking.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.metrics.retrieval import _as_matrix

INVERTED_SOFTMAX, DSL, QB_NORM = "inverted_softmax", "dsl", "qb_norm"
POSTPROCESSINGS = (INVERTED_SOFTMAX, DSL, QB_NORM)
# the post-processings that rank a query by the scores of every other test query
USES_ALL_TEST_QUERIES = (INVERTED_SOFTMAX, DSL)


def inverted_softmax(
    sim: np.ndarray | torch.Tensor, temp: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """EMCL-Net++ post-processing of a full (T texts, V videos) matrix (METHODS.md §4.4).

    Returns ``(t2v_sim (T, V), v2t_sim (V, T))``: ``S * softmax(S / temp)`` taken down each video
    column for t2v and along each text row for v2t (the latter transposed so rows are video
    queries), both times T as in the reference. Use ``retrieval_metrics`` on each. Transductive:
    it needs every query at once.
    """
    s = torch.from_numpy(_as_matrix(sim))
    n = len(s)
    t2v = s * torch.softmax(s / temp, dim=0) * n
    v2t = s * torch.softmax(s / temp, dim=1) * n
    return t2v.numpy(), v2t.t().contiguous().numpy()


def dual_softmax(
    sim: np.ndarray | torch.Tensor, logit_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """CAMoE's dual softmax at inference on ``logit_scale * sim`` (T, V), temperature 1.

    Returns ``(t2v_sim (T, V), v2t_sim (V, T))`` like :func:`inverted_softmax`.
    """
    return inverted_softmax(_as_matrix(sim) * float(logit_scale), temp=1.0)


def qb_norm(
    sim: np.ndarray | torch.Tensor, bank_sim: np.ndarray | torch.Tensor, beta: float, k: int = 1
) -> np.ndarray:
    """QB-Norm (dynamic inverted softmax) of test scores ``sim`` (T, V) with the bank's scores
    ``bank_sim`` (B, V) on the same videos; returns the text-to-video matrix (T, V).

    The videos any bank query ranks in its top ``k`` form the activation set; the rows of test
    queries whose top video is in it become ``exp(beta * S) / sum over the bank of
    exp(beta * bank_S)`` (column-wise), the others stay raw.
    """
    test, bank = _as_matrix(sim), _as_matrix(bank_sim)
    if bank.shape[1] != test.shape[1]:
        raise ValueError(f"bank scores {bank.shape} and test scores {test.shape} differ in videos")
    activated = np.unique(np.argsort(-bank, axis=1, kind="stable")[:, :k])
    top = np.argsort(-test, axis=1, kind="stable")[:, 0]
    rows = np.isin(top, activated)
    out = test.copy()
    # float64 exp overflows only past beta * S ~ 709: cosine scores with beta 20 stay far below
    out[rows] = np.exp(beta * test[rows]) / np.exp(beta * bank).sum(axis=0)
    return out
