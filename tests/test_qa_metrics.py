"""qa_accuracy on a hand-computed MSRVTT-QA-format miniature, and on the real val split."""

import json
from pathlib import Path

import pytest

from harness.metrics import qa_accuracy

VOCABULARY = {"cook", "dog", "kitchen", "man", "night", "run", "two"}
# (answer_type, answer, prediction); comments: in vocabulary?, correct?
MINIATURE = [
    ("what", "dog", "dog"),  # in, correct
    ("what", "cook", "run"),  # in, wrong
    ("what", "guitar", "dog"),  # OOV, wrong
    ("what", "run", "run"),  # in, correct
    ("who", "man", "man"),  # in, correct
    ("who", "woman", "man"),  # OOV, wrong
    ("who", "man", "dog"),  # in, wrong
    ("how", "two", "two"),  # in, correct
    ("how", "three", "three"),  # OOV: wrong even though the strings match
    ("when", "night", "night"),  # in, correct
    ("when", "morning", "night"),  # OOV, wrong
    ("where", "kitchen", "Kitchen"),  # in, wrong: exact match, no case folding
    ("where", "beach", "kitchen"),  # OOV, wrong
]


@pytest.fixture
def miniature(tmp_path: Path) -> tuple[list[str], list[str], list[str]]:
    """Predictions, answers and answer types read back from a miniature MSRVTT-QA .jsonl."""
    path = tmp_path / "test.jsonl"
    lines = [
        {
            "answer": answer,
            "question": f"{kind} is it?",
            "video_id": f"video{7010 + i // 3}",
            "answer_type": kind,
        }
        for i, (kind, answer, _) in enumerate(MINIATURE)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    predictions = [prediction for _, _, prediction in MINIATURE]
    return predictions, [r["answer"] for r in records], [r["answer_type"] for r in records]


def test_overall_in_vocab_and_per_type_accuracy(miniature):
    predictions, answers, types = miniature
    result = qa_accuracy(predictions, answers, types, vocabulary=VOCABULARY)
    # 13 questions, 8 with an in-vocabulary answer, 5 correct (rows 0, 3, 4, 7, 9).
    assert result["num_questions"] == 13
    assert result["num_in_vocab"] == 8
    assert result["accuracy"] == pytest.approx(100 * 5 / 13)
    assert result["accuracy_in_vocab"] == pytest.approx(62.5)
    expected = {  # type: (count, in vocab, correct)
        "what": (4, 3, 2),
        "who": (3, 2, 1),
        "how": (2, 1, 1),
        "when": (2, 1, 1),
        "where": (2, 1, 0),
    }
    assert list(result["per_type"]) == list(expected)
    for kind, (count, in_vocab, correct) in expected.items():
        assert result["per_type"][kind] == pytest.approx(
            {
                "accuracy": 100 * correct / count,
                "accuracy_in_vocab": 100 * correct / in_vocab,
                "count": count,
                "num_in_vocab": in_vocab,
            }
        ), kind


def test_without_vocabulary_every_answer_counts(miniature):
    predictions, answers, types = miniature
    result = qa_accuracy(predictions, answers, types)
    # Row 8 ("three" == "three") now counts: 6 of 13.
    assert result["accuracy"] == result["accuracy_in_vocab"] == pytest.approx(100 * 6 / 13)
    assert result["num_in_vocab"] == 13
    assert result["per_type"]["how"]["accuracy"] == 100.0


def test_dicts_by_question_id_equal_position_lists(miniature):
    predictions, answers, types = miniature
    ids = [f"q{i}" for i in range(len(answers))]
    as_dicts = qa_accuracy(
        dict(zip(reversed(ids), reversed(predictions), strict=True)),
        dict(zip(ids, answers, strict=True)),
        dict(zip(ids, types, strict=True)),
        vocabulary=VOCABULARY,
    )
    assert as_dicts == qa_accuracy(predictions, answers, types, vocabulary=VOCABULARY)


def test_type_without_in_vocab_questions_and_no_types():
    result = qa_accuracy(["a", "b"], ["a", "zzz"], ["what", "where"], vocabulary={"a"})
    assert result["per_type"]["where"] == {
        "accuracy": 0.0,
        "accuracy_in_vocab": None,
        "count": 1,
        "num_in_vocab": 0,
    }
    assert qa_accuracy(["a"], ["a"])["per_type"] == {}


@pytest.mark.parametrize(
    ("predictions", "answers", "types", "message"),
    [
        ([], [], None, "answers is empty"),
        (["a"], ["a", "b"], None, "predictions has no entry for question 1 "),
        ({"x": "a", "y": "b"}, {"x": "a"}, None, "answers has no entry for question 'y' "),
        (["a"], ["a"], ["what", "who"], "answers has no entry for question 1 .*answer_types"),
        ([3], ["a"], None, r"predictions\[0\] must be a string, got int"),
        ("a", ["a"], None, "predictions must be a dict question id -> str or a list of str"),
    ],
)
def test_bad_inputs_raise_one_line_value_error(predictions, answers, types, message):
    with pytest.raises(ValueError, match=message) as info:
        qa_accuracy(predictions, answers, types)
    assert "\n" not in str(info.value)


def test_real_val_split_oracle_reaches_the_documented_in_vocab_share(shared_data):
    folder = shared_data / "msrvtt_qa"
    vocabulary = json.loads((folder / "train_ans2label.json").read_text())
    records = [json.loads(line) for line in (folder / "val.jsonl").read_text().splitlines()]
    answers = [r["answer"] for r in records]
    result = qa_accuracy(answers, answers, [r["answer_type"] for r in records], vocabulary)
    # METHODS.md §4.9: 11,419 of the 12,278 val answers are in the 1500-answer vocabulary.
    assert (result["num_questions"], result["num_in_vocab"]) == (12278, 11419)
    assert result["accuracy"] == pytest.approx(100 * 11419 / 12278)
    assert result["accuracy_in_vocab"] == 100.0
    counts = {kind: row["count"] for kind, row in result["per_type"].items()}
    assert counts == {"what": 8337, "who": 3439, "how": 344, "when": 106, "where": 52}
