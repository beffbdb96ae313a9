"""Open-ended video QA accuracy (MSRVTT-QA conventions, METHODS.md §4.9).

Two numbers, because the literature mixes them:

* ``accuracy``: percentage correct over ALL questions; a question whose ground-truth answer is
  outside the answer vocabulary counts as wrong (the standard MSRVTT-QA protocol: a classifier
  over the vocabulary cannot produce it).
* ``accuracy_in_vocab``: percentage correct over the questions whose ground-truth answer is in
  the vocabulary only (the EMCL-QA reference convention: its test loader drops the others; on
  MSRVTT-QA ``val.jsonl`` 11,419 of 12,278 questions are kept).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any

from harness.metrics.checks import check_same_keys

PerQuestion = Mapping[Hashable, str] | Sequence[str]


def qa_accuracy(
    predictions: PerQuestion,
    answers: PerQuestion,
    answer_types: PerQuestion | None = None,
    vocabulary: Collection[str] | None = None,
) -> dict[str, Any]:
    """Exact-match answer accuracy, overall and per answer type.

    ``predictions``, ``answers`` and ``answer_types`` give, per question, the predicted answer
    string, the ground-truth answer string and the answer type (MSRVTT-QA: what, who, how, when,
    where). Each is either a mapping question id -> string (the same ids in all three) or a list
    aligned by position (question id = index, e.g. the line number in an MSRVTT-QA ``.jsonl``).
    ``vocabulary`` is the set of answers the model can give (e.g. the keys of
    ``train_ans2label.json``); None means every answer is in it. A prediction is correct when it
    equals the answer string exactly (no case or whitespace folding) and the answer is in the
    vocabulary.

    Returns ``{"accuracy", "accuracy_in_vocab", "num_questions", "num_in_vocab", "per_type"}``:
    accuracies are percentages; ``accuracy`` is over all questions (out-of-vocabulary answers
    count as wrong: the standard protocol), ``accuracy_in_vocab`` over questions whose answer is
    in the vocabulary (the EMCL-QA reference's number; None when there are none).
    ``per_type`` maps each answer type, in order of first appearance, to ``{"accuracy",
    "accuracy_in_vocab", "count", "num_in_vocab"}`` of its questions; it is empty without
    ``answer_types``.
    """
    predicted = _by_question(predictions, "predictions")
    truth = _by_question(answers, "answers")
    if not truth:
        raise ValueError("answers is empty; pass at least one question")
    check_same_keys(truth, predicted, "answers", "predictions", "question")
    types = _by_question(answer_types, "answer_types") if answer_types is not None else {}
    if answer_types is not None:
        check_same_keys(truth, types, "answers", "answer_types", "question")

    in_vocab = {q: vocabulary is None or a in vocabulary for q, a in truth.items()}
    correct = {q: in_vocab[q] and predicted[q] == a for q, a in truth.items()}
    overall = _summary(list(truth), correct, in_vocab)
    by_type: dict[str, list[Hashable]] = {}
    for question, kind in types.items():
        by_type.setdefault(kind, []).append(question)
    return {
        "accuracy": overall["accuracy"],
        "accuracy_in_vocab": overall["accuracy_in_vocab"],
        "num_questions": overall["count"],
        "num_in_vocab": overall["num_in_vocab"],
        "per_type": {kind: _summary(qs, correct, in_vocab) for kind, qs in by_type.items()},
    }


def _by_question(values: PerQuestion, name: str) -> dict[Hashable, str]:
    """question id -> string from a mapping or a position-aligned list; one-line errors."""
    if isinstance(values, Mapping):
        table = dict(values)
    elif isinstance(values, Sequence) and not isinstance(values, str):
        table = dict(enumerate(values))
    else:
        raise ValueError(f"{name} must be a dict question id -> str or a list of str")
    for question, value in table.items():
        if not isinstance(value, str):
            raise ValueError(
                f"{name}[{question!r}] must be a string, got {type(value).__name__} "
                "(map class labels to answer strings first)"
            )
    return table


def _summary(
    questions: list[Hashable], correct: Mapping[Hashable, bool], in_vocab: Mapping[Hashable, bool]
) -> dict[str, Any]:
    """Accuracies (percent) of a group of questions, over all of them and over in-vocab ones."""
    num_correct = sum(correct[q] for q in questions)
    num_in_vocab = sum(in_vocab[q] for q in questions)
    return {
        "accuracy": 100.0 * num_correct / len(questions),
        # Out-of-vocabulary questions are never correct, so the numerator is shared.
        "accuracy_in_vocab": 100.0 * num_correct / num_in_vocab if num_in_vocab else None,
        "count": len(questions),
        "num_in_vocab": num_in_vocab,
    }
