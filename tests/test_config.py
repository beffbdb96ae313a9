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


# --- range and choice rules, checked when the config is resolved ---------------------------

# (task, method or None for the task's default, override, the key it names)
PROBES = [
    ("retrieval", None, "eval.ties=foo", "eval.ties"),
    ("retrieval", None, "train.epochs=0", "train.epochs"),
    ("retrieval", None, "train.epochs=-3", "train.epochs"),
    ("retrieval", None, "train.batch_size=0", "train.batch_size"),
    ("retrieval", None, "train.batch_size=-64", "train.batch_size"),
    ("retrieval", None, "train.grad_accum=0", "train.grad_accum"),
    ("retrieval", None, "data.image_size=0", "data.image_size"),
    ("retrieval", None, "eval.block_size=0", "eval.block_size"),
    ("retrieval", None, "eval.inverted_softmax_temp=0", "eval.inverted_softmax_temp"),
    ("retrieval", None, "train.gather_grad=all", "train.gather_grad"),
    ("retrieval", None, "train.micro_batch=0", "train.micro_batch"),
    ("retrieval", None, "train.reference_world_size=3", "train.reference_world_size"),
    ("captioning", None, "train.micro_batch=4", "train.micro_batch"),
    ("retrieval", None, "data.on_bad_video=ignore", "data.on_bad_video"),
    ("retrieval", None, "train.lr=nan", "train.lr"),
    ("retrieval", None, "eval.split=tset", "eval.split"),  # synthvtt: before it is generated
    ("retrieval", None, "synthvtt.test_videos=0", "synthvtt.test_videos"),
    ("captioning", None, "captioning.decode=sample", "captioning.decode"),
    ("captioning", None, "captioning.beam_size=0", "captioning.beam_size"),
    ("qa", None, "qa.proj_dim=0", "qa.proj_dim"),
    ("qa", None, "method.emcl.k=0", "method.emcl.k"),
    ("retrieval", "clip4clip", "method.sim_header=meanp", "method.sim_header"),
    ("retrieval", "drl", "method.wti_arch=4", "method.wti_arch"),
    ("retrieval", "hmmc", "method.emcl=on", "method.emcl"),
]


@pytest.mark.parametrize(("task", "method", "override", "key"), PROBES)
def test_bad_values_fail_at_config_time_in_one_line(tmp_path, task, method, override, key):
    import baselines  # noqa: F401  (registers the methods run.py resolves)
    import tasks  # noqa: F401
    from run import parse_args, resolve_config

    data_root = tmp_path / "data"
    data_root.mkdir()
    argv = ["--task", task, "--data-root", str(data_root), "-o", override]
    with pytest.raises(ConfigError) as err:
        resolve_config(parse_args(argv + (["--method", method] if method else [])))
    message = str(err.value)
    value = override.partition("=")[2]
    assert "\n" not in message and f"config key {key!r} must be" in message, message
    assert value in message, message
    assert list(data_root.iterdir()) == []


def test_a_bad_value_stops_a_real_run_before_anything_is_generated(tmp_path):
    data_root, out = tmp_path / "data", tmp_path / "run"
    data_root.mkdir()
    result = run_cli("--data-root", str(data_root), "--output-dir", str(out), "-o", "eval.ties=foo")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: config key 'eval.ties' must be one of honest, reference, got 'foo'"
    ]
    assert list(data_root.iterdir()) == [] and not out.exists()


def test_show_config_refuses_a_bad_value_in_one_line(tmp_path):
    result = run_cli("--data-root", str(tmp_path), "-o", "train.grad_accum=0", "--show-config")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: config key 'train.grad_accum' must be a positive integer, got 0"
    ]
    assert list(tmp_path.iterdir()) == []


def test_rule_types_say_what_is_allowed():
    from harness.config_checks import (
        IntRange,
        KeyOf,
        dropout,
        fraction,
        non_negative,
        one_of,
        positive,
        positive_int,
    )

    def message(rule, value, config=None) -> str:
        config = config if config is not None else {"a": {"b": value}}
        with pytest.raises(ConfigError) as err:
            rule.check(config)
        return str(err.value)

    assert message(positive_int("a.b", optional=True), 0) == (
        "config key 'a.b' must be null or a positive integer, got 0"
    )
    positive_int("a.b", optional=True).check({"a": {"b": None}})
    assert "an integer from 0 to 9" in message(IntRange("a.b", 0, 9), 10)
    assert "a positive integer" in message(positive_int("a.b"), True)  # a flag is not a count
    assert "a positive number, got inf" in message(positive("a.b"), float("inf"))
    assert "a number >= 0, got -0.5" in message(non_negative("a.b"), -0.5)
    assert "a number in [0, 1], got 1.5" in message(fraction("a.b"), 1.5)
    assert "a number in [0, 1), got 1.0" in message(dropout("a.b"), 1.0)
    assert "one of 1, 2, got True" in message(one_of("a.b", 1, 2), True)
    one_of("a.b", 1, 2).check({"a": {"b": 2}})
    table = {"split": "x", "files": {"9k": "a.csv", "full": "b.csv"}}
    assert message(KeyOf("split", "files"), None, table) == (
        "config key 'split' must be one of 9k, full, got 'x'"
    )


def _entries(task: str, dataset: str, method: str) -> tuple:
    from harness.registry import DATASETS, METHODS, TASKS

    return TASKS.entry(task), DATASETS.entry(dataset), METHODS.entry(task, method)


def _leaves(config: dict, prefix: str = ""):
    for key, value in config.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_every_default_passes_its_rules_and_every_number_has_one():
    """Each task x method x dataset resolves (no rule refuses a shipped default, and every rule
    names a declared key); every int or float key of the result is under some rule."""
    import baselines  # noqa: F401
    import tasks
    from harness.config import resolve_config
    from harness.config_checks import HARNESS
    from harness.registry import DATASETS, METHODS, TASKS

    for task in TASKS.names():
        for method in METHODS.of(task).names():
            for dataset in DATASETS.names():
                names = {"task": task, "dataset": dataset, "method.name": method}
                config = resolve_config(tasks.BASE_CONFIG, names)
                entries = _entries(task, dataset, method)
                ruled = {rule.key for rule in HARNESS + sum((e.rules() for e in entries), ())}
                unruled = [
                    key
                    for key, value in _leaves(config)
                    if isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and key not in ruled
                ]
                assert unruled == [], (task, method, dataset)


# base.yaml keys without a range or a choice: names, paths, and the tokenizer (a word or a path)
FREE_BASE_KEYS = {
    "task",
    "dataset",
    "output_root",
    "data.root",
    "data.video_root",
    "encoder.pretrained",
    "method.name",
}


def test_every_harness_key_has_a_rule_or_is_free():
    """Each base.yaml key is under a harness rule, free, or (eval.split, eval.val_split: the
    splits are the dataset's) under a rule of every dataset."""
    from harness.config_checks import HARNESS
    from harness.registry import DATASETS
    from tasks import BASE_CONFIG

    ruled = {rule.key for rule in HARNESS}
    keys = {key for key, value in _leaves(load_yaml(BASE_CONFIG)) if not isinstance(value, bool)}
    assert keys - ruled - FREE_BASE_KEYS == {"eval.split", "eval.val_split"}
    assert FREE_BASE_KEYS & ruled == set()
    for name in DATASETS.names():
        keys = {rule.key for rule in DATASETS.entry(name).rules()}
        assert {"eval.split", "eval.val_split"} <= keys, name


def test_choice_words_match_the_modules_that_act_on_them():
    """Words a torch module spells in its own terms (a preset table, a Literal type) agree with
    the light rule module's (the others import theirs from it)."""
    from typing import get_args

    from harness import config_checks
    from harness.data import BAD_VIDEO_POLICIES
    from harness.encoder import PRESETS
    from harness.metrics.retrieval import Ties

    assert config_checks.BAD_VIDEO_POLICIES == BAD_VIDEO_POLICIES
    assert config_checks.ENCODER_SIZES == tuple(PRESETS)
    assert config_checks.TIE_RULES == get_args(Ties)


def test_rules_are_checked_without_importing_torch():
    code = (
        "import sys, baselines, tasks\n"
        "from harness.config import resolve_config\n"
        "resolve_config(tasks.BASE_CONFIG, {'task': 'qa', 'dataset': 'msrvtt_qa', "
        "'method.name': 'emcl'})\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
