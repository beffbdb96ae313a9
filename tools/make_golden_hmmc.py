"""Golden vectors for baselines/hmmc.py from the reference HMMC code, with tiny random weights.

    python tools/make_golden_hmmc.py --hmmc REF/HMMC --emcl REF/EMCL [--out tests/fixtures]

``--hmmc``: an export of github:cheetah003/HMMC at commit
7389cf4232c0b530c3ff3b77699964923623ae57 (``modules.modeling`` is imported from it;
``_run_on_single_gpu`` is compiled from the source of ``main_task_retrieval.py``, whose import
needs CUDA/NCCL). ``--emcl``: an export of github:jpthu17/EMCL at commit
3af17942e8195c563e2f47af68be521100e5935f (its inference-module ``Emcl`` class is compiled from
source). Nothing is copied from them.

Substitutions made here, not in the reference files: ``diffdist`` (not installed) and
``modules.file_utils`` (downloads; needs boto3) are stubbed; ``dist_collect`` is the identity
(one process); ``module_cross.build_model`` builds a tiny CLIP with 2 heads from the tiny state
dict file (the reference derives width // 64 heads, 0 at width 32) and skips the fp16
``convert_weights`` (CPU, fp32); ``Tensor.cuda`` is the identity while the queue losses run.
The tiny ``BirdModel`` (2 temporal layers, 2 heads, 48 positions, ``--use_temp
--use_frame_fea``, top_frames 2) then gets random values in every parameter; its constant scale
is exp(ln 100 in float16) clamped to 100.

Writes:
- hmmc_golden.npz (float32): ``sd/<key>`` the reference fine-tuning checkpoint layout
  (``text_encoder.*``, ``visual_encoder.visual.*``, ``visual_encoder.temporal_transformer.*``,
  ``visual_encoder.frame_position_embeddings.weight``); inputs ``ids``, ``mask``, ``pixels``
  (4 videos x 4 frames, all real); ``sim_top2`` / ``sim_top3`` (evaluation scores with the scale
  s = 100, as ``eval_epoch`` sums ``sim_matrix + sim_matrix_frame``), ``loss`` (training,
  VTM + FTM) and ``loss_no_frames`` (without ``--use_frame_fea``).
- hmmc_emcl.npz (float64): reference features of that model (computed in float32, the only dtype
  the reference CLIP runs in, then cast: ``query``, ``video``, ``frames``), the inference-module
  EM ``mu`` (seed 42, k 7) and ``sim``: ``t' . v'`` of the EM-processed ``[norm(v); norm(q)]``
  plus the reference top-2 frame term divided by s.
- hmmc_momentum.npz (float64): the §5.3 queue losses of ``BirdPreTrainedModel`` on random
  features (batch 4, 3 frames, queues of 8): inputs ``video``, ``text``, ``video_k``,
  ``text_k``, ``frames``, ``frames_k``, ``predicted``, ``projected_k``, the ``queue_*``
  buffers before, ``vtm``, ``ftm``, ``fam``, and after two ``_dequeue_and_enqueue`` calls (keys
  ``*_k`` then ``*_k2``) the queues ``after1__*`` / ``after2__*`` and pointers.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden_tiny as tiny  # noqa: E402

HMMC_COMMIT = "7389cf4232c0b530c3ff3b77699964923623ae57"
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
TEXT_LENGTHS, MAX_WORDS = (10, 6, 4, 3), 10
FRAMES, TOP_FRAMES = 4, 2
QUEUE, MC_BATCH, MC_FRAMES = 8, 4, 3
QUEUES = (
    "queue_v_cross_ng",
    "queue_title_cross_ng",
    "queue_tag_cross_ng",
    "queue_frame_cross_ng",
    "queue_frame_proj_ng",
)


def import_reference(root: Path, checkpoint: Path) -> types.SimpleNamespace:
    """``modules.modeling`` / ``module_cross`` / ``module_clip`` with the stubs and tiny builder."""
    sys.path.insert(0, str(root))
    stub = types.ModuleType("modules.file_utils")
    stub.cached_path = lambda *args, **kwargs: None
    sys.modules["modules.file_utils"] = stub
    diffdist = types.ModuleType("diffdist")
    diffdist.functional = types.ModuleType("diffdist.functional")
    sys.modules.update({"diffdist": diffdist, "diffdist.functional": diffdist.functional})
    from modules import modeling, module_clip, module_cross

    def build_model(state_dict, local_rank):
        clip = tiny.tiny_clip(module_clip)
        clip.load_state_dict(state_dict)
        return clip

    module_cross.build_model = build_model
    modeling.dist_collect = lambda x: x.contiguous()
    cross_config = module_cross.CrossConfig(str(root / "modules/cross-base/cross_config.json"))
    cross_config.temporal_hidden_size = tiny.WIDTH
    cross_config.temporal_attention_heads = tiny.HEADS
    cross_config.temporal_hidden_layers = tiny.LAYERS
    cross_config.pretrained_clip_name = str(checkpoint)
    namespace = {"torch": torch, "np": np}
    source = root / "main_task_retrieval.py"
    tree = ast.parse(source.read_text())
    defs = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_run_on_single_gpu"
    ]
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(source), "exec"), namespace)
    return SimpleNamespace(
        modeling=modeling,
        module_clip=module_clip,
        cross_config=cross_config,
        run_on_single_gpu=namespace["_run_on_single_gpu"],
    )


def task_config(use_frame_fea: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        local_rank=0,
        rank=0,
        use_temp=True,
        use_frame_fea=use_frame_fea,
        language="english",
        top_frames=TOP_FRAMES,
        n_display=1000,
        logdir=None,
    )


def eval_scores(ref, model, query, video, frames, top: int) -> torch.Tensor:
    """``sim_matrix + sim_matrix_frame`` of ``eval_epoch`` for one block (scaled by s)."""
    model.top_frames = top
    sim, _, frame = ref.run_on_single_gpu(
        model, [query], [video], [torch.zeros_like(query)], [frames]
    )
    return torch.from_numpy(np.concatenate(sim) + np.concatenate(frame))


def golden(ref, gen) -> tuple[dict, dict]:
    """hmmc_golden arrays, and the features for the float64 EMCL case."""
    model = ref.modeling.BirdModel(ref.cross_config, task_config())
    tiny.randomize(model, gen)
    ids, mask = tiny.text_inputs(gen, TEXT_LENGTHS, MAX_WORDS)
    pixels, _ = tiny.video_inputs(gen, (FRAMES,) * 4, FRAMES)
    arrays = tiny.weight_arrays(model.state_dict())
    arrays.update({"ids": ids.numpy(), "mask": mask.numpy(), "pixels": pixels.half().numpy()})
    model.eval()
    with torch.no_grad():
        query = model.text_encoder(ids, mask)
        video, frames = model.visual_encoder(pixels, FRAMES)
        for top in (2, 3):
            arrays[f"sim_top{top}"] = eval_scores(ref, model, query, video, frames, top).numpy()
        model.train()
        for name, use_frames in (("loss", True), ("loss_no_frames", False)):
            model.task_config.use_frame_fea = use_frames
            arrays[name] = model(ids, mask, pixels, FRAMES, None, 1).numpy()
    arrays["reference"] = np.array(f"github:cheetah003/HMMC@{HMMC_COMMIT} modules/modeling.py")
    model.top_frames = TOP_FRAMES
    return arrays, {"model": model, "query": query, "video": video, "frames": frames}


def emcl_golden(ref, built: dict, emcl_cls) -> dict[str, np.ndarray]:
    """Reference HMMC features (float64) through the reference EMCL inference step."""
    model = built["model"].double().eval()
    query, video, frames = (built[k].double() for k in ("query", "video", "frames"))
    with torch.no_grad():
        scale = model.text_encoder.logit_scale.exp().clamp(max=100).double()
        frame_term = model.loose_similarity(query, frames).topk(TOP_FRAMES, dim=2)[0].mean(dim=2)
        em_scores, mu = tiny.inference_emcl_scores(
            emcl_cls, F.normalize(query, dim=-1), F.normalize(video, dim=-1)
        )
    return {
        "query": query.numpy(),
        "video": video.numpy(),
        "frames": frames.numpy(),
        "mu": mu.numpy(),
        "sim": (em_scores + frame_term / scale).numpy(),
        "reference": np.array(
            f"github:cheetah003/HMMC@{HMMC_COMMIT} features + "
            f"github:jpthu17/EMCL@{tiny.EMCL_COMMIT} {tiny.EMCL_INFERENCE} Emcl"
        ),
    }


def momentum_golden(ref, gen) -> dict[str, np.ndarray]:
    """``contrastive_loss`` / ``frame_cross_loss`` / ``frame_self_loss`` /
    ``_dequeue_and_enqueue`` of ``BirdPreTrainedModel`` on a holder with the queue buffers."""
    cls = ref.modeling.BirdPreTrainedModel
    d = tiny.WIDTH

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    holder = torch.nn.Module()
    holder.contrast_temperature = 0.07
    holder.contrast_num_negative = QUEUE
    for name in QUEUES:
        columns = QUEUE * MC_FRAMES if "frame" in name else QUEUE
        holder.register_buffer(name, F.normalize(rand(d, columns), dim=0))
    holder.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
    for method in ("contrastive_loss", "frame_cross_loss", "frame_self_loss"):
        setattr(holder, method, types.MethodType(getattr(cls, method), holder))
    b, f = MC_BATCH, MC_FRAMES
    x = {
        "video": rand(b, d),
        "text": rand(b, d),
        "video_k": rand(b, d),
        "text_k": rand(b, d),
        "tag_k": rand(b, d),
        "frames": rand(b, f, d),
        "frames_k": rand(b, f, d),
        "predicted": rand(b, f, d),
        "projected_k": rand(b, f, d),
    }
    x.update({f"{k}2": rand(*x[k].shape) for k in ("video_k", "text_k", "tag_k")})
    x.update({f"{k}2": rand(*x[k].shape) for k in ("frames_k", "projected_k")})
    out = {k: v.numpy() for k, v in x.items()}
    out.update({k: v.clone().numpy() for k, v in holder.named_buffers()})
    with tiny.cuda_is_identity():
        out["vtm"] = (
            holder.contrastive_loss(x["video"], x["text_k"], holder.queue_title_cross_ng)
            + holder.contrastive_loss(x["text"], x["video_k"], holder.queue_v_cross_ng)
        ).numpy()
        out["ftm"] = holder.frame_cross_loss(
            x["frames"],
            x["frames_k"],
            holder.queue_frame_cross_ng,
            x["text"],
            x["text_k"],
            holder.queue_title_cross_ng,
        ).numpy()
        out["fam"] = holder.frame_self_loss(
            x["predicted"], x["projected_k"], holder.queue_frame_proj_ng
        ).numpy()
    for step, suffix in ((1, ""), (2, "2")):
        keys = ("video_k", "tag_k", "text_k", "frames_k", "projected_k")
        cls._dequeue_and_enqueue(holder, *(x[k + suffix] for k in keys))
        out.update({f"after{step}__{k}": v.clone().numpy() for k, v in holder.named_buffers()})
    out["temperature"] = np.array(holder.contrast_temperature)
    out["reference"] = np.array(
        f"github:cheetah003/HMMC@{HMMC_COMMIT} modules/modeling.py BirdPreTrainedModel"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hmmc", type=Path, required=True, help="cheetah003/HMMC export")
    parser.add_argument("--emcl", type=Path, required=True, help="jpthu17/EMCL export")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(5)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "tiny-clip.pt"
        ref = import_reference(args.hmmc.resolve(), checkpoint)
        torch.save(tiny.tiny_openai_state(ref.module_clip, gen), checkpoint)
        arrays, built = golden(ref, gen)
    tiny.save(args.out / "hmmc_golden.npz", arrays)
    tiny.save(args.out / "hmmc_emcl.npz", emcl_golden(ref, built, tiny.reference_emcl(args.emcl)))
    tiny.save(args.out / "hmmc_momentum.npz", momentum_golden(ref, gen))


if __name__ == "__main__":
    main()
