"""Golden vectors for baselines/drl.py from the reference DRL code, with tiny random weights.

    python tools/make_golden_drl.py --drl REF/DRL --emcl REF/EMCL [--out tests/fixtures]

``--drl``: an export of github:foolwood/DRL at commit 475f96ce612b121b7f16937d384f2d1b7411fa80
(``tvr.models.modeling`` is imported from it). ``--emcl``: an export of github:jpthu17/EMCL at
commit 3af17942e8195c563e2f47af68be521100e5935f (its inference-module ``Emcl`` class is compiled
from source). Nothing is copied from them.

The reference ``DRL.__init__`` runs with four substitutions made here, not in the reference
files: its CLIP checkpoint path points at a tiny random OpenAI state dict (tools/golden_tiny.py;
it is read through the reference's ``torch.load`` fallback); ``CLIP`` and ``TransformerClip``
are built with 2 heads (the reference derives width // 64 heads, 0 at width 32) and 2 temporal
layers (the reference hard-codes 4); xti's ``CrossModel`` gets 2 heads (the reference hard-codes
8) and 2 layers (through the reference's own ``cross_num_hidden_layers`` attribute). Without CUDA
the reference keeps fp32 and skips its all-gathers. Every parameter is then overwritten with
random values. Runs on CPU.

Writes:
- drl_golden.npz (float32): ``sd/<key>`` the shared reference checkpoint (``clip.*``,
  ``frame_position_embeddings.weight``, ``transformerClip.*``), ``head<arch>/<key>`` the WTI
  weight heads of wti_arch 1/2/3 (the meanP case uses the arch-2 heads); inputs ``ids``,
  ``mask``, ``pixels``, ``video_mask``; per case
  (``case_names``; ``<case>__interaction``, ``__wti_arch``, ``__agg``) ``<case>__sim`` (eval
  scores) and ``<case>__loss_cdcr<c>`` / ``<case>__cdcr<c>`` (training loss and CDCR term, with
  cdcr_alpha1 0.11, cdcr_alpha2 0.06, cdcr_lambda 1.0 so the CDCR term weighs in).
- drl_emcl.npz (float64): reference features of the same model (computed in float32, the only
  dtype the reference CLIP runs in, then cast: ``text_tokens``, ``mask``, ``video_frames``,
  ``video_mask``), the inference-module EM ``mu`` (seed 42, k 7) and
  the EMCL-inference scores ``dp__sim`` (``t' . v'`` of the reference dp vectors) and
  ``wti2__sim`` (``(S_wti + t' . v') / 2``), as baselines/drl.py defines the plug-in.
- drl_xti.npz (float32; the checkpoint and inputs of drl_golden.npz plus): ``xti/<key>`` the
  cross encoder (``cross.*``, ``similarity_dense.*``); ``sim`` (eval scores, agg seqTransf);
  ``loss`` (training loss, cross dropout off); ``loss_dropout`` (dropout 0.1, torch seed
  ``dropout_seed`` set just before the forward); ``loss_rank1of2`` (dropout off: the loss of
  process 1 of 2, whose local batch is rows 2-3; the reference's ``allgather2`` is replaced by a
  function returning the whole batch's features and ``torch.cuda.is_available`` by True, so its
  multi-GPU branch runs, slicing and rolling by ``local_rank`` 1).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden_tiny as tiny  # noqa: E402

DRL_COMMIT = "475f96ce612b121b7f16937d384f2d1b7411fa80"
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
ALPHA1, ALPHA2, LAMBDA = 0.11, 0.06, 1.0
TEXT_LENGTHS, MAX_WORDS = (10, 7, 4, 3), 10
VIDEO_LENGTHS, FRAMES = (5, 3, 4, 2), 5
# name: (interaction, wti_arch, agg_module, CDCR variants)
CASES = {
    "dp": ("dp", 2, "seqTransf", (0, 1)),
    "ti": ("ti", 2, "seqTransf", (0, 2)),
    "wti1": ("wti", 1, "seqTransf", (3,)),
    "wti2": ("wti", 2, "seqTransf", (0, 2, 3)),
    "wti3": ("wti", 3, "seqTransf", (3,)),
    "wti2_meanp": ("wti", 2, "None", (3,)),
}
HEADS = ("text_weight_fc.", "video_weight_fc.")
CROSS = ("cross.", "similarity_dense.")
DROPOUT_SEED = 7


def import_reference(drl_root: Path, checkpoint: Path):
    """``tvr.models.modeling`` with the tiny CLIP file and the 2-head / 2-layer builders."""
    sys.path.insert(0, str(drl_root))
    import tvr.models.modeling as modeling
    from tvr.models import module_clip, module_cross

    modeling._PT_NAME["ViT-B/32"] = str(checkpoint)  # os.path.join keeps an absolute path

    def clip(*_shapes):
        return tiny.tiny_clip(module_clip)

    def transformer(width, layers, heads):
        return module_cross.Transformer(width=width, layers=tiny.LAYERS, heads=tiny.HEADS)

    def cross_model(cross_config):
        cross_config.num_attention_heads = tiny.HEADS
        return module_cross.CrossModel(cross_config)

    modeling.CLIP = clip
    modeling.TransformerClip = transformer
    modeling.CrossModel = cross_model
    return modeling, module_clip


def build(modeling, interaction: str, arch: int, agg: str, init: dict | None, gen):
    """A reference DRL: weights from ``init`` where it has them, random elsewhere."""
    config = SimpleNamespace(
        interaction=interaction,
        wti_arch=arch,
        agg_module=agg,
        base_encoder="ViT-B/32",
        cdcr=0,
        cdcr_alpha1=ALPHA1,
        cdcr_alpha2=ALPHA2,
        cdcr_lambda=LAMBDA,
        cross_num_hidden_layers=tiny.LAYERS,
        local_rank=0,
    )
    model = modeling.DRL(config)
    if init is None:
        tiny.randomize(model, gen)
        model.clip.logit_scale.data.fill_(tiny.LOGIT_SCALE)
        return model
    missing, unexpected = model.load_state_dict(init, strict=False)
    assert all(k.startswith(HEADS + CROSS) for k in missing), missing
    assert agg == "None" or not unexpected, unexpected
    for prefix in HEADS + CROSS:
        if any(k.startswith(prefix) for k in missing):
            tiny.randomize(model, gen, prefix)
    return model


def run_case(model, inputs: dict, cdcr_variants) -> dict[str, np.ndarray]:
    """Eval scores and, per CDCR variant, the training loss and CDCR term."""
    ids, mask, pixels, vmask = inputs["ids"], inputs["mask"], inputs["pixels"], inputs["video_mask"]
    out = {}
    model.eval()
    with torch.no_grad():
        text = model.get_text_feat(ids, mask)
        video = model.get_video_feat(pixels, vmask)
        out["sim"] = model.get_similarity_logits(text, video, mask, vmask)[0].numpy()
    model.train()
    for c in cdcr_variants:
        model.config.cdcr = c
        torch.manual_seed(0)
        with torch.no_grad():
            loss = model(ids, mask, pixels, vmask)
            cdcr = model.get_similarity_logits(text, video, mask, vmask, shaped=True)[2]
        out[f"loss_cdcr{c}"] = loss.numpy()
        out[f"cdcr{c}"] = np.asarray(float(cdcr), dtype=np.float32)
    return out


def golden(modeling, module_clip, gen) -> tuple[dict, dict]:
    """drl_golden arrays and the models built (for the float64 EMCL case)."""
    ids, mask = tiny.text_inputs(gen, TEXT_LENGTHS, MAX_WORDS)
    pixels, vmask = tiny.video_inputs(gen, VIDEO_LENGTHS, FRAMES)
    inputs = {"ids": ids, "mask": mask, "pixels": pixels, "video_mask": vmask}
    arrays = {k: v.numpy() for k, v in inputs.items()}
    arrays["pixels"] = pixels.half().numpy()
    models, shared = {}, None
    for name, (interaction, arch, agg, variants) in CASES.items():
        # meanP reuses the seqTransf wti2 heads (its temporal weights are simply unused).
        init = models["wti2"].state_dict() if agg == "None" else shared
        model = build(modeling, interaction, arch, agg, init, gen)
        if shared is None:
            shared = {k: v for k, v in model.state_dict().items() if not k.startswith(HEADS)}
            arrays.update(tiny.weight_arrays(shared))
        if interaction == "wti" and agg == "seqTransf":
            heads = {k: v for k, v in model.state_dict().items() if k.startswith(HEADS)}
            arrays.update(tiny.weight_arrays(heads, prefix=f"head{arch}/"))
        arrays.update({f"{name}__{k}": v for k, v in run_case(model, inputs, variants).items()})
        arrays[f"{name}__interaction"] = np.array(interaction)
        arrays[f"{name}__wti_arch"] = np.array(arch)
        arrays[f"{name}__agg"] = np.array("meanP" if agg == "None" else agg)
        models[name] = model
    arrays["case_names"] = np.array(list(CASES))
    arrays["cdcr_params"] = np.array([ALPHA1, ALPHA2, LAMBDA])
    arrays["reference"] = np.array(f"github:foolwood/DRL@{DRL_COMMIT} tvr/models/modeling.py")
    return arrays, {"inputs": inputs, "models": models}


@contextlib.contextmanager
def emulated_rank(modeling, model, full: list[torch.Tensor], rank: int) -> Iterator[None]:
    """Run the reference's multi-GPU xti branch on CPU as process ``rank``: ``allgather2`` hands
    back ``full`` (its text, video and mask, in call order), ``barrier`` does nothing."""
    gathered = iter(full)
    patches = [
        (modeling, "allgather2", lambda tensor, config: next(gathered)),
        (torch.cuda, "is_available", lambda: True),
        (torch.distributed, "barrier", lambda: None),
        (model.config, "local_rank", rank),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def xti_golden(modeling, built: dict, gen) -> dict[str, np.ndarray]:
    """The xti case on the shared checkpoint and inputs, with a random cross encoder."""
    inputs = built["inputs"]
    ids, mask, pixels, vmask = inputs["ids"], inputs["mask"], inputs["pixels"], inputs["video_mask"]
    model = build(modeling, "xti", 2, "seqTransf", built["models"]["dp"].state_dict(), gen)
    cross = {k: v for k, v in model.state_dict().items() if k.startswith(CROSS)}
    arrays = tiny.weight_arrays(cross, prefix="xti/")
    dropout = model.cross.embeddings.dropout
    with torch.no_grad():
        model.eval()
        text = model.get_text_feat(ids, mask)
        video = model.get_video_feat(pixels, vmask)
        arrays["sim"] = model.get_similarity_logits(text, video, mask, vmask)[0].numpy()
        model.train()
        dropout.p = 0.0
        arrays["loss"] = model(ids, mask, pixels, vmask).numpy()
        dropout.p = 0.1
        torch.manual_seed(DROPOUT_SEED)
        arrays["loss_dropout"] = model(ids, mask, pixels, vmask).numpy()
        arrays["dropout_seed"] = np.array(DROPOUT_SEED)
        dropout.p = 0.0
        own = slice(2, 4)
        full = [model.get_text_sep_feat(text, mask), video, vmask]
        with emulated_rank(modeling, model, full, rank=1):
            t2v, v2t, _ = model.get_similarity_logits(
                text[own], video[own], mask[own], vmask[own], shaped=True
            )
        arrays["loss_rank1of2"] = ((model.loss_fct(t2v) + model.loss_fct(v2t)) / 2).numpy()
    arrays["reference"] = np.array(f"github:foolwood/DRL@{DRL_COMMIT} tvr/models/modeling.py")
    return arrays


def emcl_golden(built: dict, emcl_cls) -> dict[str, np.ndarray]:
    """Reference dp vectors / WTI scores in float64 through the reference EMCL inference step."""
    inputs = built["inputs"]
    model = built["models"]["wti2"].eval()
    mask, vmask = inputs["mask"], inputs["video_mask"]
    with torch.no_grad():
        # The reference CLIP runs in float32 only (its LayerNorm casts); the rest runs in float64.
        text = model.get_text_feat(inputs["ids"], mask).double()
        video = model.get_video_feat(inputs["pixels"], vmask).double()
        model.double()
        wti = model.get_similarity_logits(text, video, mask, vmask)[0]
        t = model.get_text_sep_feat(text, mask).squeeze(1)
        t = t / t.norm(dim=-1, keepdim=True)
        v = model.get_video_avg_feat(video / video.norm(dim=-1, keepdim=True), vmask)
        v = v / v.norm(dim=-1, keepdim=True)
        em_scores, mu = tiny.inference_emcl_scores(emcl_cls, t, v)
    return {
        "text_tokens": text.numpy(),
        "mask": mask.numpy(),
        "video_frames": video.numpy(),
        "video_mask": vmask.numpy(),
        "mu": mu.numpy(),
        "dp__sim": em_scores.numpy(),
        "wti2__sim": ((wti + em_scores) / 2).numpy(),
        "reference": np.array(
            f"github:foolwood/DRL@{DRL_COMMIT} features + github:jpthu17/EMCL@{tiny.EMCL_COMMIT} "
            f"{tiny.EMCL_INFERENCE} Emcl"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drl", type=Path, required=True, help="foolwood/DRL export")
    parser.add_argument("--emcl", type=Path, required=True, help="jpthu17/EMCL export")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(4)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "tiny-clip.pt"
        modeling, module_clip = import_reference(args.drl.resolve(), checkpoint)
        torch.save(tiny.tiny_openai_state(module_clip, gen), checkpoint)
        arrays, built = golden(modeling, module_clip, gen)
        xti = xti_golden(modeling, built, gen)
    tiny.save(args.out / "drl_golden.npz", arrays)
    tiny.save(args.out / "drl_xti.npz", xti)
    tiny.save(args.out / "drl_emcl.npz", emcl_golden(built, tiny.reference_emcl(args.emcl)))


if __name__ == "__main__":
    main()
