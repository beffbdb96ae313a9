"""Typed registries for tasks, datasets, methods and frame rules, with lazy entries and "did you
mean" errors.

An entry is an object or a lazy reference ``"package.module:attribute"`` that is imported on first
lookup, so listing what is registered never imports torch-heavy modules. Each entry owns its
default yaml (``config``) and the range and choice rules of the keys it owns (``checks``, a lazy
reference to a tuple of :class:`harness.config_checks.Rule` in a module importable without
torch); a dataset may add one yaml per task (``task_configs``), and a task names its light result
spec (``results``, a lazy reference importable without torch); a method may name the loader of
its reference repository's released checkpoints (``reference_checkpoint``, a lazy reference to
a function ``(model, state_dict) -> None``). Methods are
registered per task: the same name (e.g. the paper's method) may exist for several tasks, each
with its own implementation and yaml.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError


class UnknownNameError(UserError, KeyError):
    """Raised for a name that is not registered; its message is one line with the closest names."""


def resolve(target: Any) -> Any:
    """``target`` itself, or the attribute a ``"module:attr"`` string names (imported now)."""
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass
class Entry:
    """One registered name: what it builds, a one-line help, its default yaml and extras."""

    name: str
    target: Any
    help: str = ""
    config: Path | None = None
    task_configs: Mapping[str, Path] = field(default_factory=dict)
    results: Any = None
    checks: Any = None
    reference_checkpoint: Any = None

    def load(self) -> Any:
        """The registered object, importing a lazy reference on first use."""
        self.target = resolve(self.target)
        return self.target

    def result_spec(self) -> Any:
        """The light result spec (tasks only), importing a lazy reference on first use."""
        if self.results is None:
            raise UnknownNameError(f"{self.name!r} declares no result spec")
        self.results = resolve(self.results)
        return self.results

    def rules(self) -> tuple[Any, ...]:
        """The config rules of the keys this entry owns (none when it declares none), importing a
        lazy reference on first use."""
        self.checks = resolve(self.checks) if self.checks is not None else ()
        return tuple(self.checks)

    def reference_adapter(self) -> Any:
        """The loader of the reference repository's checkpoint layout, ``(model, state_dict) ->
        None`` (None when the entry declares none), importing a lazy reference on first use."""
        if self.reference_checkpoint is not None:
            self.reference_checkpoint = resolve(self.reference_checkpoint)
        return self.reference_checkpoint


class Registry:
    """A name -> :class:`Entry` mapping of one kind (task, dataset, or the methods of one task)."""

    def __init__(self, kind: str, scope: str = "") -> None:
        self.kind = kind
        self.scope = scope  # e.g. " of task T": said after the name in an unknown-name error
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        target: Any,
        help: str = "",
        config: Path | None = None,
        task_configs: Mapping[str, Path] | None = None,
        results: Any = None,
        checks: Any = None,
        reference_checkpoint: Any = None,
    ) -> None:
        """Register ``target`` (an object or a ``"module:attr"`` string) under ``name``, with its
        default yaml ``config``, per-task yamls ``task_configs``, ``results`` spec, config
        rules ``checks`` and reference checkpoint loader ``reference_checkpoint``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(
            name,
            target,
            help,
            config,
            dict(task_configs or {}),
            results,
            checks,
            reference_checkpoint,
        )

    def entry(self, name: str) -> Entry:
        """The entry of ``name``; an unknown name raises :class:`UnknownNameError` (one line)."""
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{self.scope}: {hint}registered: {known}"
            )
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The object registered as ``name``, importing a lazy entry on first use."""
        return self.entry(name).load()

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line help) pairs, sorted by name."""
        return [(name, self._entries[name].help) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries


class MethodRegistry:
    """Methods keyed by task: one :class:`Registry` per task name."""

    def __init__(self) -> None:
        self._by_task: dict[str, Registry] = {}

    def register(
        self,
        task: str,
        name: str,
        target: Any,
        help: str = "",
        config: Path | None = None,
        checks: Any = None,
        reference_checkpoint: Any = None,
    ) -> None:
        """Register method ``name`` of ``task`` (``target`` an object or ``"module:attr"``), with
        its default yaml ``config``, config rules ``checks`` and the loader of its reference
        checkpoints ``reference_checkpoint``."""
        registry = self._by_task.setdefault(task, Registry("method", f" of task {task}"))
        registry.register(
            name, target, help, config, checks=checks, reference_checkpoint=reference_checkpoint
        )

    def of(self, task: str) -> Registry:
        """The methods of ``task`` (an empty registry when it has none)."""
        return self._by_task.get(task) or Registry("method", f" of task {task}")

    def entry(self, task: str, name: str) -> Entry:
        """The entry of method ``name`` of ``task``; unknown names raise one line."""
        return self.of(task).entry(name)

    def get(self, task: str, name: str) -> Any:
        """The method class ``name`` of ``task``, imported on first use."""
        return self.of(task).get(name)

    def tasks(self) -> list[str]:
        """The tasks that have methods, sorted."""
        return sorted(self._by_task)


TASKS = Registry("task")
DATASETS = Registry("dataset")
METHODS = MethodRegistry()
# data.sampling: which frames a clip reads (harness.frame_rules.FrameRule entries). The harness
# registers the two library readers; a method's own loader is registered beside the method.
FRAME_RULES = Registry("frame rule (data.sampling)")
FRAME_RULES.register(
    "decord", "harness.frame_rules:DECORD", "EMCL-Net, DRL: stride round(fps/rate), then uniform"
)
FRAME_RULES.register(
    "cv2_grid",
    "harness.frame_rules:CV2_GRID",
    "CLIP4Clip, X-CLIP: int(fps) grid of rate frames a second, then slice_framepos",
)
