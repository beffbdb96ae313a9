"""baselines.clip4clip against golden vectors of the reference CLIP4Clip model (fixtures from
tools/make_golden_clip4clip.py): reference checkpoints go through our adapter into our model, whose
scores and losses must match the reference's in float32. The EMCL plug-in is checked against the
reference EMCL classes fed the reference's global vectors."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import yaml
from conftest import FIXTURES, REPO_ROOT
from transformers import CLIPModel

import harness.heads
from baselines.checkpoints import load_reference_checkpoint
from baselines.clip4clip import CLIP4Clip
from harness.config import ConfigError
from harness.encoder import VideoTextEncoder, build_clip, clip_config_from_openai

ATOL = 1e-5
HEADERS = ("meanP", "seqLSTM", "seqTransf", "tightTransf")
# Golden shapes: 32-wide CLIP with 16-wide heads, 2 layers everywhere, 8 words, 5 frames.
HEAD_DIM, LAYERS, MAX_WORDS, MAX_FRAMES = 16, 2, 8, 5


@functools.cache
def golden(name: str) -> dict[str, torch.Tensor]:
    """Arrays of a fixture; pixels widened to float32, weights kept as stored."""
    with np.load(FIXTURES / name) as data:
        out = {k: torch.from_numpy(data[k]) for k in data.files if k != "reference"}
    out["pixels"] = out["pixels"].float()
    return out


def checkpoint(g: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference state dict (``pytorch_model.bin`` layout) of a fixture."""
    return {k.removeprefix("sd/"): v for k, v in g.items() if k.startswith("sd/")}


def method_defaults(name: str) -> dict:
    """The ``method`` section of ``baselines/configs/retrieval/<name>.yaml``."""
    path = REPO_ROOT / "baselines" / "configs" / "retrieval" / f"{name}.yaml"
    return yaml.safe_load(path.read_text())["method"]


def run_config(name: str, **method) -> dict:
    """A run config with the yaml defaults of method ``name``, golden shapes and ``method``."""
    settings = method_defaults(name) | {"temporal_layers": LAYERS} | method
    return {
        "train": {"gather_grad": "local", "micro_batch": None, "reference_world_size": None},
        "method": settings,
        "eval": {"block_size": 32},
        "data": {"max_words": MAX_WORDS, "max_frames": MAX_FRAMES},
    }


def reference_model(model_cls, fixture: str, name: str, **method):
    """Our ``model_cls`` with the fixture's reference checkpoint loaded, in eval mode."""
    sd = checkpoint(golden(fixture))
    clip = CLIPModel(clip_config_from_openai(sd, prefix="clip.", head_dim=HEAD_DIM))
    model = model_cls(VideoTextEncoder(clip), run_config(name, **method))
    load_reference_checkpoint(model, sd)
    return model.eval()


def random_model(model_cls, name: str, **method):
    """Our ``model_cls`` on a random tiny CLIP (64-token vocabulary, 32 px frames)."""
    clip = build_clip(
        None, "tiny", 32, 16, vocab_size=64, max_text_positions=16, sot_id=62, eot_id=63
    )
    return model_cls(VideoTextEncoder(clip), run_config(name, **method))


def clip4clip(sim_header: str, **method) -> CLIP4Clip:
    return reference_model(
        CLIP4Clip, f"clip4clip_{sim_header}.npz", "clip4clip", sim_header=sim_header, **method
    )


def features(model, g: dict[str, torch.Tensor]):
    """Text and video features of the fixture's 5 texts and 4 videos."""
    with torch.no_grad():
        text = model.encode_text(g["ids"], g["mask"])
        video = model.encode_video(g["pixels"], g["video_mask"])
    return text, video


def train_batch(g: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fixture's first 4 (text, video) pairs as a training batch."""
    n = len(g["video_mask"])
    return {
        "ids": g["ids"][:n],
        "mask": g["mask"][:n],
        "pixels": g["pixels"],
        "video_mask": g["video_mask"],
    }


def in_float64(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() if v.is_floating_point() else v for k, v in features.items()}


@pytest.mark.parametrize("sim_header", HEADERS)
def test_eval_scores_match_reference(sim_header):
    g = golden(f"clip4clip_{sim_header}.npz")
    model = clip4clip(sim_header)
    with torch.no_grad():
        sim = model.similarity(*features(model, g))
    expected = g["sim"]
    if sim_header != "tightTransf":  # the reference's loose eval matrix carries the logit scale
        expected = expected / model.logit_scale.detach()
    assert sim.shape == (5, 4)
    torch.testing.assert_close(sim, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("sim_header", HEADERS)
def test_training_loss_matches_reference(sim_header):
    g = golden(f"clip4clip_{sim_header}.npz")
    model = clip4clip(sim_header, cross_dropout=0.0).train()
    loss = model(train_batch(g))
    torch.testing.assert_close(loss, g["loss"], atol=ATOL, rtol=0)


def test_tight_transf_dropout_draws_the_reference_mask():
    g = golden("clip4clip_tightTransf.npz")
    model = clip4clip("tightTransf").train()
    torch.manual_seed(int(g["dropout_seed"]))
    loss = model(train_batch(g))
    torch.testing.assert_close(loss, g["loss_dropout"], atol=ATOL, rtol=0)
    assert not torch.isclose(loss, g["loss"])


def test_emcl_inference_matches_reference_em():
    """EM in float64 on our float32 features (fp32 EM amplifies rounding, METHODS §10.21)."""
    g = golden("clip4clip_meanP.npz")
    model = clip4clip("meanP", emcl="inference")
    model.emcl.em.mu = g["emcl_inference_mu"].float()
    text, video = features(model, g)
    torch.testing.assert_close(text["text"], g["emcl_t_hat"].float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(video["video"], g["emcl_v_hat"].float(), atol=1e-6, rtol=0)
    with torch.no_grad():
        sim = model.similarity(in_float64(text), in_float64(video))
    torch.testing.assert_close(sim, g["emcl_inference_sim"], atol=1e-6, rtol=0)
    torch.testing.assert_close(model.emcl.em.mu, g["emcl_inference_mu"].float())
    assert model.eval_block == 32


def test_emcl_inference_leaves_training_alone():
    g = golden("clip4clip_meanP.npz")
    plain = clip4clip("meanP").train()
    plugged = clip4clip("meanP", emcl="inference").train()
    mu = plugged.emcl.em.mu.clone()
    torch.testing.assert_close(plugged(train_batch(g)), plain(train_batch(g)))
    torch.testing.assert_close(plugged.emcl.em.mu, mu)
    assert plain.eval_block is None


def test_emcl_joint_matches_reference_layer():
    g = golden("clip4clip_meanP.npz")
    joint = method_defaults("clip4clip")["emcl_joint"] | {"k": 8}
    model = clip4clip("meanP", emcl="joint", emcl_joint=joint)
    model.emcl.em.mu = g["emcl_joint_mu"].float()
    with torch.no_grad():
        sim = model.similarity(*features(model, g))
    torch.testing.assert_close(sim, g["emcl_joint_sim"].float(), atol=ATOL, rtol=0)
    loss = model.train()(train_batch(g))
    torch.testing.assert_close(loss, g["emcl_joint_loss"].float(), atol=ATOL, rtol=0)
    torch.testing.assert_close(
        model.emcl.em.mu, g["emcl_joint_mu_after"].float(), atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("sim_header", HEADERS)
def test_padded_frames_do_not_change_scores(sim_header):
    g = golden(f"clip4clip_{sim_header}.npz")
    model = clip4clip(sim_header)
    noisy = dict(g)
    padded = (g["video_mask"] == 0)[:, :, None, None, None]
    noisy["pixels"] = torch.where(padded, torch.randn_like(g["pixels"]), g["pixels"])
    with torch.no_grad():
        before = model.similarity(*features(model, g))
        after = model.similarity(*features(model, noisy))
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


def test_only_loose_types_gather_over_processes(monkeypatch):
    """tightTransf trains on the local batch, as the reference; loose types on the gathered one.
    A fake two-process gather (the batch twice) makes the difference visible."""
    monkeypatch.setattr(
        harness.heads, "all_gather_with_grad", lambda t, mode: torch.cat((t, t.flip(0)))
    )
    for sim_header in ("meanP", "tightTransf"):
        g = golden(f"clip4clip_{sim_header}.npz")
        model = clip4clip(sim_header, cross_dropout=0.0).train()
        gathered = not torch.isclose(model(train_batch(g)), g["loss"], atol=ATOL)
        assert gathered == (sim_header == "meanP")


@pytest.mark.parametrize("sim_header", HEADERS)
def test_training_step_backward(sim_header):
    g = golden(f"clip4clip_{sim_header}.npz")
    model = clip4clip(sim_header).train()
    loss = model(train_batch(g))
    loss.backward()
    assert torch.isfinite(loss)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(v).all() for v in grads.values())
    assert any(n.startswith("encoder.clip.vision_model") for n in grads)
    head = "cross." if sim_header == "tightTransf" else "aggregator."
    assert sim_header == "meanP" or any(n.startswith(head) for n in grads)
    assert ("encoder.clip.logit_scale" in grads) == (sim_header != "tightTransf")


@pytest.mark.parametrize("sim_header", ["seqTransf", "tightTransf"])
def test_random_init_copies_clip_text_layers(sim_header):
    model = random_model(CLIP4Clip, "clip4clip", sim_header=sim_header)
    module = model.cross.encoder if sim_header == "tightTransf" else model.aggregator
    text = model.encoder.clip.text_model
    torch.testing.assert_close(
        module.position_embeddings.weight, text.embeddings.position_embedding.weight
    )
    torch.testing.assert_close(
        module.layers[1].mlp.fc1.weight, text.encoder.layers[1].mlp.fc1.weight
    )


def test_checkpoint_of_another_head_fails_in_one_line():
    model = random_model(CLIP4Clip, "clip4clip", sim_header="meanP")
    with pytest.raises(ValueError, match=r"transformerClip\.resblocks.*more\)") as err:
        load_reference_checkpoint(model, checkpoint(golden("clip4clip_seqTransf.npz")))
    assert "\n" not in str(err.value)


def test_checkpoint_without_head_weights_fails_in_one_line():
    sd = checkpoint(golden("clip4clip_tightTransf.npz"))
    del sd["similarity_dense.weight"]
    model = clip4clip("tightTransf")
    with pytest.raises(ValueError, match="similarity_dense.weight") as err:
        load_reference_checkpoint(model, sd)
    assert "\n" not in str(err.value)


def test_checkpoint_with_other_clip_shapes_fails_in_one_line():
    model = random_model(CLIP4Clip, "clip4clip", sim_header="meanP")
    with pytest.raises(ValueError, match="CLIP weight") as err:
        load_reference_checkpoint(model, checkpoint(golden("clip4clip_meanP.npz")))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("method", "match"),
    [
        ({"sim_header": "seqGRU"}, "method.sim_header"),
        ({"sim_header": "meanP", "emcl": "always"}, "method.emcl"),
        ({"sim_header": "tightTransf", "emcl": "inference"}, "tightTransf"),
    ],
)
def test_bad_settings_are_one_line_config_errors(method, match):
    with pytest.raises(ConfigError, match=match) as err:
        random_model(CLIP4Clip, "clip4clip", **method)
    assert "\n" not in str(err.value)
