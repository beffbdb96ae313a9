"""The layering rules a contributor relies on: harness names no task, method or dataset; the
registries list at least two methods per task without importing torch; a user error is one line
and a bug keeps its traceback."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import baselines  # noqa: F401  (registers the methods)
import tasks  # noqa: F401  (registers tasks and datasets)
from harness.registry import DATASETS, METHODS, TASKS
from tests.conftest import REPO_ROOT


def registered_names() -> set[str]:
    names = set(TASKS.names()) | set(DATASETS.names())
    for task in METHODS.tasks():
        names |= set(METHODS.of(task).names())
    return names


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant of ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_string_literal_in_harness_is_a_task_method_or_dataset_name():
    names = registered_names()
    assert {"retrieval", "qa", "captioning", "emcl", "synthvtt"} <= names
    found = [
        f"{path.relative_to(REPO_ROOT)}:{line} {value!r}"
        for path in sorted((REPO_ROOT / "harness").rglob("*.py"))
        for line, value in string_literals(path)
        if value in names
    ]
    assert found == []


def imported_modules(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "run.py", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    return result, modules


@pytest.mark.parametrize("flag", ["--list", "--help"])
def test_list_and_help_answer_without_importing_torch(flag):
    result, modules = imported_modules(flag)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torch" not in modules and "transformers" not in modules


def test_list_shows_two_or_more_methods_for_every_task():
    result, _ = imported_modules("--list")
    lines = result.stdout.splitlines()
    for task in ("retrieval", "qa", "captioning"):
        start = next(i for i, line in enumerate(lines) if line.split()[:1] == [task])
        methods = []
        for line in lines[start + 1 :]:
            if not line.startswith("    "):
                break
            methods.append(line.split()[0])
        assert len(methods) >= 2 and "emcl" in methods, (task, methods)
    assert set(METHODS.of("qa").names()) == {"emcl", "clip"}
    assert set(METHODS.of("captioning").names()) == {"emcl", "clip"}


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    import run
    from harness.config import ConfigError

    def user_error(args):
        raise ConfigError("config key 'train.lr' must be float")

    monkeypatch.setattr(run, "resolve_config", user_error)
    assert run.main(["--task", "retrieval", "--show-config"]) == 2
    assert capsys.readouterr().err == "error: config key 'train.lr' must be float\n"

    def bug(args):
        raise ValueError("an internal shape mismatch")

    monkeypatch.setattr(run, "resolve_config", bug)
    with pytest.raises(ValueError, match="internal shape mismatch"):
        run.main(["--task", "retrieval", "--show-config"])
