"""Golden vectors for baselines/clip2video.py from the reference CLIP2Video code with EMCL as an
inference module, on tiny random weights.

    python tools/make_golden_clip2video.py --emcl REF/EMCL [--out tests/fixtures]

``--emcl``: an export of github:jpthu17/EMCL at commit 3af17942e8195c563e2f47af68be521100e5935f;
``video_retrieval/As_an_inference_module/modules`` is imported from it as is. Its
``modeling.py`` is CryhanFang/CLIP2Video's (commit e94131800a3a1434f6d00b89b7301d741db8ba06) plus
the ``Emcl`` class and its call in ``_similarity_TDB``; with ``task_config.EMCL = 0`` it is
CLIP2Video. Nothing is copied from it.

How the tiny reference model is built (no change to the reference files):
- ``CLIP2Video.__init__`` derives head counts as width // 64 and hard-codes 512 for
  ``trans_layernorm`` and the TAB centres. It is given the shapes of a 64-wide CLIP (one head),
  then these attributes are replaced by the same classes at width 32 with 2 heads: ``clip``
  (the reference ``CLIP``, fp32), ``transformerClip`` (2 layers), ``frame2t_attention`` and
  ``actionClip`` (1 layer), ``trans_layernorm`` and ``weight_center``/``emb_center`` (5 x 32).
- Settings of the README run: ``sim_type seqTransf, temporal_type TDB, temporal_proj
  sigmoid_selfA, center_type TAB, centerK 5, center_weight 0.5, center_proj TAB_TDB``; EMCL
  ``K 7, stage_num 10, momentum 0.9, lamd 0.1, beta 4``. ``torch.manual_seed(42)`` runs just
  before the model is built, so its ``Emcl`` draws ``mu`` first, as in ``infer_retrieval.py``.
- Shapes (tools/golden_tiny.py): 16 px frames, 8 px patches, 64-token vocabulary, 16 text
  positions, 2 CLIP layers; 8 words, 6 frames (videos with 6, 4, 3 and 1 real frames).
- ``Tensor.cuda`` is the identity while the reference runs (``temporal_difference_block`` and
  ``Emcl`` call it).

Writes clip2video_golden.npz: ``sd/<key>`` (float16, exact: the 1/64 grid) the reference state
dict, i.e. the released ``pytorch_model.bin`` layout; ``ids``, ``mask`` (5 texts), ``pixels``,
``video_mask`` (4 videos); ``sim`` (float32, EMCL off) and ``sim_emcl`` (float32, EMCL on) as
``get_inference_logits`` returns them for the 5 x 4 block (with the logit scale);
``sim_emcl64``: EMCL on with the EM step in float64 (``mu`` and the block's rows cast); ``mu``
(the seed-42 draw) and ``loss``: the training ``forward`` on the first 4 pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from golden_tiny import (
    HEADS,
    LAYERS,
    LOGIT_SCALE,
    VOCAB,
    WIDTH,
    cuda_is_identity,
    randomize,
    save,
    text_inputs,
    tiny_clip,
    video_inputs,
    weight_arrays,
)
from torch import nn

EMCL_COMMIT = "3af17942e8195c563e2f47af68be521100e5935f"
CLIP2VIDEO_COMMIT = "e94131800a3a1434f6d00b89b7301d741db8ba06"
MODULES = Path("video_retrieval/As_an_inference_module")
MAX_WORDS, MAX_FRAMES = 8, 6
TEXT_LENGTHS = (8, 5, 3, 8, 4)
VIDEO_LENGTHS = (6, 4, 3, 1)
CENTER_K, CENTER_WEIGHT = 5, 0.5
EMCL_SEED = 42


def import_reference(root: Path):
    """The reference ``modules.modeling``, ``module_clip`` and ``module_cross``."""
    sys.path.insert(0, str(root / MODULES))
    from modules import modeling, module_clip, module_cross

    return modeling, module_clip, module_cross


def task_config(emcl: int) -> SimpleNamespace:
    """The README's inference settings at tiny size."""
    return SimpleNamespace(
        K=7,
        stage_num=10,
        momentum=0.9,
        lamd=0.1,
        beta=4,
        EMCL=emcl,
        sim_type="seqTransf",
        temporal_type="TDB",
        temporal_proj="sigmoid_selfA",
        center_type="TAB",
        centerK=CENTER_K,
        center_weight=CENTER_WEIGHT,
        center_proj="TAB_TDB",
        cross_num_hidden_layers=LAYERS,
        vocab_size=VOCAB,
        local_rank=0,
    )


def build_reference(root: Path) -> nn.Module:
    """The reference CLIP2Video at tiny width, random weights on the 1/64 grid."""
    modeling, module_clip, module_cross = import_reference(root)
    shapes = module_clip.CLIP(WIDTH, 16, LAYERS, 64, 8, 16, VOCAB, 64, 1, LAYERS).state_dict()
    cross_config = module_cross.CrossConfig(
        512,
        hidden_size=WIDTH,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * WIDTH,
        max_position_embeddings=128,
    )
    torch.manual_seed(EMCL_SEED)
    model = modeling.CLIP2Video(cross_config, shapes, task_config(0))
    model.clip = tiny_clip(module_clip).float()
    blocks = module_cross.Transformer
    model.transformerClip = blocks(width=WIDTH, layers=LAYERS, heads=HEADS)
    model.frame2t_attention = blocks(width=WIDTH, layers=1, heads=HEADS)
    model.actionClip = blocks(width=WIDTH, layers=1, heads=HEADS)
    model.trans_layernorm = nn.LayerNorm(WIDTH)
    model.weight_center = nn.Parameter(torch.empty(CENTER_K, WIDTH))
    model.emb_center = nn.Parameter(torch.empty(CENTER_K, WIDTH))
    randomize(model, torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.clip.logit_scale.fill_(LOGIT_SCALE)
    return model.eval()


class Float64EM:
    """The reference ``Emcl`` run on float64 rows (``mu`` cast), returning float64 rows."""

    def __init__(self, em) -> None:
        self.em = em
        em.mu = em.mu.double()

    def __call__(self, rows: torch.Tensor, if_train: bool = True) -> torch.Tensor:
        return self.em(rows.double(), if_train=if_train)


@torch.no_grad()
def inference_logits(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The reference eval logits (5, 4) of the whole block, with the logit scale."""
    text = model.get_sequence_output(inputs["ids"], torch.zeros_like(inputs["ids"]), inputs["mask"])
    frames = model.get_visual_output(inputs["video"], inputs["video_mask"])
    return model.get_inference_logits(text, frames, inputs["mask"], inputs["video_mask"])[0]


def training_loss(model: nn.Module, inputs: dict[str, torch.Tensor], n: int) -> torch.Tensor:
    """The reference training ``forward`` (global + TAB loss) on the first ``n`` pairs."""
    ids = inputs["ids"][:n]
    model.train()
    with torch.no_grad():
        loss, _ = model(
            ids, torch.zeros_like(ids), inputs["mask"][:n], inputs["video"][:n],
            inputs["video_mask"][:n],
        )  # fmt: skip
    model.eval()
    return loss


def main() -> None:
    """Build the tiny reference, run it with EMCL off and on, write the fixture."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emcl", type=Path, required=True, help="jpthu17/EMCL export")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures"))
    args = parser.parse_args()
    model = build_reference(args.emcl.resolve())
    mu = model.emcl.mu.clone()
    gen = torch.Generator().manual_seed(11)
    ids, mask = text_inputs(gen, TEXT_LENGTHS, MAX_WORDS)
    pixels, video_mask = video_inputs(gen, VIDEO_LENGTHS, MAX_FRAMES)
    # The loaders' (B, 1, F, 1, 3, H, W) layout.
    inputs = {"ids": ids, "mask": mask, "video": pixels[:, None, :, None], "video_mask": video_mask}
    with cuda_is_identity():
        sim = inference_logits(model, inputs)
        loss = training_loss(model, inputs, len(VIDEO_LENGTHS))
        model.task_config.EMCL = 1
        sim_emcl = inference_logits(model, inputs)
        model.emcl = Float64EM(model.emcl)
        sim_emcl64 = inference_logits(model, inputs)
    arrays = weight_arrays(model.state_dict())
    arrays.update(
        ids=ids.numpy(),
        mask=mask.numpy(),
        pixels=pixels.half().numpy(),
        video_mask=video_mask.numpy(),
        sim=sim.numpy(),
        sim_emcl=sim_emcl.numpy(),
        sim_emcl64=sim_emcl64.numpy(),
        mu=mu.numpy(),
        loss=loss.numpy(),
        reference=np.array(
            f"github:jpthu17/EMCL@{EMCL_COMMIT} {MODULES}/modules/modeling.py CLIP2Video "
            f"(= github:CryhanFang/CLIP2Video@{CLIP2VIDEO_COMMIT} plus Emcl)"
        ),
    )
    print("sim", sim, "\nsim_emcl", sim_emcl, "\nsim_emcl64", sim_emcl64, "\nloss", loss)
    save(args.out / "clip2video_golden.npz", arrays)


if __name__ == "__main__":
    main()
