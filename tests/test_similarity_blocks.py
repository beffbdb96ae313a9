"""Scoring blocks per method: every method whose scores do not mix the rows of a block gives the
same matrix whatever the block (8 x 8 tiles, 64 x 64 tiles, one call on everything), per-item
parts are computed once per item rather than once per tile, and each method's yaml sets its
evaluation block (EMCL-Net keeps the reference's 32, CLIP2Video its reference's 64)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.similarity_case import TASK, method_config, random_encoder, random_features
from harness.registry import METHODS
from harness.retrieval import RetrievalModel

WIDTH, WORDS, FRAMES, ITEMS = 32, 8, 6, 70  # 70 items: full and partial tiles at 8 and 64

# (method, method settings): every default plus the cross-encoder variants, whose evaluation cuts
# a large block into passes.
NON_MIXING = [
    ("clip4clip", {}),
    ("clip4clip", {"sim_header": "tightTransf"}),
    ("xclip", {}),
    ("drl", {}),
    ("drl", {"interaction": "ti", "cdcr": 2}),
    ("drl", {"interaction": "dp"}),
    ("drl", {"interaction": "xti"}),
    ("hmmc", {}),
    ("clip2video", {}),
]


def build(name: str, **method) -> RetrievalModel:
    """Method ``name`` with its yaml's settings (``method`` overriding them) on a random
    one-layer CLIP, in eval mode."""
    torch.manual_seed(0)
    config = method_config(name, WORDS, FRAMES)
    config["method"].update(method)
    return METHODS.get(TASK, name)(random_encoder(WIDTH, 77), config).eval()


@pytest.mark.parametrize(("name", "method"), NON_MIXING, ids=lambda x: str(x))
def test_scores_do_not_depend_on_the_block(name: str, method: dict) -> None:
    model = build(name, **method)
    assert model.eval_block is None  # nothing mixes the rows of a block
    text, video = random_features(model, ITEMS, WORDS, FRAMES)
    with torch.no_grad():
        small, large, whole = (model.score(text, video, block) for block in (8, 64, None))
    assert small.shape == (ITEMS, ITEMS)
    torch.testing.assert_close(small, large, rtol=0, atol=1e-6)
    torch.testing.assert_close(whole, large, rtol=0, atol=1e-6)


def test_emcl_net_scores_depend_on_the_block() -> None:
    model = build("emcl")
    text, video = random_features(model, ITEMS, WORDS, FRAMES)
    with torch.no_grad():
        small, large = (model.score(text, video, block) for block in (8, 64))
    assert (small - large).abs().max() > 1e-4


def test_drl_weight_heads_run_once_per_item_not_per_tile() -> None:
    model = build("drl")
    rows_seen = {"text": 0, "video": 0}
    for side, head in (("text", model.text_weight_fc), ("video", model.video_weight_fc)):
        head.register_forward_hook(
            lambda _m, inputs, _o, side=side: rows_seen.__setitem__(
                side, rows_seen[side] + inputs[0].shape[0]
            )
        )
    text, video = random_features(model, ITEMS, WORDS, FRAMES)
    with torch.no_grad():
        model.score(text, video, 8)  # 9 x 9 tiles
    assert rows_seen == {"text": ITEMS, "video": ITEMS}


@pytest.mark.parametrize(
    ("name", "block"),
    [("emcl", 32), ("clip2video", 64), ("clip4clip", 512), ("xclip", 128), ("drl", 128)]
    + [("hmmc", 512)],
)
def test_each_method_yaml_sets_its_block(name: str, block: int) -> None:
    assert method_config(name, WORDS, FRAMES)["eval"]["block_size"] == block
