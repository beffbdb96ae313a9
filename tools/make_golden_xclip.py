"""Golden vectors for baselines.xclip, produced by running the reference X-CLIP model.

    python tools/make_golden_xclip.py --xclip REF/X-CLIP --emcl REF/EMCL [--out DIR]

``--xclip``: an export of github:xuguohai/X-CLIP at commit
6b5344f44537d758acb82d115b8484f7430f9fb0 (the folder holding ``modules/``), imported as is.
``--emcl``: the EMCL export with the CPU shim described in tools/make_golden_clip4clip.py, whose
tiny-model recipe this script shares (same shapes, weights on a 1/64 grid, one-process gloo
group). The eight X-CLIP matrices are set to identity plus noise, so that every re-mixing and its
orientation is exercised.

Writes ``xclip_seqTransf.npz``: ``sd/<checkpoint key>`` (float16), ``ids``/``mask`` (5 texts),
``pixels``/``video_mask`` (4 videos), ``sim`` (the reference eval logits of the 5 x 4 block,
logit scale included) and ``loss`` (training loss on the first 4 pairs). The EMCL-inference golden
``emcl_inference_sim`` replaces the video-sentence term of ``sim / s`` by ``s' G v'^T`` (divided
by 4 like every term), where ``s'``, ``v'`` come from the inference-module ``Emcl`` (seed-42
``mu``, k 7, 10 stages, lamd 0.1, beta 4, float64) applied to the sentence and video vectors that
the reference ``_loose_similarity`` computes (captured at its ``allgather`` calls in train mode).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from make_golden_clip4clip import (
    INFERENCE,
    VIDEO_LENGTHS,
    emcl_classes,
    import_reference,
    init_distributed,
    make_inputs,
    reference_video,
    state_arrays,
    train_loss,
)
from make_golden_clip4clip import build_reference as build_family_model

XCLIP_COMMIT = "6b5344f44537d758acb82d115b8484f7430f9fb0"
EMCL_COMMIT = "3af17942e8195c563e2f47af68be521100e5935f"
MATRICES = (
    "global_mat_weight",
    "word_logit_weight",
    "frame_logit_weight",
    "local_mat_weight",
    "frame_mat_weight",
    "word_mat_weight",
    "frame_mat_weight2",
    "word_mat_weight2",
)


@torch.no_grad()
def perturb_matrices(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Identity plus noise on the 1/64 grid for every X-CLIP matrix."""
    for name in MATRICES:
        param = getattr(model, name)
        noise = 0.15 * torch.randn(param.shape, generator=generator)
        param.copy_(torch.eye(param.shape[0]) + torch.round(noise * 64) / 64)


@torch.no_grad()
def reference_globals(model, root: Path, text, words, frames, inputs):
    """The sentence and video vectors of the reference ``_loose_similarity`` (train mode)."""
    modeling = import_reference(root, "modeling_xclip")
    captured: list[torch.Tensor] = []
    original = modeling.allgather

    def probe(tensor, task_config):
        captured.append(tensor)
        return original(tensor, task_config)

    modeling.allgather = probe
    model.train()
    model.get_similarity_logits(
        text, words, frames, inputs["mask"], inputs["video_mask"], shaped=True, loose_type=True
    )
    model.eval()
    modeling.allgather = original
    video, _frames, sentence, _words = captured
    return sentence.double(), video.double()


@torch.no_grad()
def emcl_golden(model, args, text, words, frames, inputs, sim) -> dict[str, np.ndarray]:
    """``sim / s`` with the video-sentence term recomputed from EM-mixed vectors."""
    inference_cls, _ = emcl_classes(args.emcl)
    sentence, video = reference_globals(model, args.xclip, text, words, frames, inputs)
    torch.manual_seed(42)
    em = inference_cls(**INFERENCE)
    em.mu = em.mu.double()
    mixed = em(torch.cat((video, sentence)), if_train=False)
    em_video, em_sentence = mixed[: len(video)], mixed[len(video) :]
    weight = model.global_mat_weight.double()
    before = sentence @ weight @ video.t()
    after = em_sentence @ weight @ em_video.t()
    scale = model.clip.logit_scale.exp().double()
    return {
        "emcl_inference_mu": em.mu.numpy(),
        "emcl_inference_sim": (sim.double() / scale + (after - before) / 4).numpy(),
    }


def main() -> None:
    """Parse the reference paths and write the fixture."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xclip", type=Path, required=True, help="X-CLIP export")
    parser.add_argument("--emcl", type=Path, required=True, help="EMCL export (CPU shim applied)")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures"))
    args = parser.parse_args()
    args.xclip, args.emcl = args.xclip.resolve(), args.emcl.resolve()
    init_distributed()
    model = build_family_model(args.xclip, "modeling_xclip", "XCLIP", "seqTransf", seed=10)
    perturb_matrices(model, torch.Generator().manual_seed(11))
    inputs = make_inputs(seed=110)
    model.eval()
    with torch.no_grad():
        text, words = model.get_sequence_output(
            inputs["ids"], torch.zeros_like(inputs["ids"]), inputs["mask"]
        )
        frames = model.get_visual_output(reference_video(inputs["pixels"]), inputs["video_mask"])
        sim = model.get_similarity_logits(
            text, words, frames, inputs["mask"], inputs["video_mask"], loose_type=True
        )[0]
    arrays = state_arrays(model)
    arrays.update({k: v.numpy() for k, v in inputs.items()})
    arrays["pixels"] = inputs["pixels"].half().numpy()  # exact: a 1/8 grid
    arrays.update(sim=sim.numpy(), loss=train_loss(model, inputs, len(VIDEO_LENGTHS)).numpy())
    arrays.update(emcl_golden(model, args, text, words, frames, inputs, sim))
    arrays["reference"] = np.array(
        f"github:xuguohai/X-CLIP@{XCLIP_COMMIT} modules/modeling_xclip.py XCLIP (seqTransf); "
        f"EMCL: github:jpthu17/EMCL@{EMCL_COMMIT}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "xclip_seqTransf.npz"
    np.savez_compressed(path, **arrays)
    print(f"{path}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
