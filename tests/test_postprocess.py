"""The post-processed metric sets (inverted softmax, DSL, QB-Norm) against direct NumPy
computations on hand-made matrices, and the choice rule of eval.postprocess."""

import numpy as np
import pytest

from harness.metrics import dual_softmax, inverted_softmax, qb_norm, retrieval_metrics
from harness.metrics.postprocess import POSTPROCESSINGS
from tasks.checks import POSTPROCESSINGS as SPELLED
from tasks.postprocessing import bank_indices
from tests.cli import run_cli

# 4 texts x 4 videos; texts 1 and 3 both rank video 0 (text 0's) above their own
SIM = np.array(
    [
        [0.50, 0.30, 0.10, 0.20],
        [0.60, 0.55, 0.20, 0.10],
        [0.10, 0.20, 0.40, 0.35],
        [0.58, 0.10, 0.30, 0.52],
    ]
)


def column_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def direct_ranks(matrix: np.ndarray) -> np.ndarray:
    """1 + the number of other candidates scored at least as high as the diagonal match."""
    match = np.diag(matrix)[:, None]
    return (matrix >= match).sum(axis=1)


def test_inverted_softmax_and_dsl_equal_numpy():
    t2v, v2t = inverted_softmax(SIM, temp=0.05)
    assert t2v == pytest.approx(SIM * column_softmax(SIM / 0.05) * 4, rel=1e-12)
    assert v2t == pytest.approx((SIM * column_softmax(SIM.T / 0.05).T * 4).T, rel=1e-12)
    scale = 30.0
    logits = scale * SIM
    t2v, v2t = dual_softmax(SIM, logit_scale=scale)
    assert t2v == pytest.approx(logits * column_softmax(logits) * 4, rel=1e-12)
    assert v2t == pytest.approx((logits * column_softmax(logits.T).T * 4).T, rel=1e-12)
    # raw: text 1 ranks video 0 above its own, text 3 too
    assert direct_ranks(SIM).tolist() == [1, 2, 1, 2]
    assert retrieval_metrics(SIM)["R@1"] == 50.0
    # the prior over texts hands video 1 to text 1 and video 3 to text 3: all ranks 1
    assert direct_ranks(t2v).tolist() == [1, 1, 1, 1]
    assert retrieval_metrics(t2v)["R@1"] == 100.0
    assert retrieval_metrics(t2v)["MnR"] == pytest.approx(direct_ranks(t2v).mean())


def test_qb_norm_equals_a_direct_loop():
    bank = np.array([[0.9, 0.1, 0.2, 0.3], [0.2, 0.1, 0.3, 0.8], [0.7, 0.2, 0.1, 0.4]])
    beta = 10.0
    activated = {int(np.argmax(row)) for row in bank}  # top-1 of each bank query: {0, 3}
    expected = SIM.copy()
    for q in range(len(SIM)):
        if int(np.argmax(SIM[q])) in activated:
            for v in range(SIM.shape[1]):
                expected[q, v] = np.exp(beta * SIM[q, v]) / sum(np.exp(beta * bank[:, v]))
    out = qb_norm(SIM, bank, beta=beta)
    assert out == pytest.approx(expected, rel=1e-12)
    # text 2 (top video 2, not activated) keeps its raw row
    assert out[2].tolist() == SIM[2].tolist()
    assert retrieval_metrics(out)["R@1"] == 100.0 * np.mean(direct_ranks(expected) == 1)


def test_the_choice_words_and_the_bank_draw():
    assert SPELLED == POSTPROCESSINGS
    assert bank_indices(5, 10, 0).tolist() == [0, 1, 2, 3, 4]
    drawn = bank_indices(100, 7, 3)
    assert len(set(drawn.tolist())) == 7 and drawn.tolist() == sorted(drawn.tolist())
    assert drawn.tolist() == bank_indices(100, 7, 3).tolist()


@pytest.mark.parametrize(
    "value", ["[dsl, foo]", "[dsl, dsl]", "dsl"], ids=["unknown", "twice", "not-a-list"]
)
def test_eval_postprocess_rule(value):
    result = run_cli("--task", "retrieval", "-o", f"eval.postprocess={value}", "--show-config")
    assert result.returncode == 2
    assert "eval.postprocess" in result.stderr and "Traceback" not in result.stderr
