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

from harness.errors import UserError

Config = dict[str, Any]


class ConfigError(UserError, ValueError):
    """A bad config file, key or value; the message is one line."""


# the default of a key the harness derives unless a number is given (data.num_workers)
AUTO = "auto"


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
    if default == AUTO:
        return value  # "auto" or what replaces it (a count, a word, a path): its rule checks it
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


def layered_config(
    base: Config,
    layers: Sequence[tuple[Path, Mapping[str, Any] | None]],
    dataset_layers: Sequence[Path],
) -> Config:
    """``base`` with each default layer merged in order, then the dataset layers.

    ``layers``: (yaml, extra) pairs of the task and method entries; a missing yaml is skipped
    and ``extra`` (e.g. ``{"method": {"name": ...}}``) is merged after it. A dataset layer may add
    sections of its own and set any declared key; its ``method`` keys apply only where the
    method declares them (a dataset tunes the knobs a method has, e.g. its temporal depth).
    """
    config = copy.deepcopy(base)
    for path, extra in layers:
        if Path(path).is_file():
            config = merge_defaults(config, load_yaml(path))
        if extra:
            config = merge_defaults(config, extra)
    for path in dataset_layers:
        if not Path(path).is_file():
            continue
        layer = dict(load_yaml(path))
        method = layer.pop("method", None) or {}
        config = merge_defaults(config, layer)
        declared = {k: v for k, v in method.items() if k in config.get("method", {})}
        config = merge_defaults(config, {"method": declared})
    return config


def resolve_names(
    base: Config, given: Mapping[str, str | None], user: Mapping[str, Any], overrides: Iterable[str]
) -> dict[str, str]:
    """The ``task``, ``dataset`` and ``method.name`` of a run: from ``given`` (the command
    line's --task/--dataset/--method), else the last ``-o`` of that key, else the user yaml,
    else ``base``. Returns ``{"task": ..., "dataset": ..., "method.name": ...}``."""
    parsed = [parse_override(text) for text in overrides]
    names = {}
    for key in ("task", "dataset", "method.name"):
        from_overrides = [str(v) for k, v in parsed if k == key]
        try:
            from_user = get_key(dict(user), key)
        except (KeyError, TypeError):
            from_user = None
        names[key] = (
            given.get(key)
            or (from_overrides[-1] if from_overrides else None)
            or from_user
            or get_key(base, key)
        )
    return names


def resolve_reference_sampling(config: Config) -> None:
    """Replace ``data.sampling=reference`` by the run's own rule, ``data.reference_sampling``
    (set by the method's yaml and, where every reference reads a dataset one way, by the
    dataset's), so that records, frame caches and resumes see the rule actually used."""
    from harness.config_checks import REFERENCE_SAMPLING  # see resolve_config

    data = config["data"]
    if data["sampling"] == REFERENCE_SAMPLING:
        data["sampling"] = data["reference_sampling"]


def resolve_config(
    base_path: Path,
    given: Mapping[str, str | None],
    user_path: Path | None = None,
    overrides: Sequence[str] = (),
    saved_path: Path | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Config:
    """The run's config: base <- task yaml <- method yaml <- dataset yaml <- dataset-for-task
    yaml <- ``saved_path`` (a run's saved config.yaml) <- ``user_path`` <- ``settings`` (dotted
    keys set by command-line flags, e.g. ``{"data.root": ...}``) <- ``overrides`` (``-o``).

    The yamls are the ones the registry entries own; ``given`` holds the names from the command
    line (see :func:`resolve_names`). Unknown names raise a one-line ``UnknownNameError``. The
    result is checked against the range and choice rules of the harness and of the task, dataset
    and method entries (:mod:`harness.config_checks`), so a bad value is a one-line
    ``ConfigError`` before anything is generated, loaded or trained on.
    """
    # imported here: harness.config_checks imports this module (ConfigError, get_key)
    from harness.config_checks import HARNESS, check_config
    from harness.registry import DATASETS, METHODS, TASKS

    base = load_yaml(base_path)
    user = load_yaml(user_path) if user_path else {}
    names = resolve_names(base, given, user, overrides)
    task, dataset, method = names["task"], names["dataset"], names["method.name"]
    task_entry, dataset_entry = TASKS.entry(task), DATASETS.entry(dataset)
    method_entry = METHODS.entry(task, method)
    config = layered_config(
        base,
        [(task_entry.config, None), (method_entry.config, {"method": {"name": method}})],
        [p for p in (dataset_entry.config, dataset_entry.task_configs.get(task)) if p],
    )
    config.update(task=task, dataset=dataset)
    config["method"]["name"] = method
    if saved_path is not None and Path(saved_path).is_file():
        config = apply_user(config, load_yaml(saved_path), str(saved_path))
    config = apply_user(config, user, str(user_path))
    for key, value in (settings or {}).items():
        set_key(config, key, value, source="the command line")
    config = apply_overrides(config, overrides)
    resolve_reference_sampling(config)
    entries = (task_entry, dataset_entry, method_entry)
    check_config(config, HARNESS + tuple(r for entry in entries for r in entry.rules()))
    return config
