"""Typed registries for tasks, datasets and methods, with lazy entries and "did you mean" errors.

An entry is either an object or a lazy reference ``"package.module:attribute"`` that is imported on
first lookup, so listing what is registered never imports torch-heavy modules.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; its message is one line with the closest names."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """A name -> object mapping of one kind (task, dataset, method)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, target: Any, help: str = "") -> None:
        """Register ``target`` (an object or a ``"module:attr"`` string) under ``name``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = target
        self._help[name] = help

    def decorator(self, name: str, help: str = "") -> Callable[[Any], Any]:
        """Decorator form of :meth:`register`."""

        def wrap(obj: Any) -> Any:
            self.register(name, obj, help)
            return obj

        return wrap

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``, importing a lazy entry on first use."""
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}: {hint}registered: {known}")
        target = self._entries[name]
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module_name), attr)
            self._entries[name] = target
        return target

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line help) pairs, sorted by name."""
        return [(name, self._help[name]) for name in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries


TASKS = Registry("task")
DATASETS = Registry("dataset")
METHODS = Registry("method")
