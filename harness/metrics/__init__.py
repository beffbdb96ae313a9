"""Evaluation metrics: retrieval ranks and recalls (:mod:`harness.metrics.retrieval`), caption
metrics (:mod:`harness.metrics.captioning`), QA accuracy (:mod:`harness.metrics.qa`)."""

from harness.metrics.captioning import (
    CAPTION_METRIC_KEYS,
    PER_VIDEO_KEYS,
    CaptionScores,
    caption_metrics,
    caption_scores,
)
from harness.metrics.postprocess import dual_softmax, inverted_softmax, qb_norm
from harness.metrics.qa import qa_accuracy
from harness.metrics.retrieval import (
    best_sentence_scores,
    multi_sentence_metrics,
    retrieval_metrics,
    retrieval_ranks,
    summarize_ranks,
)

__all__ = [
    "CAPTION_METRIC_KEYS",
    "PER_VIDEO_KEYS",
    "CaptionScores",
    "caption_metrics",
    "caption_scores",
    "qa_accuracy",
    "best_sentence_scores",
    "dual_softmax",
    "inverted_softmax",
    "qb_norm",
    "multi_sentence_metrics",
    "retrieval_metrics",
    "retrieval_ranks",
    "summarize_ranks",
]
