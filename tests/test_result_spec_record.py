"""The results.json schema: an evaluation cannot overwrite the fields the engine writes, and a
record that breaks the schema is refused in one line naming the field, by the writer's check
and by the leaderboard reader."""

import json

import pytest

import tasks  # noqa: F401  (registers the tasks the reader looks up)
from harness.leaderboard.records import RunFileError, load_run
from harness.schema import (
    BASELINES,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    SKIPPED_VIDEOS,
    RecordError,
    check_record,
)
from harness.task import EvalOutput

METRICS = {"accuracy": 40.0}


def full_record() -> dict:
    """A record with every field, as the engine writes it."""
    return {
        "task": "qa",
        "dataset": "synthvtt",
        "method": "emcl",
        "metrics": METRICS,
        "baselines": {"majority_answer": {"answer": "two", "accuracy": 12.5}},
        "num_samples": {"questions": 0},
        "protocol": {"split": "test"},
        "seed": 0,
        "config": {"seed": 0},
        "training": {"epochs": 1, "steps": 4},
        "num_processes": 1,
        "world_size": 1,
        "per_device_batch": 8,
        "micro_batch": None,
        "global_batch": 8,
        "negatives_per_query": 7,
        "gather_grad": "global",
        "reference_world_size": None,
        "mixed_precision": "no",
        "git_commit": None,
        "versions": {"python": "3.11"},
        "timings": {"total_s": 1.5},
        "notes": [],
    }


def test_an_evaluation_cannot_overwrite_the_records_own_fields():
    # no free-form field: only the named optional fields reach the record
    with pytest.raises(TypeError):
        EvalOutput(metrics=METRICS, samples=[], num_samples={}, extra={"metrics": {"x": 1.0}})
    full = EvalOutput(
        metrics=METRICS,
        samples=[],
        num_samples={},
        metrics_postprocessed={"p": METRICS},
        baselines={"b": METRICS},
        skipped_videos=[{"path": "videos/bad.mp4", "error": "no frames"}],
        integrity={"split_hygiene": {"clean": True}},
    )
    assert set(full.optional_fields()) == set(OPTIONAL_FIELDS)
    assert set(OPTIONAL_FIELDS).isdisjoint(REQUIRED_FIELDS)


def test_optional_fields_reach_the_record_under_their_schema_names():
    skipped = [{"path": "videos/bad.mp4", "error": "no frames"}]
    explicit = EvalOutput(metrics=METRICS, samples=[], num_samples={}, skipped_videos=skipped)
    assert explicit.optional_fields() == {SKIPPED_VIDEOS: skipped}
    # empty post-processing and baselines are left out; the skipped list is always there
    empty = EvalOutput(metrics=METRICS, samples=[], num_samples={})
    assert empty.optional_fields() == {SKIPPED_VIDEOS: []}
    assert BASELINES not in empty.optional_fields()


def test_check_record_names_the_missing_or_mistyped_field():
    check_record(full_record())
    record = full_record()
    del record["seed"]
    with pytest.raises(RecordError, match=r"^missing field 'seed'$"):
        check_record(record)
    with pytest.raises(RecordError, match=r"^field 'git_commit' must be a string or null$"):
        check_record({**full_record(), "git_commit": 3})
    with pytest.raises(RecordError, match=r"^field 'num_processes' must be an integer$"):
        check_record({**full_record(), "num_processes": True})
    with pytest.raises(RecordError, match=r"^field 'baselines' must be a JSON object$"):
        check_record({**full_record(), "baselines": []})


def test_the_reader_needs_only_the_core_fields_and_names_what_is_wrong(tmp_path):
    record = full_record()
    del record["seed"]  # an older or hand-written record: still read
    path = tmp_path / "results.json"
    path.write_text(json.dumps(record))
    assert load_run(path, "run").record == record
    path.write_text(json.dumps({**record, "notes": "one line"}))
    with pytest.raises(RunFileError, match=r"^field 'notes' must be a JSON array$"):
        load_run(path, "run")
    del record["protocol"]
    path.write_text(json.dumps(record))
    with pytest.raises(RunFileError, match=r"^missing field 'protocol'$"):
        load_run(path, "run")
