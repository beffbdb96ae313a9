"""Input checks shared by the metrics: both sides of a comparison must cover the same ids."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any


def check_same_keys(
    reference: Mapping[Hashable, Any],
    other: Mapping[Hashable, Any],
    ref_name: str,
    name: str,
    what: str,
) -> None:
    """Raise a one-line ValueError naming the first ``what`` (e.g. ``"video id"``) that only one
    of ``reference`` (called ``ref_name``) and ``other`` (called ``name``) has; the ids of
    ``reference`` are checked first, in its order."""
    for key in reference:
        if key not in other:
            raise ValueError(f"{name} has no entry for {what} {key!r} (in {ref_name})")
    for key in other:
        if key not in reference:
            raise ValueError(f"{ref_name} has no entry for {what} {key!r} (in {name})")
