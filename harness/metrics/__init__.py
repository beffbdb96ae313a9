"""Evaluation metrics: retrieval ranks and recalls (see :mod:`harness.metrics.retrieval`)."""

from harness.metrics.retrieval import (
    best_sentence_scores,
    inverted_softmax,
    multi_sentence_metrics,
    retrieval_metrics,
    retrieval_ranks,
    summarize_ranks,
)

__all__ = [
    "best_sentence_scores",
    "inverted_softmax",
    "multi_sentence_metrics",
    "retrieval_metrics",
    "retrieval_ranks",
    "summarize_ranks",
]
