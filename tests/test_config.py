"""Config resolution, registry lookups and the one-line errors a user sees from run.py."""

import subprocess
import sys

import pytest
import yaml

from harness.config import ConfigError, apply_overrides, apply_user, load_yaml, merge_defaults
from harness.registry import Registry, UnknownNameError
from tests.conftest import REPO_ROOT

DEFAULTS = {"seed": 0, "train": {"lr": 0.0001, "epochs": 5, "optimizer": "adamw"}}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


def test_overrides_parse_values_with_the_default_type():
    config = apply_overrides(DEFAULTS, ["train.lr=1e-3", "train.epochs=2", "seed=7"])
    assert config["train"] == {"lr": 0.001, "epochs": 2, "optimizer": "adamw"}
    assert config["seed"] == 7
    assert DEFAULTS["train"]["lr"] == 0.0001  # inputs are not mutated


def test_override_words_like_off_stay_strings():
    config = apply_overrides({"method": {"emcl": "off", "flag": False}}, ["method.emcl=off"])
    assert config["method"]["emcl"] == "off"
    assert apply_overrides(config, ["method.flag=true"])["method"]["flag"] is True


def test_unknown_key_names_the_key_and_suggests():
    with pytest.raises(ConfigError) as err:
        apply_overrides(DEFAULTS, ["train.lrr=1"])
    message = str(err.value)
    assert "train.lrr" in message and "train.lr" in message and "\n" not in message


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="'train.epochs'.*must be int.*'five'"):
        apply_overrides(DEFAULTS, ["train.epochs=five"])
    with pytest.raises(ConfigError, match="'train.lr'.*must be float"):
        apply_user(DEFAULTS, {"train": {"lr": [1]}}, "user.yaml")


def test_user_file_with_unknown_section_is_an_error(tmp_path):
    path = tmp_path / "user.yaml"
    path.write_text("trian:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=f"'trian.lr' in {path}"):
        apply_user(DEFAULTS, load_yaml(path), str(path))


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: [0.1\n  epochs: 3\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert str(path) in str(err.value) and "line" in str(err.value)


def test_defaults_layers_may_add_keys():
    merged = merge_defaults(DEFAULTS, {"train": {"new_key": 1}})
    assert merged["train"]["new_key"] == 1 and merged["train"]["lr"] == 0.0001


def test_registry_suggests_close_names_and_imports_lazily():
    registry = Registry("method")
    registry.register("clip4clip", "json:dumps")
    registry.register("xclip", "json:loads")
    import json

    assert registry.get("xclip") is json.loads
    with pytest.raises(UnknownNameError) as err:
        registry.get("clip4clp")
    assert "unknown method 'clip4clp'" in str(err.value) and "did you mean clip4clip" in str(
        err.value
    )


def test_cli_list_and_show_config():
    listed = run_cli("--list")
    assert listed.returncode == 0
    assert "retrieval" in listed.stdout and "synthvtt" in listed.stdout and "emcl" in listed.stdout
    shown = run_cli("--task", "retrieval", "--show-config", "-o", "train.epochs=2")
    assert shown.returncode == 0, shown.stderr
    config = yaml.safe_load(shown.stdout)
    assert config["train"]["epochs"] == 2
    assert config["data"]["image_size"] == 64  # synthvtt's dataset defaults apply
    assert config["method"]["name"] == "emcl" and config["method"]["k"] == 32


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--task", "retrievl"], "unknown task 'retrievl': did you mean retrieval?"),
        (["--task", "retrieval", "--method", "emc"], "unknown method 'emc'"),
        (["--task", "retrieval", "-o", "train.lrr=1"], "unknown config key 'train.lrr'"),
        (["--task", "retrieval", "-o", "train.epochs=x"], "'train.epochs'"),
        (["--task", "retrieval", "--config", "missing.yaml"], "missing.yaml does not exist"),
    ],
)
def test_cli_errors_are_one_line(args, expected):
    result = run_cli(*args, "--show-config")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_dataset_layer_for_one_task_sets_only_that_tasks_schedule():
    import baselines  # noqa: F401  (registers the methods run.py resolves)
    import tasks  # noqa: F401
    from run import parse_args, resolve_config

    def epochs(*argv: str) -> int:
        return resolve_config(parse_args(list(argv)))["train"]["epochs"]

    assert epochs("--task", "retrieval") == 3
    assert epochs("--task", "qa") == 2
    assert epochs("--task", "captioning") == 2
    assert epochs("--task", "qa", "-o", "train.epochs=4") == 4


def test_each_method_of_each_task_brings_its_own_yaml():
    import baselines  # noqa: F401  (registers the methods run.py resolves)
    import tasks  # noqa: F401
    from run import parse_args, resolve_config

    def method(*argv: str) -> dict:
        return resolve_config(parse_args(list(argv)))["method"]

    qa = method("--task", "qa")
    assert qa["name"] == "emcl" and qa["emcl"]["k"] == 16 and qa["agg_module"] == "seqTransf"
    assert qa["temporal_layers"] == 2  # synthvtt's dataset layer tunes a knob the method has
    assert method("--task", "captioning")["emcl"]["k"] == 8
    assert method("--task", "retrieval")["k"] == 32
    # a dataset layer never adds a knob the method does not have
    assert method("--task", "qa", "--method", "clip") == {"name": "clip"}
    assert method("--task", "retrieval", "--method", "clip4clip")["temporal_layers"] == 2
    with pytest.raises(ConfigError, match="unknown config key 'method.k'"):
        method("--task", "qa", "--method", "clip", "-o", "method.k=3")
