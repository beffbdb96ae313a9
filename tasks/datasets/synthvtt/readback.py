"""Reading a generation's own files back (twins.json, meta.json): each read is checked, and a
damaged file is a one-line DataError naming it and how to get a whole folder again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import DataError

REGENERATE = "delete the synthvtt folder to have it generated again"
EVALUATED_SPLITS = ("val", "test")  # the splits meta.json gives chance levels and oracles for


def read_json(path: Path) -> Any:
    """The parsed JSON file ``path`` of a generated folder; a missing, unreadable, non-UTF-8 or
    malformed file is a one-line DataError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        raise DataError(f"{path}: cannot read it as UTF-8 text ({reason}); {REGENERATE}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); {REGENERATE}"
        ) from None


def twin_partners(folder: Path, split: str) -> dict[str, str]:
    """Each order-twin video of ``split`` -> its twin, from ``folder/twins.json`` (``{split:
    [[video id, video id], ...]}``); a file of another shape is a one-line DataError."""
    path = folder / "twins.json"
    twins = read_json(path)
    pairs = twins.get(split) if isinstance(twins, dict) else None
    if not isinstance(pairs, list) or not all(_is_id_pair(pair) for pair in pairs):
        raise DataError(
            f"{path}: expected {{split: [[video id, video id], ...]}} with the split {split!r}; "
            f"{REGENERATE}"
        )
    partner = {}
    for a, b in pairs:
        partner[a], partner[b] = b, a
    return partner


def _is_id_pair(pair: object) -> bool:
    return isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)


def calibration_notes(folder: Path, split: str) -> list[str]:
    """The line on the chance level and the oracle ceilings of ``split`` from
    ``folder/meta.json`` (none for train, which has neither). Read when the entry is built, so a
    damaged file stops a run before it trains or evaluates; a value that is not a number is a
    one-line DataError naming the file and the key."""
    path = folder / "meta.json"
    meta = read_json(path)
    if split not in EVALUATED_SPLITS:
        return []
    chance = _number(meta, path, "chance", split, "t2v_R@1")
    oracle = _number(meta, path, "oracle", split, "t2v", "r1")
    blind = _number(meta, path, "oracle", split, "t2v_order_blind", "r1")
    return [
        f"synthvtt {split}: chance T2V R@1 {chance:.1f}, oracle ceiling R@1 {oracle:.1f} "
        f"(order-blind oracle {blind:.1f})"
    ]


def _number(meta: Any, path: Path, *keys: str) -> float:
    """``meta[keys[0]][keys[1]]...`` if it is a number, else a one-line DataError."""
    value = meta
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise DataError(f"{path}: no number at {'.'.join(keys)}; {REGENERATE}")
    return float(value)
