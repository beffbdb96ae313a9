"""The share of training time spent waiting for data, read from real engine runs.

Two runs of the same config train one epoch and two epochs (then evaluate, as every run does);
each record's ``timings`` give ``data_wait_s`` and ``train_s``. The second epoch alone is the
difference of the two runs: its wait is free of the loader's start (workers spawning, the first
batches), which the first epoch pays.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from harness.engine import RunRequest, make_accelerator, run
from harness.registry import TASKS


def train_timings(config: dict[str, Any], epochs: int, out: Path) -> dict[str, float]:
    """``{"train_s", "data_wait_s", "step_s", "steps"}`` of one engine run of ``config`` for
    ``epochs`` epochs, written into ``out``."""
    config = copy.deepcopy(config)
    config["train"]["epochs"] = epochs
    accelerator = make_accelerator(config, "no")
    record = run(config, TASKS.get(config["task"])(config), RunRequest(output_dir=out), accelerator)
    accelerator.free_memory()
    timings = record["timings"]
    return {
        "train_s": timings["train_s"],
        "data_wait_s": timings["data_wait_s"],
        "step_s": timings["step_s"],
        "steps": record["training"]["steps"],
    }


def data_wait(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The one- and two-epoch runs' timings, the data-wait fraction ``data_wait_s / train_s``
    of the two-epoch run, and that of its second epoch alone."""
    one, two = (train_timings(config, n, folder / f"epochs_{n}") for n in (1, 2))
    second_train = two["train_s"] - one["train_s"]
    return {
        "num_workers": config["data"]["num_workers"],
        "runs": {"epochs_1": one, "epochs_2": two},
        "fraction": two["data_wait_s"] / two["train_s"],
        "fraction_second_epoch": (
            (two["data_wait_s"] - one["data_wait_s"]) / second_train if second_train > 0 else None
        ),
    }
