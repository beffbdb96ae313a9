"""Range and choice rules of the keys each task owns (its yaml under ``configs/tasks``), checked
when the config is resolved (:mod:`harness.config_checks`). Light: no torch, so the registry
reaches them through ``TASKS.register(..., checks="tasks.checks:<TASK>")``."""

from harness.config_checks import (
    Rule,
    Unsupported,
    dropout,
    finite,
    non_negative,
    one_of,
    positive,
    positive_int,
    subset_of,
)

DECODERS = ("greedy", "beam")
# harness.metrics.postprocess.POSTPROCESSINGS (that module imports torch)
POSTPROCESSINGS = ("inverted_softmax", "dsl", "qb_norm")

RETRIEVAL: tuple[Rule, ...] = (
    positive("eval.inverted_softmax_temp"),  # the scores are divided by it
    subset_of("eval.postprocess", *POSTPROCESSINGS),
    positive_int("eval.qb_norm_bank"),
    positive("eval.qb_norm_beta"),
)

QA: tuple[Rule, ...] = (
    positive_int("qa.proj_dim", optional=True),  # null: 4 x D
    positive_int("qa.classifier_dim", optional=True),  # null: 2 x (2 x proj_dim)
    dropout("qa.dropout"),
    non_negative("qa.contrastive_weight"),
)

CAPTIONING: tuple[Rule, ...] = (
    positive_int("captioning.decoder_layers"),
    dropout("captioning.dropout"),
    positive_int("captioning.max_len"),
    one_of("captioning.decode", *DECODERS),
    positive_int("captioning.beam_size"),
    finite("captioning.length_penalty"),
    # a per-sample loss: accumulation gives the full batch gradient
    Unsupported(
        "train.micro_batch",
        "for captioning (a per-sample loss: train.grad_accum gives the full batch's gradient)",
    ),
)
