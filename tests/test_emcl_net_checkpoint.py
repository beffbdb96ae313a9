"""EMCL-Net's released checkpoints (baselines/emcl_net.py ``load_reference_checkpoint``): a
reference-layout state dict saved with ``torch.save`` loads through the adapter and scores as the
reference model does (golden vectors of tools/make_golden_emcl_net_checkpoint.py), with the
reference's seeded ``mu``; ``run.py --eval-only --checkpoint FILE`` evaluates such a file through
the method's registered loader; bad keys and methods without a loader are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import FIXTURES, REPO_ROOT
from transformers import CLIPModel

import baselines  # noqa: F401  (registers the methods)
import baselines.checkpoints
import baselines.clip2video
import baselines.drl
import baselines.emcl_net
import baselines.hmmc_checkpoint
import tasks  # noqa: F401  (registers the tasks and datasets)
from baselines.emcl_net import EMCLNet, load_reference_checkpoint
from harness.emcl import seeded_mu
from harness.encoder import CheckpointError, VideoTextEncoder, clip_config_from_openai
from harness.reference_checkpoint import read_state_dict
from harness.registry import METHODS, TASKS
from tests.cli import read_results, run_cli, tiny_overrides
from tests.openai_layout import WIDTH, openai_state_dict, tiny_clip

GOLDEN = np.load(FIXTURES / "emcl_net_checkpoint.npz")
METHOD = yaml.safe_load((REPO_ROOT / "baselines/configs/retrieval/emcl.yaml").read_text())["method"]
CLOSE = dict(rtol=1e-5, atol=1e-5)
DATA = tiny_overrides({"train.epochs": None, "train.batch_size": None})


def golden_state_dict() -> dict[str, torch.Tensor]:
    """The reference checkpoint of the fixture, in its saved layout (fp16 values as float32)."""
    return {k[3:]: torch.from_numpy(GOLDEN[k]).float() for k in GOLDEN.files if k.startswith("sd/")}


def tiny_emcl_net(sd: dict[str, torch.Tensor], seed: int) -> EMCLNet:
    """Our EMCL-Net (2 temporal layers, as the fixture) on a CLIP shaped like ``sd``."""
    clip = CLIPModel(clip_config_from_openai(sd, prefix="clip.", head_dim=16))
    config = {
        "method": {**METHOD, "temporal_layers": 2},
        "train": {"gather_grad": "local"},
        "eval": {"block_size": 32},
        "seed": seed,
    }
    return EMCLNet(VideoTextEncoder(clip), config)


def test_saved_reference_checkpoint_scores_as_the_reference(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({k: v.half() if v.dim() >= 2 else v for k, v in golden_state_dict().items()}, path)
    model = tiny_emcl_net(golden_state_dict(), seed=int(GOLDEN["seed"]))
    load_reference_checkpoint(model, read_state_dict(path))
    np.testing.assert_array_equal(model.emcl.mu.numpy(), GOLDEN["mu"])
    model.eval()
    with torch.no_grad():
        text = model.encode_text(torch.from_numpy(GOLDEN["ids"]), torch.from_numpy(GOLDEN["mask"]))
        pixels = torch.from_numpy(GOLDEN["pixels"]).float()
        video = model.encode_video(pixels, torch.from_numpy(GOLDEN["video_mask"]))
        sim = model.similarity(text, video)
        logits = model.logit_scale * sim
    np.testing.assert_allclose(sim.numpy(), GOLDEN["sim"], **CLOSE)
    np.testing.assert_allclose(logits.numpy(), GOLDEN["logits"], **CLOSE)


def test_mu_is_the_reference_draw_for_the_seed():
    # the EM module's own golden draws (tools/make_golden_emcl.py): seed 0, K 32 has 17 positive
    module = np.load(FIXTURES / "emcl_module.npz")
    np.testing.assert_array_equal(seeded_mu(32, 0).double().numpy(), module["seed0_k32__mu"])
    np.testing.assert_array_equal(seeded_mu(7, 42).double().numpy(), module["seed42_k7__mu"])
    assert int((seeded_mu(32, 0) > 0).sum()) == 17


def test_unmatched_keys_are_listed_in_one_line():
    sd = golden_state_dict()
    sd["emcl.mu"] = torch.zeros(1, 32)
    sd["lstm_visual.weight_ih_l0"] = torch.zeros(1)
    model = tiny_emcl_net(golden_state_dict(), seed=0)
    with pytest.raises(CheckpointError) as error:
        load_reference_checkpoint(model, sd)
    message = str(error.value)
    assert "\n" not in message
    assert "(method.agg_module seqTransf): emcl.mu, lstm_visual.weight_ih_l0" in message


def test_a_checkpoint_without_the_temporal_module_is_refused():
    sd = {k: v for k, v in golden_state_dict().items() if not k.startswith("transformerClip.")}
    with pytest.raises(CheckpointError, match="temporal weights do not fit"):
        load_reference_checkpoint(tiny_emcl_net(golden_state_dict(), seed=0), sd)


def test_every_retrieval_method_registers_its_reference_loader():
    loaders = {
        "emcl": baselines.emcl_net.load_reference_checkpoint,
        "clip4clip": baselines.checkpoints.load_reference_checkpoint,
        "xclip": baselines.checkpoints.load_reference_checkpoint,
        "drl": baselines.drl.load_reference_checkpoint,
        "hmmc": baselines.hmmc_checkpoint.load_reference_checkpoint,
        "clip2video": baselines.clip2video.load_reference_checkpoint,
    }
    for method, loader in loaders.items():
        assert METHODS.entry("retrieval", method).reference_adapter() is loader
    assert METHODS.entry("qa", "emcl").reference_adapter() is None


def random_temporal(layers: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """EMCL-Net's seqTransf keys (frame positions and ``layers`` residual blocks), random."""
    w = WIDTH
    block = {
        "attn.in_proj_weight": (3 * w, w),
        "attn.in_proj_bias": (3 * w,),
        "attn.out_proj.weight": (w, w),
        "attn.out_proj.bias": (w,),
        "ln_1.weight": (w,),
        "ln_1.bias": (w,),
        "mlp.c_fc.weight": (4 * w, w),
        "mlp.c_fc.bias": (4 * w,),
        "mlp.c_proj.weight": (w, 4 * w),
        "mlp.c_proj.bias": (w,),
        "ln_2.weight": (w,),
        "ln_2.bias": (w,),
    }
    sd = {"frame_position_embeddings.weight": torch.randn(77, w, generator=generator) * 0.1}
    for i in range(layers):
        for name, shape in block.items():
            near_one = name.startswith("ln") and name.endswith("weight")
            value = torch.randn(shape, generator=generator) * 0.1 + near_one
            sd[f"transformerClip.resblocks.{i}.{name}"] = value
    return sd


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """A reference-layout EMCL-Net file for synthvtt's frames (64 px) and the CLIP BPE."""
    sd = {f"clip.{k}": v for k, v in openai_state_dict(tiny_clip(64, 32, seed=3)).items()}
    sd.update(random_temporal(2, torch.Generator().manual_seed(5)))
    path = tmp_path_factory.mktemp("released") / "pytorch_model.bin"
    torch.save(sd, path)
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthvtt_released")


def test_cli_evaluates_a_released_file_through_the_adapter(released, data_root, tmp_path):
    out = tmp_path / "eval"
    result = run_cli(
        "--task", "retrieval", "--method", "emcl", "--eval-only", "--checkpoint", str(released),
        "--data-root", str(data_root), "--output-dir", str(out), *DATA,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_results(out)
    assert record["training"] == {"reference_checkpoint": str(released)}
    assert record["config"]["encoder"]["pretrained"] == str(released)
    # the same file loaded here through the adapter gives the same numbers
    task = TASKS.get("retrieval")(record["config"])
    task.setup(train=False)
    assert task.tokenizer.vocab_size == 49408  # the CLIP BPE, not synthvtt's word tokenizer
    model = task.build_model()
    load_reference_checkpoint(model, torch.load(released, weights_only=True))
    model.eval()
    with torch.no_grad():
        evaluation = task.evaluate(model)
    assert evaluation.metrics == record["metrics"]


def one_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr.strip()


def test_cli_names_unmatched_keys(released, data_root, tmp_path):
    sd = torch.load(released, weights_only=True)
    sd["cross.pooler.dense.weight"] = torch.zeros(2, 2)
    bad = tmp_path / "pytorch_model.bin"
    torch.save(sd, bad)
    result = run_cli(
        "--task", "retrieval", "--eval-only", "--checkpoint", str(bad),
        "--data-root", str(data_root), "--output-dir", str(tmp_path / "out"), *DATA,
    )  # fmt: skip
    line = one_line(result)
    assert "EMCL-Net checkpoint keys with no place in the model" in line
    assert "cross.pooler.dense.weight" in line


def test_cli_method_without_a_loader_is_one_line(released, tmp_path):
    result = run_cli(
        "--task", "qa", "--eval-only", "--checkpoint", str(released),
        "--output-dir", str(tmp_path / "qa"),
    )  # fmt: skip
    assert "has no loader for reference checkpoints" in one_line(result)
