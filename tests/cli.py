"""Running ``run.py`` as a user does (a subprocess; 2 processes through ``accelerate launch``
on CPU with gloo) and reading a run folder back."""

import json
import os
import resource
import subprocess
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from tests.conftest import REPO_ROOT

# A synthvtt run that takes seconds on a CPU: few videos, frames and steps.
TINY_SYNTHVTT: dict[str, str | int] = {
    "synthvtt.train_videos": 24,
    "synthvtt.test_videos": 16,
    "synthvtt.val_videos": 4,
    "train.epochs": 1,
    "train.batch_size": 8,
    "eval.batch_size": 16,
    "eval.block_size": 8,
    "data.max_frames": 4,
}


def tiny_overrides(changes: Mapping[str, str | int | None] | None = None) -> list[str]:
    """The ``-o key=value`` arguments of a tiny synthvtt run (:data:`TINY_SYNTHVTT`) with
    ``changes`` applied: a key set to a value replaces or adds it, set to None drops it (the
    config's default applies)."""
    settings = {**TINY_SYNTHVTT, **(changes or {})}
    return [
        arg
        for key, value in settings.items()
        if value is not None
        for arg in ("-o", f"{key}={value}")
    ]


def run_cli(
    *args: str,
    processes: int = 1,
    memory_limit: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``python run.py *args`` (or ``accelerate launch`` with ``processes``), offline, 1 thread;
    ``memory_limit``: the address space of each process, in bytes (RLIMIT_AS); ``env``: more
    environment variables (e.g. the test hook ``EMCL_BENCH_TEST_KILL``)."""
    cap = None if memory_limit is None else (memory_limit, memory_limit)
    if processes == 1:
        command = [sys.executable, "run.py"]
    else:
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(processes), "--num_machines", "1",
            "--main_process_port", "29531", "run.py",
        ]  # fmt: skip
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **offline, "ACCELERATE_USE_CPU": "true", **(env or {})},
        timeout=600,
        preexec_fn=cap and partial(resource.setrlimit, resource.RLIMIT_AS, cap),
    )


def read_results(folder: Path) -> dict:
    """A run folder's results.json."""
    return json.loads((folder / "results.json").read_text())


def read_samples(folder: Path) -> list[dict]:
    """A run folder's samples.jsonl, one dict per line."""
    return [json.loads(line) for line in (folder / "samples.jsonl").open()]
