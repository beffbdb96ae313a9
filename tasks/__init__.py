"""Tasks and datasets, registered by name (lazy entries: modules load on first use).

Each entry owns its default yaml under ``tasks/configs`` and the range and choice rules of its
keys (``tasks/checks.py``, ``tasks/datasets/checks.py``: importable without torch, checked when
the config is resolved); a task also names its result spec (``tasks/results``, importable
without torch), which the leaderboard reads.
"""

from pathlib import Path

from harness.registry import DATASETS, TASKS

CONFIGS = Path(__file__).resolve().parent / "configs"
BASE_CONFIG = CONFIGS / "base.yaml"


def _task(name: str, target: str, help: str) -> None:
    TASKS.register(
        name,
        target,
        help=help,
        config=CONFIGS / "tasks" / f"{name}.yaml",
        results=f"tasks.results.{name}:SPEC",
        checks=f"tasks.checks:{name.upper()}",
    )


def _dataset(name: str, target: str, help: str) -> None:
    folder = CONFIGS / "datasets"
    per_task = {p.name.split(".")[1]: p for p in folder.glob(f"{name}.*.yaml")}
    DATASETS.register(
        name,
        target,
        help=help,
        config=folder / f"{name}.yaml",
        task_configs=per_task,
        checks=f"tasks.datasets.checks:{name.upper()}",
    )


_task("retrieval", "tasks.retrieval:RetrievalTask", "text-video retrieval (T2V and V2T)")
_task("qa", "tasks.qa:QATask", "open-ended video question answering (answer classifier)")
_task("captioning", "tasks.captioning:CaptioningTask", "video captioning (greedy or beam)")

for _name, _target, _help in (
    ("synthvtt", "synthvtt:SynthVTT", "embedded synthetic benchmark, generated on first use"),
    ("msrvtt", "msrvtt:MSRVTT", "MSR-VTT train 9k/7k/full, test 1k-A/full"),
    ("msvd", "msvd:MSVD", "MSVD, multi-sentence test (670 videos)"),
    ("lsmdc", "lsmdc:LSMDC", "LSMDC, 1,000-clip test"),
    ("activitynet", "activitynet:ActivityNet", "ActivityNet Captions paragraphs (test = val_1)"),
    ("didemo", "didemo:DiDeMo", "DiDeMo paragraph retrieval"),
    ("vatex", "vatex:VATEX", "VATEX English, multi-sentence test (1,500 videos)"),
    ("msrvtt_qa", "msrvtt_qa:MSRVTTQA", "MSRVTT-QA (QA task)"),
):
    _dataset(_name, f"tasks.datasets.{_target}", _help)
