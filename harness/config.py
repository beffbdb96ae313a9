"""YAML configs: defaults <- task, method, dataset yamls <- user yaml <- ``-o key=value``.

The default layers declare every key: a user file or an override can only set keys that exist there,
with a value of the same type. Errors are :class:`ConfigError`, whose message is one line naming
the key (and the file) and what to do.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

Config = dict[str, Any]


class ConfigError(ValueError):
    """A bad config file, key or value; the message is one line."""


def load_yaml(path: Path) -> Config:
    """Read a yaml mapping from ``path``; a missing file or malformed yaml is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: check the path given to --config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid yaml"
        raise ConfigError(f"config file {path} is not valid yaml{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys, not {type(data).__name__}"
        )
    return data


def merge_defaults(base: Config, layer: Mapping[str, Any]) -> Config:
    """Deep-merge a defaults ``layer`` into ``base``; a defaults layer may introduce new keys."""
    merged = copy.deepcopy(base)
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_defaults(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_user(config: Config, layer: Mapping[str, Any], source: str) -> Config:
    """Deep-merge a user ``layer`` (from ``source``): only known keys, of the same types."""
    merged = copy.deepcopy(config)
    for key, value in _flatten(layer):
        set_key(merged, key, value, source)
    return merged


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"a.b=value"`` into the dotted key and the yaml-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"override {text!r} must look like section.key=value (e.g. train.lr=1e-4)"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()  # yaml 1.1 reads on/off/yes/no as booleans; keep the word
    return key.strip(), value


def apply_overrides(config: Config, overrides: Iterable[str]) -> Config:
    """Apply ``-o key=value`` strings in order."""
    merged = copy.deepcopy(config)
    for text in overrides:
        key, value = parse_override(text)
        set_key(merged, key, value, source=f"-o {text}")
    return merged


def set_key(config: Config, dotted: str, value: Any, source: str) -> None:
    """Set ``config[a][b] = value`` for ``dotted = "a.b"``, checking the key exists and the type."""
    node: Any = config
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            prefix = ".".join(parts[:depth])
            siblings = list(node) if isinstance(node, dict) else []
            close = difflib.get_close_matches(part, siblings, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(f'{prefix}.{c}'.lstrip('.') for c in close)}?)"
            raise ConfigError(
                f"unknown config key {dotted!r} in {source}{hint if close else ''}: "
                "run `python run.py --show-config` to list the keys"
            )
        if depth < len(parts) - 1:
            node = node[part]
    node[parts[-1]] = coerce(dotted, node[parts[-1]], value, source)


def coerce(key: str, default: Any, value: Any, source: str) -> Any:
    """Return ``value`` converted to the type of ``default``, or raise a one-line ConfigError."""
    if default is None or value is None:
        return value
    if isinstance(default, dict):
        if isinstance(value, dict):
            return value
        raise ConfigError(
            f"config key {key!r} in {source} is a section; set its keys as {key}.NAME"
        )
    expected = type(default)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                ok = False
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            return float(value)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(
            f"config key {key!r} in {source} must be {expected.__name__}, "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def check_choice(key: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise a one-line ConfigError when ``value`` of ``key`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(
            f"config key {key!r} must be one of {', '.join(map(str, choices))}, got {value!r}"
        )


def get_key(config: Config, dotted: str) -> Any:
    """Read ``config[a][b]`` for ``dotted = "a.b"``."""
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _flatten(layer: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def to_yaml(config: Config) -> str:
    """The config as yaml text (key order kept)."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
