"""Temporal aggregation (meanP / seqLSTM / seqTransf) against EMCL-Net's ``agg_video_feat``
(golden vectors from tools/make_golden_encoder.py) and the CLIP-text initialization trick."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FIXTURES
from transformers import CLIPModel

from harness.config import ConfigError
from harness.encoder import CheckpointError, clip_config_from_openai, convert_openai_state_dict
from harness.temporal import build_aggregator, init_from_clip_text, load_reference_temporal_state

# Golden temporal modules: width 32, 4 heads, 2 layers, 16 positions, F = 6.
SHAPES = dict(width=32, heads=4, num_layers=2, max_positions=16)


def load(name: str) -> dict[str, torch.Tensor]:
    with np.load(FIXTURES / name) as data:
        return {k: torch.from_numpy(data[k]) for k in data.files if k != "reference"}


def checkpoint(golden: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference weights as a repo checkpoint holds them, beside some CLIP keys."""
    sd = {k.removeprefix("sd/"): v for k, v in golden.items() if k.startswith("sd/")}
    sd["clip.logit_scale"] = torch.tensor(4.6052)
    return sd


@pytest.mark.parametrize(
    ("kind", "fixture"),
    [("seqTransf", "temporal_seqtransf.npz"), ("seqLSTM", "temporal_seqlstm.npz")],
)
def test_reference_weights_reproduce_reference_outputs(kind, fixture):
    golden = load(fixture)
    module = build_aggregator(kind, **SHAPES).eval()
    load_reference_temporal_state(module, checkpoint(golden))
    with torch.no_grad():
        out = module(golden["frames"], golden["mask"])
    torch.testing.assert_close(out, golden["output"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["seqTransf", "seqLSTM"])
def test_padded_frames_do_not_leak_into_real_frames(kind):
    module = build_aggregator(kind, width=16, heads=2, num_layers=2).eval()
    frames = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    changed = frames.clone()
    changed[0, 3:] = 100.0
    with torch.no_grad():
        a, b = module(frames, mask), module(changed, mask)
    torch.testing.assert_close(a[0, :3], b[0, :3])
    torch.testing.assert_close(a[1], b[1])


def test_mean_pooling_is_identity():
    frames = torch.randn(2, 4, 8)
    module = build_aggregator("meanP", width=8, heads=2)
    assert module(frames, torch.ones(2, 4)) is frames
    assert not list(module.parameters())


def test_unknown_kind_lists_valid_ones():
    with pytest.raises(
        ConfigError, match="'seqGRU' .*method.agg_module.*meanP, seqLSTM, seqTransf"
    ):
        build_aggregator("seqGRU", width=8, heads=2)


def test_kind_mismatch_with_checkpoint_is_one_line():
    module = build_aggregator("seqTransf", **SHAPES)
    with pytest.raises(CheckpointError, match="SeqTransformer") as err:
        load_reference_temporal_state(module, checkpoint(load("temporal_seqlstm.npz")))
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def openai_sd() -> dict[str, torch.Tensor]:
    """Tiny OpenAI CLIP weights (text width 32, 2 text layers, 16 positions)."""
    golden = load("encoder_openai_tiny.npz")
    return {k.removeprefix("sd/"): v for k, v in golden.items() if k.startswith("sd/")}


@pytest.fixture(scope="module")
def tiny_clip(openai_sd) -> CLIPModel:
    clip = CLIPModel(clip_config_from_openai(openai_sd, head_dim=16))
    clip.load_state_dict(convert_openai_state_dict(openai_sd))
    return clip


def test_clip_init_equals_reference_trick_on_openai_keys(openai_sd, tiny_clip):
    # The reference copies positional_embedding and transformer.resblocks.{i} under its own keys.
    trick = {"frame_position_embeddings.weight": openai_sd["positional_embedding"]}
    for key, value in openai_sd.items():
        if key.startswith("transformer.resblocks."):
            trick[key.replace("transformer.", "transformerClip.", 1)] = value
    expected = build_aggregator("seqTransf", **SHAPES)
    load_reference_temporal_state(expected, trick)

    module = build_aggregator("seqTransf", **SHAPES)
    init_from_clip_text(module, tiny_clip)
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(module.state_dict()[key], value, msg=key)


def test_clip_init_leaves_extra_rows_and_layers_random(tiny_clip):
    torch.manual_seed(0)
    module = build_aggregator("seqTransf", width=32, heads=2, num_layers=3, max_positions=40)
    init_from_clip_text(module, tiny_clip)
    table = tiny_clip.text_model.embeddings.position_embedding.weight
    torch.testing.assert_close(module.position_embeddings.weight[:16], table)
    assert module.position_embeddings.weight[16:].std().item() == pytest.approx(0.02, rel=0.2)
    deep = module.layers[2]
    assert torch.all(deep.layer_norm1.weight == 1) and torch.all(deep.mlp.fc1.bias == 0)
    assert deep.mlp.fc1.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert deep.layer_norm1.eps == 1e-12


def test_clip_init_needs_matching_width(tiny_clip):
    module = build_aggregator("seqTransf", width=64, heads=2)
    with pytest.raises(CheckpointError, match="text width"):
        init_from_clip_text(module, tiny_clip)
