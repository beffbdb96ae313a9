"""``run.py --compare``: every method under one config, its own run folder, one table; an
interrupted comparison resumes; a bad method name fails before anything trains."""

import json
from pathlib import Path

import pytest

from tests.cli import read_results, run_cli, tiny_overrides

METHODS = ["emcl", "clip4clip", "xclip", "drl", "hmmc"]
TINY = tiny_overrides()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt_compare")


@pytest.fixture(scope="module")
def comparison_run(data_root, tmp_path_factory):
    """The five methods compared at tiny size: the folder and the finished process."""
    out = tmp_path_factory.mktemp("compare") / "all"
    result = run_cli(
        "--task", "retrieval", "--compare", ",".join(METHODS), "--data-root", str(data_root),
        "--output-dir", str(out), *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="module")
def comparison(comparison_run) -> Path:
    return comparison_run[0]


def test_a_comparison_decodes_each_video_once_into_the_frame_cache(comparison_run):
    out, result = comparison_run
    built = [line for line in result.stdout.splitlines() if "cache: decoding" in line]
    assert len(built) == 1, result.stdout
    cache = Path(built[0].split(" into ")[1])
    videos = sorted(p.stem for p in (cache.parent.parent / "videos").iterdir())
    assert f"decoding {len(videos)} videos" in built[0]
    assert sorted(json.loads((cache / "meta.json").read_text())["sources"]) == videos
    for method in METHODS:  # every method read its clips from that cache
        record = read_results(out / method)
        assert record["protocol"]["frame_cache"] == str(cache)
        assert record["config"]["data"]["frame_cache"] == "auto"


def test_each_method_runs_under_the_same_protocol_into_its_own_folder(comparison):
    records = {method: read_results(comparison / method) for method in METHODS}
    assert {r["method"] for r in records.values()} == set(METHODS)
    protocols = {json.dumps(r["protocol"], sort_keys=True) for r in records.values()}
    assert len(protocols) == 1
    assert len({r["training"]["steps"] for r in records.values()}) == 1
    assert all((comparison / m / "samples.jsonl").is_file() for m in METHODS)


def test_table_has_one_row_per_method_with_its_own_metrics(comparison):
    table = json.loads((comparison / "compare.json").read_text())
    assert [row[0] for row in table["rows"]] == METHODS
    column = table["columns"].index("t2v R@1")
    for row in table["rows"]:
        record = read_results(comparison / row[0])
        assert row[column] == record["metrics"]["t2v"]["R@1"]
    markdown = (comparison / "compare.md").read_text()
    assert all(f"| {method} |" in markdown for method in METHODS)


def test_resume_reads_finished_runs_back_without_training(comparison, data_root):
    (comparison / "compare.json").unlink()
    before = {m: (comparison / m / "results.json").stat().st_mtime_ns for m in METHODS}
    result = run_cli(
        "--task", "retrieval", "--compare", ",".join(METHODS), "--data-root", str(data_root),
        "--output-dir", str(comparison), "--resume", *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (comparison / "compare.json").is_file()
    after = {m: (comparison / m / "results.json").stat().st_mtime_ns for m in METHODS}
    assert after == before


def test_unknown_method_is_one_line_before_any_training(tmp_path, data_root):
    out = tmp_path / "bad"
    result = run_cli(
        "--task", "retrieval", "--compare", "emcl,clip4clp", "--data-root", str(data_root),
        "--output-dir", str(out), *TINY,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "clip4clp" in result.stderr
    assert "clip4clip" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("task", "column", "extra"),
    [
        ("qa", "accuracy", []),
        ("captioning", "CIDEr", ["-o", "captioning.max_len=6", "-o", "captioning.beam_size=2"]),
    ],
)
def test_compare_runs_the_plain_clip_baseline_beside_emcl(task, column, extra, data_root, tmp_path):
    out = tmp_path / task
    result = run_cli(
        "--task", task, "--compare", "emcl,clip", "--data-root", str(data_root),
        "--output-dir", str(out), *TINY, *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = {m: read_results(out / m) for m in ("emcl", "clip")}
    assert {m: r["method"] for m, r in records.items()} == {"emcl": "emcl", "clip": "clip"}
    assert records["emcl"]["protocol"] == records["clip"]["protocol"]
    assert records["emcl"]["training"]["steps"] == records["clip"]["training"]["steps"]
    # the plain baseline has no temporal module and no EM settings of its own
    assert "emcl" in records["emcl"]["config"]["method"]
    assert set(records["clip"]["config"]["method"]) == {"name"}
    table = json.loads((out / "compare.json").read_text())
    index = table["columns"].index(column)
    assert [row[0] for row in table["rows"]] == ["emcl", "clip"]
    assert [row[index] for row in table["rows"]] == [
        records[m]["metrics"][column] for m in ("emcl", "clip")
    ]


TINY_METHOD = '''
"""A method made for a test: mean-pooled CLIP frames, cosine scores, symmetric cross-entropy."""

import torch

from harness.retrieval import RetrievalModel, symmetric_cross_entropy


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


class MeanCosine(RetrievalModel):
    def __init__(self, encoder, config):
        super().__init__(encoder, config["train"]["gather_grad"])
        self.sharpen = config["method"]["sharpen"]

    def encode_text(self, ids, mask):
        return {"t": unit(self.encoder.encode_text(ids, mask).sentence)}

    def encode_video(self, pixels, video_mask):
        frames = self.encoder.encode_frames(pixels).cls * video_mask.unsqueeze(-1)
        return {"v": unit(frames.sum(1) / video_mask.sum(1, keepdim=True))}

    def similarity(self, text, video):
        return self.sharpen * text["t"] @ video["v"].t()

    def loss(self, text, video):
        return symmetric_cross_entropy(self.logit_scale * self.similarity(text, video))
'''


def test_a_method_from_one_new_file_and_one_registry_line_runs_in_compare(
    tmp_path, data_root, monkeypatch
):
    import baselines  # noqa: F401  (the built-in methods)
    import run
    from harness.registry import METHODS

    (tmp_path / "mean_cosine.py").write_text(TINY_METHOD)
    (tmp_path / "mean_cosine.yaml").write_text("method:\n  name: mean_cosine\n  sharpen: 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = METHODS.of("retrieval")
    METHODS.register(
        "retrieval", "mean_cosine", "mean_cosine:MeanCosine", config=tmp_path / "mean_cosine.yaml"
    )
    try:
        out = tmp_path / "compare"
        status = run.main(
            [
                "--task", "retrieval", "--compare", "mean_cosine,emcl", "--data-root",
                str(data_root), "--output-dir", str(out), *TINY,
            ]
        )  # fmt: skip
    finally:
        registry._entries.pop("mean_cosine")
    assert status == 0
    record = read_results(out / "mean_cosine")
    assert record["method"] == "mean_cosine" and record["config"]["method"]["sharpen"] == 1.0
    assert record["protocol"] == read_results(out / "emcl")["protocol"]
    assert 0.0 <= record["metrics"]["t2v"]["R@1"] <= 100.0
    table = json.loads((out / "compare.json").read_text())
    assert [row[0] for row in table["rows"]] == ["mean_cosine", "emcl"]


def test_best_value_of_each_metric_column_follows_its_direction():
    import tasks  # noqa: F401  (registers the result specs)
    from harness.compare import best_cells

    columns = ["method", "t2v R@1", "t2v MdR", "train min"]
    rows = [["a", 20.0, 4.0, 1.0], ["b", 25.0, 5.0, 0.5], ["c", 25.0, 3.0, 2.0]]
    # R@1: highest wins (a tie marks both); MdR: lowest wins; train minutes are no metric
    assert best_cells("retrieval", columns, rows) == {(1, 1), (2, 1), (2, 2)}


def test_protocol_fields_that_differ_are_listed_per_method(tmp_path):
    import tasks  # noqa: F401  (registers the result specs)
    from harness.compare import write_compare

    def record(block: int) -> dict:
        protocol = {"split": "test", "max_frames": 12, "eval_block": block}
        metrics = {"t2v": {"R@1": 20.0}}
        return {
            "task": "retrieval",
            "dataset": "synthvtt",
            "protocol": protocol,
            "metrics": metrics,
        }

    write_compare(tmp_path, {"emcl": record(32), "clip4clip": record(512)})
    table = json.loads((tmp_path / "compare.json").read_text())
    assert table["protocol"] == {"max_frames": 12, "split": "test"}
    assert table["protocol_by_method"] == {"eval_block": {"emcl": 32, "clip4clip": 512}}
    markdown = (tmp_path / "compare.md").read_text()
    assert "per method, eval_block: emcl `32`, clip4clip `512`" in markdown
    assert '"eval_block"' not in markdown.split("per method")[0]


def test_piped_output_shows_the_whole_comparison_table(comparison_run):
    """Output to a pipe (a job log) is not a terminal: the console table still shows every
    method's name and its full T2V R@1, not cells cut to a few characters."""
    out, result = comparison_run
    table = json.loads((out / "compare.json").read_text())
    column = table["columns"].index("t2v R@1")
    lines = result.stdout.splitlines()
    for row in table["rows"]:
        line = next(line for line in lines if line.startswith(f"│ {row[0]} "))
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        assert cells[column] == f"{row[column]:.2f}"
