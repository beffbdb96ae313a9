"""Golden vectors for loading EMCL-Net's released checkpoints (baselines/emcl_net.py), from the
reference model with tiny random weights.

    python tools/make_golden_emcl_net_checkpoint.py REF_ROOT [--out tests/fixtures]

``REF_ROOT``: an export of github:jpthu17/EMCL at commit 3af17942e8195c563e2f47af68be521100e5935f
(``video_retrieval/EMCL-Net/tvr/models/modeling.py`` is imported from it; nothing is copied).
EMCL-Net imports ``timm`` only for a drop path that is inactive in eval mode; without timm a stub
stands in for it. Its ``Emcl`` moves ``mu`` with ``.cuda(device)``, which runs as the identity on
CPU here (tools/golden_tiny.py).

The reference ``EMCL.__init__`` runs with two substitutions made here, not in the reference
files: its CLIP checkpoint path points at a tiny random OpenAI state dict (tools/golden_tiny.py)
and ``CLIP`` / ``TransformerClip`` are built with 2 heads (the reference derives width // 64
heads, 0 at width 32). The released checkpoint is emulated as ``main_retrieval.py`` would load
it: ``torch.manual_seed(SEED)`` (its ``--seed``), ``EMCL(args)`` (whose ``Emcl`` draws ``mu``
first), then ``load_state_dict(checkpoint, strict=False)`` of a state dict with random weights.

Writes emcl_net_checkpoint.npz (float32): ``sd/<key>`` the checkpoint in the reference layout
(``clip.*`` with ``clip.logit_scale``, ``frame_position_embeddings.weight``,
``transformerClip.*``; values on a 1/64 grid, exact in float16), inputs ``ids``, ``mask``,
``pixels``, ``video_mask``, the reference's ``mu`` and ``seed``, and its eval-mode block scores:
``sim`` (``get_similarity_logits``' text-to-video cosines, 4 texts x 5 videos, one EM block) and
``logits`` (``sim`` times ``exp(logit_scale)``, the scaled logits its loss reads).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden_tiny as tiny  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
EMCL_NET = Path("video_retrieval/EMCL-Net")
SEED = 0  # main_retrieval.py's --seed default
TEXT_LENGTHS, MAX_WORDS = (10, 7, 4, 3), 10
VIDEO_LENGTHS, FRAMES = (5, 3, 4, 2, 5), 5


def import_reference(root: Path, checkpoint: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """EMCL-Net's ``tvr.models.modeling`` and ``module_clip`` with the tiny CLIP file and 2-head
    builders (a timm stub when timm is absent)."""
    tiny.stub_timm_when_absent()
    sys.path.insert(0, str(root / EMCL_NET))
    import tvr.models.modeling as modeling
    from tvr.models import module_clip

    modeling._PT_NAME["ViT-B/32"] = str(checkpoint)  # os.path.join keeps an absolute path
    reference_transformer = modeling.TransformerClip

    def clip(*_shapes):
        return tiny.tiny_clip(module_clip)

    def transformer(width, layers, heads):
        return reference_transformer(width=width, layers=layers, heads=tiny.HEADS)

    modeling.CLIP = clip
    modeling.TransformerClip = transformer
    return modeling, module_clip


def reference_args() -> SimpleNamespace:
    """main_retrieval.py's arguments that ``EMCL`` reads (its defaults, 2 temporal layers)."""
    return SimpleNamespace(
        agg_module="seqTransf",
        base_encoder="ViT-B/32",
        num_hidden_layers=tiny.LAYERS,
        centerK=32,
        stage_num=9,
        momentum=0.9,
        lamd=1,
        beta=3,
        temp=3,
        local_rank=0,
        world_size=1,
    )


def golden(modeling, gen: torch.Generator) -> dict[str, np.ndarray]:
    """The checkpoint, inputs and reference scores of a model loaded as main_retrieval.py does."""
    donor = modeling.EMCL(reference_args())
    tiny.randomize(donor, gen)
    donor.clip.logit_scale.data.fill_(tiny.LOGIT_SCALE)
    checkpoint = {k: v.clone() for k, v in donor.state_dict().items()}
    torch.manual_seed(SEED)
    model = modeling.EMCL(reference_args())
    missing, unexpected = model.load_state_dict(checkpoint, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    ids, mask = tiny.text_inputs(gen, TEXT_LENGTHS, MAX_WORDS)
    pixels, vmask = tiny.video_inputs(gen, VIDEO_LENGTHS, FRAMES)
    model.eval()
    with torch.no_grad(), tiny.cuda_is_identity():
        _, cls = model.get_text_feat(ids, mask)
        video = model.get_video_feat(pixels, vmask)
        sim = model.get_similarity_logits(None, cls, video, mask, vmask.float())[0]
        logits = sim * model.clip.logit_scale.exp()
    arrays = tiny.weight_arrays(checkpoint)
    arrays.update(
        {
            "ids": ids.numpy(),
            "mask": mask.numpy(),
            "pixels": pixels.half().numpy(),
            "video_mask": vmask.numpy(),
            "mu": model.emcl.mu.numpy(),
            "seed": np.array(SEED),
            "sim": sim.numpy(),
            "logits": logits.numpy(),
            "reference": np.array(
                f"github:jpthu17/EMCL@{tiny.EMCL_COMMIT} {EMCL_NET}/tvr/models/modeling.py EMCL"
            ),
        }
    )
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref_root", type=Path, help="jpthu17/EMCL export (see module doc)")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(11)
    with tempfile.TemporaryDirectory() as tmp:
        clip_file = Path(tmp) / "tiny-clip.pt"
        modeling, module_clip = import_reference(args.ref_root.resolve(), clip_file)
        torch.save(tiny.tiny_openai_state(module_clip, gen), clip_file)
        arrays = golden(modeling, gen)
    tiny.save(args.out / "emcl_net_checkpoint.npz", arrays)


if __name__ == "__main__":
    main()
