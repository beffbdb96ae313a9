"""The result specs of the registered tasks: the only way the leaderboard learns what a task's
tables show (:mod:`harness.result_spec`). Tasks must be registered first (``import tasks``)."""

from __future__ import annotations

from harness.registry import TASKS
from harness.result_spec import ResultSpec


def is_registered(task: str) -> bool:
    """Whether ``task`` is a registered task name."""
    return task in TASKS


def registered_tasks() -> str:
    """The registered task names, sorted and joined by ", " (for one-line errors)."""
    return ", ".join(TASKS.names())


def spec_of(task: str) -> ResultSpec:
    """The result spec ``task`` registers (a registered name, see :func:`is_registered`); a
    task without one raises :class:`harness.registry.UnknownNameError` (one line)."""
    spec = TASKS.entry(task).result_spec()
    if not isinstance(spec, ResultSpec):
        raise TypeError(f"task {task!r} registers a {type(spec).__name__}, not a ResultSpec")
    return spec
