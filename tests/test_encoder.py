"""The shared CLIP encoder against OpenAI's reference CLIP (golden vectors from
tools/make_golden_encoder.py), its checkpoint loaders and its random-init presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FIXTURES
from transformers import CLIPModel

from harness.config import ConfigError
from harness.encoder import (
    TINY,
    CheckpointError,
    VideoTextEncoder,
    build_clip,
    clip_config_from_openai,
    convert_openai_state_dict,
)
from harness.errors import UserError
from tests.openai_layout import save_jit_archive

GOLDEN = FIXTURES / "encoder_openai_tiny.npz"
# Shapes of the golden model (see the generator): 32 px images, vocabulary 64, 16 positions.
TINY_ARGS = dict(image_size=32, vocab_size=64, max_text_positions=16, sot_id=62, eot_id=63)


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    with np.load(GOLDEN) as data:
        return {k: torch.from_numpy(data[k]) for k in data.files if k != "reference"}


@pytest.fixture(scope="module")
def openai_sd(golden: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The OpenAI-keyed weights as a JIT archive holds them (fp16 tensors, int attributes)."""
    return {k.removeprefix("sd/"): v for k, v in golden.items() if k.startswith("sd/")}


def assert_matches_reference(encoder: VideoTextEncoder, golden: dict[str, torch.Tensor]) -> None:
    encoder.eval()
    with torch.no_grad():
        text = encoder.encode_text(golden["ids"], golden["mask"])
        frames = encoder.encode_frames(golden["images"][:, None], with_patches=True)
        cls_only = encoder.encode_frames(golden["images"][:, None])
    close = dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(text.sentence, golden["text_eot"], **close)
    torch.testing.assert_close(text.words, golden["text_tokens"], **close)
    torch.testing.assert_close(frames.cls[:, 0], golden["image_features"], **close)
    torch.testing.assert_close(frames.patches[:, 0], golden["image_tokens"][:, 1:], **close)
    torch.testing.assert_close(cls_only.cls, frames.cls, **close)
    assert cls_only.patches is None


def test_converted_openai_weights_reproduce_reference_clip(golden, openai_sd):
    config = clip_config_from_openai(openai_sd, head_dim=16)
    assert config.vision_config.image_size == 32 and config.vision_config.patch_size == 8
    assert config.text_config.num_attention_heads == 2 and config.projection_dim == 32
    clip = CLIPModel(config)
    clip.load_state_dict(convert_openai_state_dict(openai_sd))
    assert_matches_reference(VideoTextEncoder(clip), golden)


def test_jit_archive_loads_through_build_clip(tmp_path, golden, openai_sd):
    path = tmp_path / "tiny-openai.pt"
    save_jit_archive(openai_sd, path)
    clip = build_clip(str(path), head_dim=16, **TINY_ARGS)
    assert all(p.dtype == torch.float32 for p in clip.parameters())
    assert clip.config.text_config.eos_token_id == 63
    assert_matches_reference(VideoTextEncoder(clip), golden)


def test_reference_repo_state_dict_loads_through_build_clip(tmp_path, golden, openai_sd):
    # CLIP4Clip-style checkpoints: "clip."-prefixed CLIP keys beside the method's own weights.
    sd = {f"clip.{k}": v for k, v in openai_sd.items() if k not in ("input_resolution",)}
    sd["transformerClip.resblocks.0.ln_1.weight"] = torch.ones(32)
    path = tmp_path / "pytorch_model.bin"
    torch.save(sd, path)
    clip = build_clip(str(path), head_dim=16, **TINY_ARGS)
    assert_matches_reference(VideoTextEncoder(clip), golden)


def test_hf_folder_round_trip(tmp_path, golden, openai_sd):
    clip = CLIPModel(clip_config_from_openai(openai_sd, head_dim=16))
    clip.load_state_dict(convert_openai_state_dict(openai_sd))
    clip.save_pretrained(tmp_path / "hf")
    reloaded = build_clip(str(tmp_path / "hf"), **TINY_ARGS)
    assert_matches_reference(VideoTextEncoder(reloaded), golden)


def test_unknown_openai_keys_are_named(openai_sd):
    sd = dict(openai_sd, **{"visual.layer1.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"visual\.layer1\.0\.conv1\.weight") as err:
        convert_openai_state_dict(sd)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"image_size": 64}, "expects 32px frames"),
        ({"vocab_size": 100, "sot_id": 98, "eot_id": 99}, "vocabulary of 64 tokens"),
        ({"max_text_positions": 77}, "16 text positions"),
    ],
)
def test_checkpoint_and_run_disagree(tmp_path, openai_sd, override, message):
    path = tmp_path / "tiny.pth"
    torch.save(openai_sd, path)
    with pytest.raises(ConfigError, match=message) as err:
        build_clip(str(path), head_dim=16, **dict(TINY_ARGS, **override))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unreadable_sources_are_user_errors_naming_the_path(tmp_path, openai_sd):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    resnet = tmp_path / "resnet.pt"
    torch.save(dict(openai_sd, **{"visual.layer1.0.conv1.weight": torch.zeros(1)}), resnet)
    not_weights = tmp_path / "not_weights.pt"
    torch.save({"epoch": torch.tensor(3), "note": "x"}, not_weights)
    sources = [
        (tmp_path / "missing.pt", "does not exist; check encoder.pretrained"),
        (garbage, "cannot read CLIP checkpoint"),
        (not_weights, "not a state dict of tensors"),
        (resnet, r"visual\.layer1\.0\.conv1\.weight"),
        (tmp_path / "no-such-folder", "cannot load CLIP model"),
    ]
    for path, match in sources:
        with pytest.raises(UserError, match=match) as err:
            build_clip(str(path), head_dim=16, **TINY_ARGS)
        assert isinstance(err.value, CheckpointError) and isinstance(err.value, ValueError)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_tiny_preset_random_init():
    clip = build_clip(None, vocab_size=100, max_text_positions=20, sot_id=98, eot_id=99)
    encoder = VideoTextEncoder(clip)
    text, vision = clip.config.text_config, clip.config.vision_config
    assert encoder.embed_dim == TINY.projection_dim == text.hidden_size
    assert (vision.image_size, vision.patch_size, vision.hidden_act) == (64, 16, "quick_gelu")
    assert (text.eos_token_id, text.bos_token_id, text.layer_norm_eps) == (99, 98, 1e-5)
    assert encoder.logit_scale is clip.logit_scale
    assert encoder.logit_scale.exp().item() == pytest.approx(1 / 0.07, rel=1e-4)

    ids = torch.tensor([[98, 5, 6, 7, 99, 0], [98, 9, 99, 0, 0, 0]])
    mask = (ids != 0).long()
    text_out = encoder.encode_text(ids, mask)
    frames = encoder.encode_frames(torch.randn(2, 3, 3, 64, 64), with_patches=True)
    assert text_out.sentence.shape == (2, 128) and text_out.words.shape == (2, 6, 128)
    assert frames.cls.shape == (2, 3, 128) and frames.patches.shape == (2, 3, 16, 128)
    torch.testing.assert_close(text_out.sentence, text_out.words[[0, 1], [4, 2]])


def test_text_after_end_of_text_does_not_change_features():
    clip = build_clip(None, vocab_size=100, max_text_positions=20, sot_id=98, eot_id=99)
    encoder = VideoTextEncoder(clip).eval()
    ids = torch.tensor([[98, 5, 6, 99, 0, 0, 0]])
    mask = (ids != 0).long()
    other_padding = ids.clone()
    other_padding[0, 4:] = torch.tensor([42, 43, 44])
    with torch.no_grad():
        a = encoder.encode_text(ids, mask)
        b = encoder.encode_text(other_padding, mask)
    torch.testing.assert_close(a.sentence, b.sentence)
    torch.testing.assert_close(a.words[:, :4], b.words[:, :4])


def test_bad_random_init_arguments():
    with pytest.raises(ConfigError, match="eot_id 2"):
        build_clip(None, vocab_size=100, sot_id=1, eot_id=2)
    with pytest.raises(ConfigError, match="unknown encoder size 'huge'.*encoder.size"):
        build_clip(None, size="huge", vocab_size=100, sot_id=98, eot_id=99)
    with pytest.raises(ConfigError, match="not a multiple of patch_size"):
        build_clip(None, image_size=60, vocab_size=100, sot_id=98, eot_id=99)
    with pytest.raises(ValueError, match="eot_id 100 is outside"):
        build_clip(None, vocab_size=100, sot_id=98, eot_id=100)
