"""Range and choice rules of the keys each dataset owns (its section of
``configs/datasets/<name>.yaml``) and of the split it is evaluated on, checked when the config is
resolved (:mod:`harness.config_checks`), and the split model selection scores
(``eval.val_split``): before synthvtt is generated or any annotation file is
read. Light: no torch, so the registry reaches them through
``DATASETS.register(..., checks="tasks.datasets.checks:<NAME>")``."""

from harness.config_checks import IntRange, KeyOf, Rule, one_of, positive_int
from tasks.datasets.annotations import SPLITS

SYNTHVTT: tuple[Rule, ...] = (
    IntRange("synthvtt.seed", 0, 2**32 - 1),  # numpy's seed range
    positive_int("synthvtt.train_videos"),
    positive_int("synthvtt.val_videos"),
    positive_int("synthvtt.test_videos"),
    one_of("eval.split", *SPLITS),
    one_of("eval.val_split", *SPLITS),
)

MSRVTT: tuple[Rule, ...] = (
    KeyOf("msrvtt.train_split", "msrvtt.train_csv"),
    KeyOf("msrvtt.test_split", "msrvtt.test_csv"),
    one_of("eval.split", *SPLITS),
    one_of("eval.val_split", *SPLITS),
)

# The file-backed entries name one file per split: the splits are that table's keys.
MSVD: tuple[Rule, ...] = (
    KeyOf("eval.split", "msvd.lists"),
    KeyOf("eval.val_split", "msvd.lists"),
)
LSMDC: tuple[Rule, ...] = (
    KeyOf("eval.split", "lsmdc.annotations"),
    KeyOf("eval.val_split", "lsmdc.annotations"),
)
ACTIVITYNET: tuple[Rule, ...] = (
    KeyOf("eval.split", "activitynet.ids"),
    KeyOf("eval.val_split", "activitynet.ids"),
)
DIDEMO: tuple[Rule, ...] = (
    KeyOf("eval.split", "didemo.lists"),
    KeyOf("eval.val_split", "didemo.lists"),
)
VATEX: tuple[Rule, ...] = (
    KeyOf("eval.split", "vatex.lists"),
    KeyOf("eval.val_split", "vatex.lists"),
)
MSRVTT_QA: tuple[Rule, ...] = (
    KeyOf("eval.split", "msrvtt_qa.questions"),
    KeyOf("eval.val_split", "msrvtt_qa.questions"),
)
