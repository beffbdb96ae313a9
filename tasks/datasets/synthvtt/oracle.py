"""Calibration statistics of synthvtt: the oracle ceiling of retrieval and the chance levels
of question answering."""

from __future__ import annotations

from collections import Counter

import numpy as np

YES_NO = {"yes", "no"}


def oracle_ceiling(meanings: list) -> dict[str, float]:
    """Best expected T2V R@1 (%) of a model that knows exactly what each caption says.

    ``meanings[i]`` is the meaning of query i and of video i (one caption per video). A query
    is matched at random among the videos with its meaning: expected R@1 = 1 / their number.
    Returns the ceiling and the share (%) of queries whose meaning is unique.
    """
    counts = Counter(meanings)
    shares = [1.0 / counts[m] for m in meanings]
    return {
        "r1": round(100.0 * float(np.mean(shares)), 2),
        "unique_queries": round(100.0 * float(np.mean([counts[m] == 1 for m in meanings])), 2),
    }


def qa_chance(train: list[dict], evaluated: list[dict], types: list[str]) -> dict:
    """Per answer type, accuracy (%) on ``evaluated`` of guessing uniformly among the train
    answers of that type (yes or no for yes/no questions), and of always giving the most
    frequent train answer of that type."""
    chance = {}
    for kind in types:
        train_answers = Counter(q["answer"] for q in train if q["answer_type"] == kind)
        items = [q for q in evaluated if q["answer_type"] == kind]
        if not items:
            continue
        open_answers = max(1, len(set(train_answers) - YES_NO))
        top = train_answers.most_common(1)[0][0]
        chance[kind] = {
            "uniform": round(
                100.0
                * np.mean([1 / (2 if q["answer"] in YES_NO else open_answers) for q in items]),
                2,
            ),
            "majority": round(100.0 * np.mean([q["answer"] == top for q in items]), 2),
        }
    return chance
