"""Tasks and datasets, registered by name (lazy entries: modules load on first use)."""

from harness.registry import DATASETS, TASKS

TASKS.register(
    "retrieval", "tasks.retrieval:RetrievalTask", help="text-video retrieval (T2V and V2T)"
)
TASKS.register("qa", "tasks.qa:QATask", help="open-ended video question answering (EMCL-QA)")
TASKS.register(
    "captioning",
    "tasks.captioning:CaptioningTask",
    help="video captioning: transformer decoder on EMCL video tokens (greedy or beam)",
)
DATASETS.register(
    "synthvtt",
    "tasks.datasets.synthvtt:SynthVTT",
    help="embedded synthetic benchmark, generated on first use (MSR-VTT formats)",
)
DATASETS.register(
    "msrvtt", "tasks.datasets.msrvtt:MSRVTT", help="MSR-VTT train 9k/7k/full, test 1k-A/full"
)
DATASETS.register("msvd", "tasks.datasets.msvd:MSVD", help="MSVD, multi-sentence test (670 videos)")
DATASETS.register("lsmdc", "tasks.datasets.lsmdc:LSMDC", help="LSMDC, 1,000-clip test")
DATASETS.register(
    "activitynet",
    "tasks.datasets.activitynet:ActivityNet",
    help="ActivityNet Captions paragraph retrieval (test = val_1)",
)
DATASETS.register("didemo", "tasks.datasets.didemo:DiDeMo", help="DiDeMo paragraph retrieval")
DATASETS.register(
    "vatex", "tasks.datasets.vatex:VATEX", help="VATEX English, multi-sentence test (1,500 videos)"
)
DATASETS.register("msrvtt_qa", "tasks.datasets.msrvtt_qa:MSRVTTQA", help="MSRVTT-QA (QA task)")
