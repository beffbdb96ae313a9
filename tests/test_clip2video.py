"""baselines.clip2video against golden vectors of the reference CLIP2Video with EMCL as an
inference module (fixture from tools/make_golden_clip2video.py): the reference state dict goes
through our adapter into our model, whose scores (EMCL off and on) and training loss must match
the reference's in float32, the EM step compared in float64 (fp32 EM amplifies rounding)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import yaml
from cli import read_results, run_cli, tiny_overrides
from conftest import FIXTURES, REPO_ROOT
from transformers import CLIPModel

from baselines.clip2video import CLIP2Video, load_reference_checkpoint
from harness.config import ConfigError
from harness.encoder import CheckpointError, VideoTextEncoder, build_clip, clip_config_from_openai

ATOL = 1e-5
# Golden shapes: 32-wide CLIP with 16-wide heads, 2 temporal layers, 8 words, 6 frames.
HEAD_DIM, LAYERS, MAX_WORDS, MAX_FRAMES = 16, 2, 8, 6


@functools.cache
def golden() -> dict[str, torch.Tensor]:
    with np.load(FIXTURES / "clip2video_golden.npz") as data:
        out = {k: torch.from_numpy(data[k]) for k in data.files if k != "reference"}
    out["pixels"] = out["pixels"].float()
    return out


def checkpoint() -> dict[str, torch.Tensor]:
    """The reference state dict (``pytorch_model.bin`` layout) of the fixture."""
    return {k.removeprefix("sd/"): v for k, v in golden().items() if k.startswith("sd/")}


def run_config(seed: int = 42, max_frames: int = MAX_FRAMES, **method) -> dict:
    path = REPO_ROOT / "baselines" / "configs" / "retrieval" / "clip2video.yaml"
    defaults = yaml.safe_load(path.read_text())
    return {
        "seed": seed,
        "train": {"gather_grad": "local"},
        "method": defaults["method"] | {"temporal_layers": LAYERS} | method,
        "eval": defaults["eval"],
        "data": {"max_words": MAX_WORDS, "max_frames": max_frames},
    }


def reference_model(**method) -> CLIP2Video:
    """Our model with the fixture's reference checkpoint loaded, in eval mode."""
    sd = checkpoint()
    clip = CLIPModel(clip_config_from_openai(sd, prefix="clip.", head_dim=HEAD_DIM))
    model = CLIP2Video(VideoTextEncoder(clip), run_config(**method))
    load_reference_checkpoint(model, sd)
    return model.eval()


def random_model(**config) -> CLIP2Video:
    clip = build_clip(
        None, "tiny", 16, 8, vocab_size=64, max_text_positions=16, sot_id=62, eot_id=63
    )
    return CLIP2Video(VideoTextEncoder(clip), run_config(**config))


def features(model: CLIP2Video):
    g = golden()
    with torch.no_grad():
        return model.encode_text(g["ids"], g["mask"]), model.encode_video(
            g["pixels"], g["video_mask"]
        )


def in_float64(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() for k, v in features.items()}


def test_scores_match_reference_without_emcl():
    model = reference_model()
    with torch.no_grad():
        sim = model.similarity(*features(model))
    assert sim.shape == (5, 4)
    expected = golden()["sim"] / model.logit_scale.detach()
    torch.testing.assert_close(sim, expected, atol=ATOL, rtol=0)
    assert model.eval_block is None  # without EMCL, blocks do not change scores


def test_saved_reference_checkpoint_loads_through_the_adapter(tmp_path):
    """The released layout as ``torch.save`` writes it (CLIP matrices in float16)."""
    torch.save(checkpoint(), tmp_path / "pytorch_model.bin.2")
    sd = torch.load(tmp_path / "pytorch_model.bin.2", weights_only=True)
    assert sd["clip.visual.conv1.weight"].dtype == torch.float16
    clip = CLIPModel(clip_config_from_openai(sd, prefix="clip.", head_dim=HEAD_DIM))
    model = CLIP2Video(VideoTextEncoder(clip), run_config())
    load_reference_checkpoint(model, sd)
    with torch.no_grad():
        sim = model.eval().similarity(*features(model))
    torch.testing.assert_close(sim, golden()["sim"] / model.logit_scale.detach(), atol=ATOL, rtol=0)
    torch.testing.assert_close(model.emb_center, sd["emb_center"].float())


def test_emcl_inference_scores_match_reference():
    """EMCL on the global branch (k 7, 10 stages, lamd 0.1, beta 4, seed-42 mu): our float32
    features, the EM step in float64 on both sides."""
    model = reference_model(emcl="inference")
    torch.testing.assert_close(model.emcl.em.mu, golden()["mu"], atol=0, rtol=0)
    text, video = features(model)
    with torch.no_grad():
        sim = model.similarity(in_float64(text), in_float64(video))
    expected = golden()["sim_emcl64"] / model.logit_scale.detach().double()
    torch.testing.assert_close(sim, expected, atol=ATOL, rtol=0)
    assert not torch.allclose(sim.float(), golden()["sim"] / model.logit_scale.detach(), atol=0.1)
    torch.testing.assert_close(model.emcl.em.mu, golden()["mu"], atol=0, rtol=0)  # never moves
    assert model.eval_block == 64


def test_emcl_inference_in_float32_is_near_reference_float32():
    """In float32 both sides amplify their own rounding through 10 EM stages: close, not equal."""
    model = reference_model(emcl="inference")
    with torch.no_grad():
        sim = model.similarity(*features(model))
    expected = golden()["sim_emcl"] / model.logit_scale.detach()
    torch.testing.assert_close(sim, expected, atol=2e-2, rtol=0)


def test_training_loss_matches_reference():
    g = golden()
    model = reference_model().train()
    n = len(g["video_mask"])
    batch = {"ids": g["ids"][:n], "mask": g["mask"][:n]}
    batch |= {"pixels": g["pixels"], "video_mask": g["video_mask"]}
    loss = model(batch)
    torch.testing.assert_close(loss, g["loss"], atol=ATOL, rtol=0)
    loss.backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None}
    for part in ("temporal.layers.0", "difference.attention", "alignment", "weight_center"):
        assert any(name.startswith(part) for name in grads), part


def test_emcl_mu_is_the_reference_draw_for_the_run_seed():
    torch.manual_seed(0)  # whatever the process drew before
    model = random_model(seed=42, emcl="inference")
    assert model.emcl.em.mu.sign().tolist() == [[1, 1, 1, 1, -1, -1, 1]]
    other = random_model(seed=1, emcl="inference")
    assert not torch.equal(other.emcl.em.mu, model.emcl.em.mu)


def test_checkpoint_with_unknown_keys_fails_in_one_line():
    sd = checkpoint() | {"frame2t_projection": torch.zeros(32, 32), "extra.bias": torch.zeros(3)}
    model = random_model()
    with pytest.raises(CheckpointError, match="extra.bias, frame2t_projection") as err:
        load_reference_checkpoint(model, sd)
    assert "\n" not in str(err.value)


def test_checkpoint_without_alignment_block_fails_in_one_line():
    sd = {k: v for k, v in checkpoint().items() if not k.startswith("actionClip.")}
    clip = CLIPModel(clip_config_from_openai(sd, prefix="clip.", head_dim=HEAD_DIM))
    model = CLIP2Video(VideoTextEncoder(clip), run_config())
    with pytest.raises(CheckpointError, match=r"actionClip\.resblocks") as err:
        load_reference_checkpoint(model, sd)
    assert "\n" not in str(err.value)


def test_random_init_starts_from_clip_text():
    model = random_model()
    text = model.encoder.clip.text_model
    table = text.embeddings.position_embedding.weight
    torch.testing.assert_close(model.difference.types.weight, table[:2])
    torch.testing.assert_close(model.positions, table)
    for blocks in (model.difference.attention, model.alignment, model.temporal):
        torch.testing.assert_close(
            blocks.layers[0].mlp.fc1.weight, text.encoder.layers[0].mlp.fc1.weight
        )


@pytest.mark.parametrize("max_frames", [2, 17])
def test_frame_count_outside_the_model_is_a_config_error(max_frames):
    with pytest.raises(ConfigError, match=r"3 <= data.max_frames <= 16 .*, got") as err:
        random_model(max_frames=max_frames)
    assert "\n" not in str(err.value)


def test_mask_order_per_video_makes_videos_independent_of_their_batch():
    """The reference's head-major masks let a video's padding mask other videos' keys (the
    fixture's videos have 6, 4, 3 and 1 real frames); ``per_video`` gives each its own."""
    g = golden()
    pixels, mask = g["pixels"], g["video_mask"]
    for order, independent in (("per_video", True), ("reference", False)):
        model = reference_model(mask_order=order)
        with torch.no_grad():
            together = model.encode_video(pixels, mask)["video"]
            alone = torch.cat(
                [model.encode_video(pixels[i : i + 1], mask[i : i + 1])["video"] for i in range(4)]
            )
        assert torch.allclose(together, alone, atol=1e-6) == independent, order


def test_tiny_run_trains_and_writes_results(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "--task", "retrieval", "--method", "clip2video", "--data-root", str(tmp_path / "data"),
        "--output-dir", str(out), "-o", "method.emcl=inference",
        *tiny_overrides({"eval.block_size": None}),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_results(out)
    assert record["method"] == "clip2video"
    assert record["config"]["method"]["emcl"] == "inference"
    assert record["protocol"]["eval_block"] == 64
    assert record["training"]["steps"] == 15  # 24 videos x 5 captions in batches of 8
    assert math.isfinite(record["training"]["final_loss"])
    t2v = record["metrics"]["t2v"]
    assert 0 <= t2v["R@1"] <= t2v["R@5"] <= t2v["R@10"] <= 100
