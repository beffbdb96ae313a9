"""Tasks and datasets, registered by name (lazy entries: modules load on first use)."""

from harness.registry import DATASETS, TASKS

TASKS.register(
    "retrieval", "tasks.retrieval:RetrievalTask", help="text-video retrieval (T2V and V2T)"
)
DATASETS.register(
    "synthvtt",
    "tasks.datasets.synthvtt:SynthVTT",
    help="embedded synthetic benchmark, generated on first use (MSR-VTT formats)",
)
DATASETS.register(
    "msrvtt", "tasks.datasets.msrvtt:MSRVTT", help="MSR-VTT 9k train / 1k-A (JSFusion) test"
)
