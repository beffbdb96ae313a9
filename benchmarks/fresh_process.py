"""What the benchmarks share: positive-integer arguments, and running one case in a fresh
process forked from a server that imported the case module (and torch) once, so that each
case's peak memory is its own and costs no import time."""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
from pathlib import Path
from typing import Any


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_list(example: str):
    """An argparse type: comma-separated positive integers; ``example`` shows the form."""

    def parse(text: str) -> list[int]:
        try:
            return [positive(part) for part in text.split(",")]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected positive sizes like {example}, got {text!r}"
            ) from None

    return parse


def case_context(module: str) -> Any:
    """A forkserver multiprocessing context whose server preloads ``module``."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([module])
    return context


def _case_entry(module: str, case: dict[str, Any]) -> None:
    importlib.import_module(module).run_case(case)  # preloaded by the fork server


def run_in_fresh_process(module: str, case: dict[str, Any], context: Any) -> dict[str, Any]:
    """``module.run_case(case)`` in a new process of ``context``; the record it wrote to
    ``case["record"]``, or ``{"error": why}`` if the process failed."""
    process = context.Process(target=_case_entry, args=(module, case))
    process.start()
    process.join()
    if process.exitcode == 0:
        return json.loads(Path(case["record"]).read_text())
    if process.exitcode == -9:
        return {"error": "killed (SIGKILL: out of memory?)"}
    return {"error": f"case process exited with status {process.exitcode} (traceback above)"}
