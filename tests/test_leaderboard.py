"""Leaderboards from hand-made run records (and a malformed one, and one with a missing field)
plus the committed reported.yaml: table contents, intervals and p-values against a direct numpy
computation, the skip lines, byte-identical regeneration, a reported row for every seed system."""

import csv
import json
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tasks  # noqa: F401  (registers the tasks, whose result specs the leaderboard reads)
from harness.leaderboard import regenerate
from harness.leaderboard.plots import recall_plot_png
from harness.leaderboard.records import load_runs
from harness.leaderboard.reported import load_reported
from harness.leaderboard.tables import build_tables
from harness.metrics import summarize_ranks
from tests.conftest import REPO_ROOT

REPORTED = REPO_ROOT / "leaderboards" / "reported.yaml"
SEED_SYSTEMS = {
    "EMCL-Net",
    "EMCL-Net++",
    "EMCL-QA",
    "EMCL captioning",
    "CLIP4Clip",
    "X-CLIP",
    "DRL",
    "HMMC",
}
N = 60  # queries per direction
MSRVTT_CONFIG = {"test_split": "1k-A", "train_split": "9k", "data_json": "MSRVTT_data.json"}


def ranks(seed: int, top1: int) -> np.ndarray:
    """N ranks in 1..N, exactly ``top1`` of them 1."""
    rng = np.random.default_rng(seed)
    out = rng.integers(2, N + 1, size=N)
    out[rng.choice(N, size=top1, replace=False)] = 1
    return out


def write_run(folder: Path, record: dict, samples: list[dict] | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(record))
    if samples is not None:
        (folder / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    return folder


def retrieval_run(
    method: dict, seed: int, frames: int = 12, top1: int = 20
) -> tuple[dict, list[dict], dict]:
    """A retrieval record on MSR-VTT 1k-A (``top1`` text queries at rank 1), its samples, and the
    ranks behind them."""
    behind = {
        "t2v": ranks(seed, top1),
        "v2t": ranks(seed + 1, 15),
        "inv_t2v": ranks(seed + 2, 25),
        "inv_v2t": ranks(seed + 3, 24),
    }
    samples = [
        {
            "direction": d,
            "query": i,
            "video_id": f"video{i}",
            "rank": int(behind[d][i]),
            "rank_inverted_softmax": int(behind["inv_" + d][i]),
        }
        for d in ("t2v", "v2t")
        for i in range(N)
    ]
    record = {
        "task": "retrieval",
        "dataset": "msrvtt",
        "method": method["name"],
        "metrics": {d: summarize_ranks(behind[d]) for d in ("t2v", "v2t")},
        "metrics_postprocessed": {
            "inverted_softmax": {d: summarize_ranks(behind["inv_" + d]) for d in ("t2v", "v2t")}
        },
        "num_samples": {"texts": N, "videos": N},
        "protocol": {
            "split": "test",
            "max_frames": frames,
            "max_words": 32,
            "image_size": 224,
            "encoder": "/home/someone/clip/ViT-B-32.pt",
            "frame_cache": "/home/someone/cache",
        },
        "config": {"msrvtt": MSRVTT_CONFIG, "method": method},
        "notes": ["a note every msrvtt run carries"],
    }
    return record, samples, behind


def qa_run() -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(7)
    correct = rng.random(80) < 0.4
    in_vocab = rng.random(80) < 0.9
    samples = [
        {"question_id": i, "video_id": f"video{i // 4}", "correct": bool(c), "in_vocab": bool(v)}
        for i, (c, v) in enumerate(zip(correct & in_vocab, in_vocab, strict=True))
    ]
    record = {
        "task": "qa",
        "dataset": "synthvtt",
        "method": "emcl",
        "metrics": {
            "accuracy": 100 * float(np.mean(correct & in_vocab)),
            "accuracy_in_vocab": 100 * float(np.mean(correct[in_vocab])),
        },
        "baselines": {"majority_answer": {"answer": "two", "accuracy": 12.5}},
        "num_samples": {"questions": 80},
        "protocol": {"split": "test", "max_frames": 8, "max_words": 16, "image_size": 64},
        "config": {"synthvtt": {"seed": 0, "test_videos": 20}, "method": {"agg_module": "meanP"}},
    }
    return record, samples


def captioning_run() -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(8)
    cider, rouge = rng.random(30) * 90, rng.random(30) * 60
    samples = [
        {"video_id": f"video{i}", "prediction": "a", "scores": {"CIDEr": c, "ROUGE-L": r}}
        for i, (c, r) in enumerate(zip(cider, rouge, strict=True))
    ]
    metrics = {"BLEU-4": 11.0, "METEOR": 14.0, "ROUGE-L": rouge.mean(), "CIDEr": cider.mean()}
    record = {
        "task": "captioning",
        "dataset": "synthvtt",
        "method": "emcl",
        "metrics": {k: float(v) for k, v in metrics.items()},
        "num_samples": {"videos": 30},
        "protocol": {"split": "test", "max_frames": 8, "image_size": 64},
        "config": {"synthvtt": {"seed": 0}, "captioning": {"decode": "greedy"}},
    }
    return record, samples


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The runs folder: EMCL, DRL and an 8-frame CLIP4Clip on MSR-VTT, QA, captioning, a
    results.json that is not JSON and one without metrics.t2v.MnR."""
    root = tmp_path_factory.mktemp("runs")
    emcl = {"name": "emcl", "agg_module": "seqTransf"}
    drl = {"name": "drl", "interaction": "wti", "agg_module": "seqTransf", "cdcr": 3, "emcl": "off"}
    clip4clip = {"name": "clip4clip", "sim_header": "meanP", "emcl": "off"}
    made = {}
    for name, method, seed, frames, top1 in (
        ("emcl", emcl, 0, 12, 20),
        ("drl", drl, 10, 12, 27),
        ("clip4clip", clip4clip, 20, 8, 20),
    ):
        record, samples, behind = retrieval_run(method, seed, frames, top1)
        write_run(root / "retrieval_msrvtt" / name, record, samples)
        made[name] = (record, behind)
    made["qa"] = qa_run()
    write_run(root / "qa_synthvtt" / "emcl", *made["qa"])
    made["captioning"] = captioning_run()
    write_run(root / "captioning_synthvtt" / "emcl", *made["captioning"])
    bad = write_run(root / "broken" / "malformed", {}, None)
    (bad / "results.json").write_text('{"task": "retrieval", "metrics": ')
    record, samples, _ = retrieval_run(emcl, 30)
    del record["metrics"]["t2v"]["MnR"]
    write_run(root / "broken" / "missing_field", record, samples)
    return {"root": root, **made}


@pytest.fixture(scope="module")
def generated(runs, tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("leaderboards")
    warnings: list[str] = []
    regenerate(out, [runs["root"]], REPORTED, warn=warnings.append)
    return out, warnings


@pytest.fixture(scope="module")
def tables(runs) -> dict:
    built = build_tables(load_runs([runs["root"]], lambda line: None), load_reported(REPORTED))
    return {table.name: table for table in built}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def row_of(table, system: str, kind: str = "reproduced"):
    return next(r for r in table.rows() if r.system == system and r.kind == kind)


def direct_means(values: np.ndarray) -> np.ndarray:
    idx = np.random.default_rng(0).integers(0, len(values), size=(1000, len(values)))
    return values[idx].mean(axis=1)


def test_malformed_and_incomplete_runs_are_named_in_one_line_and_skipped(runs, generated):
    _, warnings = generated
    root = runs["root"]
    assert len(warnings) == 2
    assert warnings[0].startswith(
        f"skipping {root / 'broken' / 'malformed' / 'results.json'}: not valid JSON ("
    )
    assert warnings[1] == (
        f"skipping {root / 'broken' / 'missing_field' / 'results.json'}: missing field "
        "'metrics.t2v.MnR'"
    )


def test_cli_regenerates_and_prints_the_skip_lines(runs, generated, tmp_path):
    result = subprocess.run(
        [sys.executable, "run.py", "--leaderboard", "--runs", str(runs["root"]),
         "--leaderboard-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == generated[1]
    out, _ = generated
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in out.iterdir())


def test_retrieval_table_groups_by_protocol_with_reported_rows_and_differences(generated, runs):
    out, _ = generated
    rows = read_csv(out / "retrieval_msrvtt.csv")
    b32 = "split test (test_split=1k-A, train_split=9k) · backbone ViT-B/32 · 12 frames"
    emcl = next(r for r in rows if r["kind"] == "reproduced" and r["system"] == "EMCL-Net")
    assert emcl["protocol"].startswith(b32) and emcl["variant"] == "seqTransf"
    record, behind = runs["emcl"]
    assert float(emcl["t2v R@1"]) == pytest.approx(100 * np.mean(behind["t2v"] == 1), abs=5e-4)
    assert float(emcl["v2t MnR"]) == pytest.approx(record["metrics"]["v2t"]["MnR"], abs=5e-4)
    plus = next(r for r in rows if r["kind"] == "reproduced" and r["system"] == "EMCL-Net++")
    assert float(plus["t2v R@1"]) == pytest.approx(100 * 25 / N, abs=5e-4)
    # the 8-frame run never shares the 12-frame group
    clip = next(r for r in rows if r["kind"] == "reproduced" and r["system"] == "CLIP4Clip")
    assert "8 frames" in clip["protocol"] and clip["group"] != emcl["group"]
    # DRL's default variant matches the README row: reproduced minus reported, per column
    drl_rows = [
        r
        for r in rows
        if r["system"] == "DRL"
        and r["variant"] == "WTI + seqTransf + CDCR"
        and "post-processing" not in r["protocol"]
    ]
    assert [r["kind"] for r in drl_rows] == ["reported", "reproduced", "difference"]
    reported, reproduced, difference = drl_rows
    assert float(reported["t2v R@1"]) == 47.6 and reported["source"].startswith("[README]")
    for key in ("t2v R@1", "t2v MnR", "v2t R@10"):
        expected = float(reproduced[key]) - float(reported[key])
        assert float(difference[key]) == pytest.approx(expected, abs=2e-3)
    assert difference["t2v R@50"] == ""  # the README gives no R@50
    # no difference against a value the source labels "Mean Rank" (seed table)
    seed = next(r for r in rows if r["kind"] == "difference" and "[seed]" in r["source"])
    assert seed["t2v R@1"] != "" and seed["t2v MnR"] == ""
    assert all(r["group"] == emcl["group"] for r in drl_rows)


def test_intervals_and_p_values_equal_a_direct_numpy_computation(tables, runs):
    table = tables["retrieval_msrvtt"]
    emcl, drl = row_of(table, "EMCL-Net"), row_of(table, "DRL")
    hits = {name: 100.0 * (runs[name][1]["t2v"] == 1) for name in ("emcl", "drl")}
    for row, name in ((emcl, "emcl"), (drl, "drl")):
        lo, hi = np.percentile(direct_means(hits[name]), [2.5, 97.5])
        assert row.ci["t2v R@1"] == pytest.approx((lo, hi), rel=1e-12, abs=1e-12)
    # p on n * means (sums): exact for these integer-valued scores
    diffs = N * (direct_means(hits["drl"]) - direct_means(hits["emcl"]))
    observed = hits["drl"].sum() - hits["emcl"].sum()
    extreme = np.sum(np.abs(np.round(diffs) - observed) >= abs(observed))
    assert 0 < extreme < 1000
    assert drl.p["t2v R@1"] == (1 + extreme) / 1001
    assert "t2v R@1" not in emcl.p and emcl.reference  # the reference itself gets no p
    # EMCL-Net++ (inverted softmax) has a group of its own, labelled, where it is the reference
    plus = row_of(table, "EMCL-Net++")
    group = next(g for g in table.groups if plus in g.rows)
    assert "uses all test queries at once" in group.protocol.label(table.spec.postprocessings)
    assert group.reference is plus and plus.p == {} and "v2t R@1" in plus.ci
    assert emcl not in group.rows
    # a run in another protocol group is not compared with EMCL
    assert row_of(table, "CLIP4Clip").p == {}


def test_qa_and_captioning_intervals(tables, runs):
    qa = row_of(tables["qa_synthvtt"], "EMCL-QA")
    samples = runs["qa"][1]
    correct = np.array([100.0 * s["correct"] for s in samples])
    in_vocab = np.array([s["in_vocab"] for s in samples])
    for key, values in (("accuracy", correct), ("accuracy_in_vocab", correct[in_vocab])):
        lo, hi = np.percentile(direct_means(values), [2.5, 97.5])
        assert qa.ci[key] == pytest.approx((lo, hi), rel=1e-12)
    assert row_of(tables["qa_synthvtt"], "majority answer (baseline)", "baseline").values == {
        "accuracy": 12.5
    }
    captioning = row_of(tables["captioning_synthvtt"], "EMCL captioning")
    assert captioning.variant == "greedy decoding"
    cider = np.array([s["scores"]["CIDEr"] for s in runs["captioning"][1]])
    lo, hi = np.percentile(direct_means(cider), [2.5, 97.5])
    assert captioning.ci["CIDEr"] == pytest.approx((lo, hi), rel=1e-12)
    assert set(captioning.ci) == {"ROUGE-L", "CIDEr"}  # BLEU-4 and METEOR are corpus-level


def test_markdown_states_protocols_markers_and_sources(generated):
    out, _ = generated
    text = (out / "retrieval_msrvtt.md").read_text()
    assert "## Group 1: split test (test_split=1k-A) · zero-shot · backbone ViT-B/32" in text
    assert "![R@K curves of the reproduced runs](retrieval_msrvtt.png)" in text
    assert "| CLIP4Clip | meanP | reported | 43.1† |" in text
    assert "2.0‡" in text and 'labels this value "Mean Rank"' in text
    assert "p-values against: EMCL-Net (run retrieval_msrvtt/emcl)." in text
    assert "a note every msrvtt run carries (runs retrieval_msrvtt/clip4clip" in text
    captioning = (out / "captioning_synthvtt.md").read_text()
    assert "BLEU-4 and METEOR are corpus-level" in captioning
    assert "| CIDEr 95% CI |" in captioning and "BLEU-4 95% CI" not in captioning
    index = (out / "README.md").read_text()
    assert "[retrieval_msrvtt.md](retrieval_msrvtt.md)" in index
    assert "[png](retrieval_msrvtt.png)" in index


def test_regeneration_is_byte_identical_and_has_no_absolute_paths(runs, generated, tmp_path):
    out, _ = generated
    regenerate(tmp_path, [runs["root"]], REPORTED, warn=lambda line: None)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    assert {"retrieval_msrvtt.png", "README.md", "qa_msrvtt_qa.csv"} <= set(names)
    for name in names:
        data = (out / name).read_bytes()
        assert data == (tmp_path / name).read_bytes(), name
        assert b"/home/someone" not in data and str(runs["root"]).encode() not in data


def test_every_reported_number_and_seed_system_has_its_rows(generated):
    out, _ = generated
    reported = [
        row
        for path in sorted(out.glob("*.csv"))
        for row in read_csv(path)
        if row["kind"] == "reported"
    ]
    assert len(reported) == len(load_reported(REPORTED).entries)
    assert SEED_SYSTEMS <= {row["system"] for row in reported}
    assert all(row["source"].startswith("[") and "]" in row["source"] for row in reported)
    seed_rows = {(r["dataset"], r["system"]) for r in reported if r["source"].startswith("[seed]")}
    assert seed_rows == {
        ("msrvtt", "EMCL-Net"),
        ("msrvtt", "EMCL-Net++"),
        ("activitynet", "EMCL-Net"),
        ("activitynet", "EMCL-Net++"),
        ("lsmdc", "EMCL-Net"),
        ("lsmdc", "EMCL-Net++"),
        ("msrvtt_qa", "EMCL-QA"),
        ("msrvtt", "EMCL captioning"),
    }


def test_bad_reported_yaml_is_one_clear_error(tmp_path):
    text = REPORTED.read_text().replace("source: README\n", "source: READM\n", 1)
    (tmp_path / "reported.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"entries\[\d+\]: source 'READM' is not one of the tags"):
        load_reported(tmp_path / "reported.yaml")


# --- impossible values, and each run once ----------------------------------------------------


def _set(record: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = record
    for key in parents:
        node = node[key]
    node[last] = value


def _retrieval(record_change=None, sample_change=None) -> tuple[dict, list[dict]]:
    record, samples, _ = retrieval_run({"name": "emcl", "agg_module": "seqTransf"}, 40)
    if record_change:
        _set(record, *record_change)
    if sample_change:
        line, key, value = sample_change
        samples[line - 1][key] = value
    return record, samples


IMPOSSIBLE = [
    (
        _retrieval(("metrics.t2v.R@1", float("nan"))),
        "field 'metrics.t2v.R@1' must be a finite number, got nan",
    ),
    (
        _retrieval(("metrics.v2t.MnR", float("inf"))),
        "field 'metrics.v2t.MnR' must be a finite number, got inf",
    ),
    (
        _retrieval(("metrics.t2v.R@5", 120.0)),
        "field 'metrics.t2v.R@5' must be between 0 and 100, got 120.0",
    ),
    (
        _retrieval(("metrics.t2v.MdR", 0.5)),
        "field 'metrics.t2v.MdR' must be >= 1, got 0.5",
    ),
    (
        _retrieval(("metrics.v2t.MnR", 75.0)),
        f"field 'metrics.v2t.MnR' must be at most num_samples.videos ({N}), got 75.0",
    ),
    (
        _retrieval(("metrics_postprocessed.inverted_softmax.t2v.R@1", -1.0)),
        "field 'metrics_postprocessed.inverted_softmax.t2v.R@1' must be between 0 and 100, "
        "got -1.0",
    ),
    (
        _retrieval(sample_change=(3, "rank", N + 1)),
        f"samples.jsonl line 3: field 'rank' must be an integer from 1 to {N} (num_samples.videos)",
    ),
    (
        _retrieval(sample_change=(N + 2, "rank_inverted_softmax", 0)),
        f"samples.jsonl line {N + 2}: field 'rank_inverted_softmax' must be an integer from 1 "
        f"to {N} (num_samples.videos)",
    ),
]


@pytest.mark.parametrize(("made", "problem"), IMPOSSIBLE)
def test_records_with_impossible_values_are_skipped_in_one_line(tmp_path, made, problem):
    folder = write_run(tmp_path / "runs" / "bad", *made)
    warnings: list[str] = []
    assert load_runs([tmp_path / "runs"], warnings.append) == []
    assert warnings == [f"skipping {folder / 'results.json'}: {problem}"]


def test_qa_and_captioning_values_must_be_possible(tmp_path):
    qa, qa_samples = qa_run()
    qa["baselines"]["majority_answer"]["accuracy"] = float("nan")
    captioning, captioning_samples = captioning_run()
    captioning_samples[1]["scores"]["CIDEr"] = float("inf")
    runs = tmp_path / "runs"
    write_run(runs / "qa", qa, qa_samples)
    write_run(runs / "captioning", captioning, captioning_samples)
    warnings: list[str] = []
    assert load_runs([runs], warnings.append) == []
    assert warnings == [
        f"skipping {runs / 'captioning' / 'results.json'}: samples.jsonl line 2: field 'scores' "
        "must be a mapping of metric -> finite number",
        f"skipping {runs / 'qa' / 'results.json'}: field "
        "'baselines.majority_answer.accuracy' must be a finite number, got nan",
    ]


def eval_only(record: dict, checkpoint: Path, step: int = 30) -> dict:
    """``record`` as ``--eval-only`` of ``checkpoint`` (saved at ``step``) writes it."""
    return {**record, "training": {"checkpoint": str(checkpoint), "steps": step}}


def test_each_run_and_checkpoint_makes_one_row(tmp_path):
    runs = tmp_path / "runs"
    record, samples, _ = retrieval_run({"name": "emcl", "agg_module": "seqTransf"}, 0)
    trained = {**record, "training": {"epochs": 3, "steps": 30}}
    # a run, --eval-only of its last checkpoint (eval/) and of an earlier one (eval-2/)
    write_run(runs / "exp", trained, samples)
    write_run(runs / "exp" / "eval", eval_only(record, runs / "exp/checkpoints/step_30"), samples)
    earlier = eval_only(record, runs / "exp/checkpoints/step_10", step=10)
    write_run(runs / "exp" / "eval-2", earlier, samples)
    # a run folder moved since: its checkpoint was recorded under another parent
    moved = eval_only(record, Path("/old/place/moved/checkpoints/step_30"))
    write_run(runs / "moved", trained, samples)
    write_run(runs / "moved" / "eval", moved, samples)
    # a run whose own record is absent: its first eval-only record of a checkpoint is kept
    lone = eval_only(record, runs / "lone/checkpoints/step_30")
    write_run(runs / "lone" / "eval", lone, samples)
    write_run(runs / "lone" / "eval-2", lone, samples)
    # an older record without training.steps is taken as the same checkpoint as its run's
    write_run(runs / "old", trained, samples)
    write_run(runs / "old" / "eval", {**record, "training": {"checkpoint": "old/x/y"}}, samples)
    warnings: list[str] = []
    loaded = load_runs([runs], warnings.append)
    assert [run.run_id for run in loaded] == ["exp", "exp/eval-2", "lone/eval", "moved", "old"]
    assert warnings == [
        f"skipping {runs / path / 'results.json'}: same run and checkpoint as run {shown}, "
        "which is shown"
        for path, shown in (
            ("exp/eval", "exp"),
            ("lone/eval-2", "lone/eval"),
            ("moved/eval", "moved"),
            ("old/eval", "old"),
        )
    ]
    # the same folder read through two runs folders is one run too
    warnings.clear()
    twice = load_runs([runs / "exp", runs], warnings.append)
    assert [run.run_id for run in twice] == [
        "exp",
        "exp/eval-2",
        "runs/lone/eval",
        "runs/moved",
        "runs/old",
    ]
    assert (
        f"skipping {runs / 'exp/results.json'}: same run and checkpoint as run exp, which is shown"
    ) in warnings


def test_leaderboard_over_a_run_with_an_eval_folder_shows_it_once(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "leaderboards"
    record, samples, _ = retrieval_run({"name": "emcl", "agg_module": "seqTransf"}, 0)
    write_run(runs / "exp", {**record, "training": {"epochs": 3, "steps": 8}}, samples)
    eval_record = eval_only(record, runs / "exp/checkpoints/step_8", step=8)
    write_run(runs / "exp" / "eval", eval_record, samples)
    result = subprocess.run(
        [sys.executable, "run.py", "--leaderboard", "--runs", str(runs),
         "--leaderboard-dir", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"skipping {runs / 'exp/eval/results.json'}: same run and checkpoint as run exp, which "
        "is shown"
    ]
    rows = [r for r in read_csv(out / "retrieval_msrvtt.csv") if r["kind"] == "reproduced"]
    assert [(r["system"], r["source"]) for r in rows] == [
        ("EMCL-Net", "run exp"),
        ("EMCL-Net++", "run exp (inverted softmax)"),
    ]


def test_post_processed_sets_share_a_group_only_with_equal_settings(tmp_path):
    """An inverted softmax at another temperature is another protocol; a record written before
    results.json stated the settings takes its temperature from its config; the reference
    script's EMCL-Net++ (temperature 0.01) is compared with the runs at 0.01 only."""
    emcl = {"name": "emcl", "agg_module": "seqTransf"}
    for name, seed, change in (
        ("stated", 50, ("protocol.postprocess", {"inverted_softmax": {"temperature": 0.01}})),
        ("older", 60, ("config.eval", {"inverted_softmax_temp": 0.01})),
        ("warmer", 70, ("protocol.postprocess", {"inverted_softmax": {"temperature": 0.05}})),
    ):
        record, samples, _ = retrieval_run(emcl, seed)
        _set(record, *change)
        write_run(tmp_path / name, record, samples)
    built = build_tables(load_runs([tmp_path], lambda line: None), load_reported(REPORTED))
    table = next(t for t in built if t.name == "retrieval_msrvtt")

    def group_of(source: str):
        return next(g for g in table.groups if any(r.source == source for r in g.rows))

    paper = group_of(next(r.source for r in table.rows() if r.system == "EMCL-Net++"))
    label = paper.protocol.label(table.spec.postprocessings)
    assert label.endswith("uses all test queries at once (temperature=0.01)")
    assert group_of("run stated (inverted softmax)") is paper
    assert group_of("run older (inverted softmax)") is paper
    assert [r.kind for r in paper.rows].count("difference") == 2
    warmer = group_of("run warmer (inverted softmax)")
    assert warmer is not paper and [r.kind for r in warmer.rows] == ["reproduced"]
    assert "(temperature=0.05)" in warmer.protocol.label(table.spec.postprocessings)


def test_reported_settings_need_their_post_processing(tmp_path):
    text = REPORTED.read_text().replace("postprocessing: inverted_softmax, ", "", 1)
    (tmp_path / "reported.yaml").write_text(text)
    with pytest.raises(ValueError, match="'protocol.postprocessing_settings' must be a mapping"):
        load_reported(tmp_path / "reported.yaml")


def test_rank_plot_has_a_row_of_panels_per_group(tables):
    """Each row group with ranks gets its own row of panels (3.6 inches at 100 dpi), so the
    legend beside it lists one protocol's runs."""
    table = tables["retrieval_msrvtt"]
    with_ranks = [g for g in table.groups if any(r.ranks for r in g.rows)]
    assert len(with_ranks) >= 3  # 12 frames raw and inverted softmax, 8 frames raw and inverted
    width, height = Image.open(BytesIO(recall_plot_png(table))).size
    assert 300 * len(with_ranks) < height < 400 * len(with_ranks) and width > 1000
