"""Training that does not depend on the process count, through run.py on a tiny synthvtt (3
optimizer steps of a global batch of 16, EMCL-Net): 2 processes under train.gather_grad=global
end where 1 process does; 1 process under train.reference_world_size=2 ends where 2 processes
under local do; both 2-process runs go through the gradient cache (train.micro_batch), and
results.json records the layout."""

from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.cli import read_results, run_cli, tiny_overrides

TINY = tiny_overrides(
    {
        "synthvtt.train_videos": 12,
        "synthvtt.test_videos": 8,
        "train.batch_size": 16,
        "eval.batch_size": 8,
        "eval.block_size": None,
    }
)


def train(
    data_root: Path, out: Path, *overrides: str, processes: int = 1, method: str = "emcl"
) -> dict:
    """Run the tiny training of ``method``; returns its record with its final weights under
    ``weights``."""
    extra = [arg for o in overrides for arg in ("-o", o)]
    result = run_cli(
        "--task", "retrieval", "--method", method, "--data-root", str(data_root),
        "--output-dir", str(out), *TINY, *extra, processes=processes,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_results(out)
    (checkpoint,) = (out / "checkpoints").iterdir()
    return {**record, "weights": load_file(checkpoint / "model.safetensors")}


def worst_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt")


def test_runs_end_alike_on_one_and_two_processes(data_root, tmp_path):
    one = train(data_root, tmp_path / "one")
    two_global = train(data_root, tmp_path / "two", "train.micro_batch=3", processes=2)
    assert one["training"]["steps"] == 3
    assert worst_difference(one["weights"], two_global["weights"]) <= 1e-4
    assert two_global["training"]["final_loss"] == pytest.approx(
        one["training"]["final_loss"], abs=1e-5
    )
    layout = {k: two_global[k] for k in ("world_size", "per_device_batch", "micro_batch")}
    assert layout == {"world_size": 2, "per_device_batch": 8, "micro_batch": 3}
    assert (two_global["global_batch"], two_global["negatives_per_query"]) == (16, 15)
    assert (two_global["gather_grad"], two_global["reference_world_size"]) == ("global", None)

    reference = train(data_root, tmp_path / "ref", "train.reference_world_size=2")
    two_local = train(
        data_root,
        tmp_path / "local",
        "train.gather_grad=local",
        "train.micro_batch=5",
        processes=2,
    )
    assert worst_difference(reference["weights"], two_local["weights"]) <= 1e-4
    assert reference["training"]["final_loss"] == pytest.approx(
        two_local["training"]["final_loss"], abs=1e-5
    )
    assert (reference["gather_grad"], reference["reference_world_size"]) == ("local", 2)
    assert reference["world_size"] == 1


def test_cross_encoder_training_runs_alike_on_two_processes(data_root, tmp_path):
    """CLIP4Clip's tightTransf never uses the logit scale: on two processes DDP must not wait
    for its gradient (it failed at the second step), and the run ends as on one process."""
    tight = "method.sim_header=tightTransf"
    one = train(data_root, tmp_path / "one", tight, method="clip4clip")
    two = train(data_root, tmp_path / "two", tight, method="clip4clip", processes=2)
    assert worst_difference(one["weights"], two["weights"]) <= 1e-4
    assert two["training"]["final_loss"] == pytest.approx(one["training"]["final_loss"], abs=1e-5)
