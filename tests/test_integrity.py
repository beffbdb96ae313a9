"""The integrity checks written to results.json: query independence measured on real tiny runs
(EMCL-Net's block EM and DSL depend on the other test queries, CLIP4Clip meanP does not), and
gallery-order invariance, eval-batch invariance and query independence for every retrieval
method (EMCL's EM step mixes a block: it is neither query-independent nor gallery-order
invariant)."""

from pathlib import Path

import pytest
import torch

from tasks.integrity import row_change, split_hygiene
from tests.cli import read_results, run_cli, tiny_overrides

TINY = tiny_overrides({"train.epochs": None, "eval.block_size": 4, "eval.qb_norm_bank": 40})
METHODS = ("emcl", "clip4clip", "xclip", "drl", "hmmc")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt")


def _run(data_root: Path, out: Path, method: str, *extra: str) -> dict:
    result = run_cli(
        "--task", "retrieval", "--method", method, "--data-root", str(data_root),
        "--output-dir", str(out), *TINY, "-o", "train.epochs=1", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return read_results(out)


def test_query_independence_is_measured_on_real_runs(data_root, tmp_path):
    emcl = _run(data_root, tmp_path / "emcl", "emcl")["integrity"]["query_independence"]
    clip = _run(data_root, tmp_path / "clip", "clip4clip", "-o", "method.sim_header=meanP")
    clip = clip["integrity"]["query_independence"]
    assert emcl["removed"] > 0 and emcl["queries"] > 0
    # EMCL-Net's EM step mixes the texts of a block: removing queries changes the others' scores
    assert emcl["raw"]["independent"] is False and emcl["raw"]["max_change"] > 1e-5
    # CLIP4Clip meanP scores each (text, video) pair alone
    assert clip["raw"] == {"independent": True, "max_change": 0.0}
    # DSL and the inverted softmax normalise over all test queries; QB-Norm over its bank
    for integrity in (emcl, clip):
        assert integrity["dsl"]["independent"] is False
        assert integrity["inverted_softmax"]["independent"] is False
    assert clip["qb_norm"]["independent"] is True


def _task(method: str, data_root: Path, postprocess: str = "[]", *extra: str):
    """A set-up retrieval task of ``method`` (more ``-o`` settings in ``extra``) and its
    untrained model, in this process."""
    import baselines  # noqa: F401
    import tasks  # noqa: F401
    from harness.registry import TASKS
    from run import parse_args, resolve_config

    argv = ["--task", "retrieval", "--method", method, "--data-root", str(data_root), *TINY, *extra]
    config = resolve_config(parse_args([*argv, "-o", f"eval.postprocess={postprocess}"]))
    torch.manual_seed(0)
    task = TASKS.get("retrieval")(config)
    task.setup(train=False)
    return task, task.build_model().eval()


def _evaluate(method: str, data_root: Path, *extra: str) -> dict:
    """The integrity checks of an untrained ``method`` evaluated in this process."""
    task, model = _task(method, data_root, "[]", *extra)
    with torch.no_grad():
        return task.evaluate(model).integrity


@pytest.mark.parametrize(
    ("method", "extra", "mixes_blocks"),
    [(m, (), m == "emcl") for m in METHODS]
    + [("clip4clip", ("-o", "method.emcl=inference"), True)],
    ids=[*METHODS, "clip4clip-emcl-inference"],
)
def test_gallery_order_eval_batch_invariance_and_query_independence(
    method, extra, mixes_blocks, data_root
):
    integrity = _evaluate(method, data_root, *extra)
    assert integrity["eval_batch"]["invariant"], integrity["eval_batch"]
    assert integrity["eval_batch"]["batch_size"] == 8
    assert integrity["split_hygiene"] == {"clean": True, "overlap": 0, "examples": []}
    gallery = integrity["gallery_order"]
    # EMCL's EM step (EMCL-Net, the plug-in) runs over the videos of a block: another gallery
    # order, other blocks; and over its texts: only there do queries depend on the others
    assert gallery["invariant"] is not mixes_blocks, gallery
    raw = integrity["query_independence"]["raw"]
    assert raw["independent"] is not mixes_blocks, raw


def test_multi_sentence_sets_get_checks_but_no_post_processing(data_root):
    from harness.data_types import VideoTextPairs

    task, model = _task("clip4clip", data_root, "[dsl, qb_norm]")
    one = task.test_pairs
    task.test_pairs = VideoTextPairs(  # a second sentence for the first 4 videos
        video_ids=one.video_ids,
        video_paths=one.video_paths,
        captions=one.captions + one.captions[:4],
        caption_video=one.caption_video + [0, 1, 2, 3],
    )
    with torch.no_grad():
        out = task.evaluate(model)
    assert out.num_samples == {"texts": 20, "videos": 16}
    assert out.metrics_postprocessed == {}
    assert set(out.integrity["query_independence"]) == {"queries", "removed", "raw"}
    assert out.integrity["query_independence"]["raw"]["independent"] is True


def test_row_change_ignores_a_common_factor_and_split_hygiene_finds_overlap():
    a = torch.tensor([[1.0, 2.0], [3.0, -6.0]]).numpy()
    assert row_change(a, 5 * a) == pytest.approx(0.0)
    assert row_change(a, a + [[0.0, 0.2], [0.0, 0.0]]) == pytest.approx(0.5 - 1 / 2.2)
    report = split_hygiene(["video1", "video7", "video9"], ["video7", "video2", "video9"])
    assert report == {"clean": False, "overlap": 2, "examples": ["video7", "video9"]}
