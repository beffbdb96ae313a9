"""Golden vectors for baselines.clip4clip, produced by running the reference CLIP4Clip model.

    python tools/make_golden_clip4clip.py --clip4clip REF/CLIP4Clip --emcl REF/EMCL [--out DIR]

``--clip4clip``: an export of github:ArrowLuo/CLIP4Clip at commit
508ffa3de39ba0563a03199c440ab602a72e9b6f (the folder holding ``modules/``), imported as is.
``--emcl``: an export of github:jpthu17/EMCL at commit 3af17942e8195c563e2f47af68be521100e5935f
with one CPU shim in ``video_retrieval/As_an_inference_module/modules/modeling.py``: in
``Emcl.__call__`` replace ``.cuda(embds.device)`` by ``.to(embds.device)``. Only the ``Emcl``
classes are compiled from that file and from ``As_a_joint_training_module/model/model.py`` (whose
``Emcl.__init__`` draws ``mu`` on CUDA, so ``mu`` is set directly).

How the tiny reference model is built (no change to the reference code):
- ``CLIP4Clip.__init__`` derives every head count as ``width // 64``; it is given the shapes of a
  64-wide CLIP, then its ``clip`` (a 32-wide CLIP with 2 heads per tower, built from the reference
  ``CLIP`` / ``VisualTransformer`` classes, fp32: ``convert_weights`` is not applied to it) and,
  for seqTransf, its ``transformerClip`` (32 wide, 2 heads) are replaced. The cross encoder of
  tightTransf comes from a ``CrossConfig`` with hidden size 32, 2 heads, 2 layers.
- Shapes: image 32, patch 16, vocabulary 64 (SOT 62, EOT 63: the EOT id is the largest, as the
  reference's ``argmax`` pooling needs), context 16, embedding 32, 2 layers everywhere;
  max_words 8, max_frames 5.
- Weights are random, quantised to multiples of 1/64 so that the fixtures compress (every value
  is exactly representable in float16, in which the weights are stored).
- ``boto3``/``botocore``/``requests`` (imported by the reference's download helper only) are
  stubbed when not installed. Training runs ``forward`` in train mode inside a one-process gloo
  group, so the reference ``AllGather`` and barrier run for real.

Each fixture ``clip4clip_<sim_header>.npz`` holds ``sd/<checkpoint key>`` (float16), the inputs
``ids``/``mask`` (5 texts, padded), ``pixels``/``video_mask`` (4 videos, padded frames are zero
images), ``sim`` (eval logits of the 5 x 4 block, as the reference returns them: loose types
include the logit scale) and ``loss`` (training loss on the first 4 pairs). tightTransf adds
``loss_dropout`` (dropout active, torch seed ``dropout_seed`` set just before the forward).
meanP also holds the EMCL plug-in goldens: the reference ``t_hat``/``v_hat`` (from the
reference ``_loose_similarity`` fed unit vectors as texts) through the inference-module ``Emcl``
(``emcl_inference_*``: seed-42 ``mu``, k 7, 10 stages, lamd 0.1, beta 4) and the joint-training
``Emcl`` with one modality (``emcl_joint_*``: eval scores, and a training loss with the ``mu``
it leaves), all in float64 on the reference's float32 features.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import math
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CLIP4CLIP_COMMIT = "508ffa3de39ba0563a03199c440ab602a72e9b6f"
EMCL_COMMIT = "3af17942e8195c563e2f47af68be521100e5935f"
INFERENCE_MODEL = Path("video_retrieval/As_an_inference_module/modules/modeling.py")
JOINT_MODEL = Path("video_retrieval/As_a_joint_training_module/model/model.py")

WIDTH, HEADS, LAYERS, IMAGE, PATCH, VOCAB, CONTEXT = 32, 2, 2, 32, 16, 64, 16
MAX_WORDS, MAX_FRAMES = 8, 5
TEXT_LENGTHS = (8, 5, 3, 8, 4)
VIDEO_LENGTHS = (5, 3, 1, 4)
LOGIT_SCALE = 3.0  # exact in float16, like every stored weight
DROPOUT_SEED = 7
INFERENCE = dict(k=7, stage_num=10, momentum=0.9, lamd=0.1, beta=4.0)
JOINT = dict(k=8, stage_num=5, momentum=0.9, lamd=1.0, beta=3.0)


def stub_download_modules() -> None:
    """Empty stand-ins for the download-only dependencies that are not installed."""
    for name in ("boto3", "botocore", "requests"):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)
            if name == "botocore":
                exceptions = types.ModuleType("botocore.exceptions")
                exceptions.ClientError = Exception
                sys.modules["botocore.exceptions"] = exceptions


def import_reference(root: Path, module: str) -> types.ModuleType:
    """``modules.<module>`` of a CLIP4Clip-family export at ``root``."""
    stub_download_modules()
    sys.path.insert(0, str(root))
    return __import__(f"modules.{module}", fromlist=["*"])


def compile_class(path: Path, name: str, namespace: dict) -> type:
    """Compile the top-level class ``name`` of ``path`` in ``namespace``."""
    tree = ast.parse(path.read_text())
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    if not found:
        sys.exit(f"{path}: no class {name}; is --emcl the EMCL export?")
    exec(compile(ast.Module(body=found, type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def emcl_classes(root: Path) -> tuple[type, type]:
    """The inference-module and joint-training ``Emcl`` classes (CPU shim checked)."""
    inference = root / INFERENCE_MODEL
    if ".cuda(embds.device)" in inference.read_text():
        sys.exit(f"{inference}: apply the CPU shim described in this script's doc")
    ns = {"torch": torch, "th": torch, "F": F, "nn": nn, "math": math}
    return compile_class(inference, "Emcl", dict(ns)), compile_class(root / JOINT_MODEL, "Emcl", ns)


def init_distributed() -> None:
    """A one-process gloo group, so the reference AllGather and barrier run."""
    if not torch.distributed.is_initialized():
        store = Path(tempfile.mkdtemp()) / "store"
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{store}", rank=0, world_size=1
        )


@torch.no_grad()
def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Random weights on a 1/64 grid: LayerNorm weights near 1, matrices scaled by fan-in."""
    for name, param in model.named_parameters():
        module = name.rsplit(".", 2)[-2] if name.count(".") else ""
        noise = torch.randn(param.shape, generator=generator)
        if module.startswith("ln") and name.endswith("weight"):
            value = 1.0 + 0.25 * noise
        elif param.dim() >= 2:
            value = noise * param[0].numel() ** -0.5
        else:
            value = 0.2 * noise
        param.copy_(torch.round(value * 64) / 64)
    model.clip.logit_scale.fill_(LOGIT_SCALE)


def tiny_clip(module_clip: types.ModuleType) -> nn.Module:
    """A fp32 reference CLIP with 32-wide, 2-head towers."""
    clip = module_clip.CLIP(
        WIDTH, IMAGE, LAYERS, 64, PATCH, CONTEXT, VOCAB, WIDTH, HEADS, LAYERS
    ).float()
    clip.visual = module_clip.VisualTransformer(IMAGE, PATCH, WIDTH, LAYERS, HEADS, WIDTH)
    return clip


def shape_state_dict(module_clip: types.ModuleType) -> dict[str, torch.Tensor]:
    """State dict of a 64-wide CLIP: the shapes the reference constructor reads (heads = 1)."""
    return module_clip.CLIP(
        WIDTH, IMAGE, LAYERS, 64, PATCH, CONTEXT, VOCAB, 64, 1, LAYERS
    ).state_dict()


def build_reference(root: Path, model_module: str, class_name: str, sim_header: str, seed: int):
    """The reference model class ``class_name`` of ``modules.<model_module>`` at tiny shapes."""
    modeling = import_reference(root, model_module)
    module_clip = import_reference(root, "module_clip")
    module_cross = import_reference(root, "module_cross")
    cross_config = module_cross.CrossConfig(
        512,
        hidden_size=WIDTH,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * WIDTH,
        max_position_embeddings=128,
    )
    task_config = SimpleNamespace(
        max_words=MAX_WORDS,
        max_frames=MAX_FRAMES,
        loose_type=sim_header != "tightTransf",
        sim_header=sim_header,
        linear_patch="2d",
        cross_num_hidden_layers=LAYERS,
        local_rank=0,
        rank=0,
        world_size=1,
    )
    model = getattr(modeling, class_name)(cross_config, shape_state_dict(module_clip), task_config)
    model.clip = tiny_clip(module_clip)
    if sim_header == "seqTransf":
        model.transformerClip = module_cross.Transformer(width=WIDTH, layers=LAYERS, heads=HEADS)
    randomize(model, torch.Generator().manual_seed(seed))
    return model


def make_inputs(seed: int) -> dict[str, torch.Tensor]:
    """5 padded texts (SOT, words, EOT) and 4 videos with zero images as padded frames."""
    gen = torch.Generator().manual_seed(seed)
    sot, eot = VOCAB - 2, VOCAB - 1
    ids = torch.zeros(len(TEXT_LENGTHS), MAX_WORDS, dtype=torch.long)
    for row, n in enumerate(TEXT_LENGTHS):
        words = torch.randint(1, sot, (n - 2,), generator=gen)
        ids[row, :n] = torch.cat([torch.tensor([sot]), words, torch.tensor([eot])])
    lengths = torch.tensor(VIDEO_LENGTHS)
    video_mask = (torch.arange(MAX_FRAMES)[None, :] < lengths[:, None]).long()
    pixels = torch.randn(len(VIDEO_LENGTHS), MAX_FRAMES, 3, IMAGE, IMAGE, generator=gen)
    pixels = torch.round(pixels * 8) / 8 * video_mask[:, :, None, None, None]
    return {"ids": ids, "mask": (ids != 0).long(), "pixels": pixels, "video_mask": video_mask}


def reference_video(pixels: torch.Tensor) -> torch.Tensor:
    """(B, F, 3, H, W) -> the loaders' (B, 1, F, 1, 3, H, W) layout."""
    return pixels[:, None, :, None]


def train_loss(model: nn.Module, inputs: dict[str, torch.Tensor], n: int) -> torch.Tensor:
    """The reference training forward on the first ``n`` pairs."""
    ids, mask = inputs["ids"][:n], inputs["mask"][:n]
    model.train()
    with torch.no_grad():
        loss = model(
            ids,
            torch.zeros_like(ids),
            mask,
            reference_video(inputs["pixels"][:n]),
            inputs["video_mask"][:n],
        )
    model.eval()
    return loss


def state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """``sd/<key>`` -> float16 array for every tensor of the state dict (exact: 1/64 grid)."""
    return {f"sd/{k}": v.detach().half().numpy() for k, v in model.state_dict().items()}


def eval_features(model: nn.Module, inputs: dict[str, torch.Tensor]):
    """Reference text (B, 1, D) EOT features and (B, F, D) frame features in eval mode."""
    model.eval()
    with torch.no_grad():
        text = model.get_sequence_output(
            inputs["ids"], torch.zeros_like(inputs["ids"]), inputs["mask"]
        )
        frames = model.get_visual_output(reference_video(inputs["pixels"]), inputs["video_mask"])
    return text, frames


@torch.no_grad()
def emcl_goldens(model, inputs, text, frames, emcl_root: Path) -> dict[str, np.ndarray]:
    """EMCL plug-in goldens on the reference's normalised global text/video vectors."""
    inference_cls, joint_cls = emcl_classes(emcl_root)
    mask = inputs["video_mask"]
    # Unit vectors as "texts": the reference loose similarity then returns s * v_hat^T.
    eye = torch.eye(WIDTH)[:, None, :]
    scaled = model.get_similarity_logits(eye, frames, inputs["mask"], mask, loose_type=True)[0]
    v_hat = (scaled / model.clip.logit_scale.exp()).t().double()
    t_hat = text.squeeze(1).double()
    t_hat = t_hat / t_hat.norm(dim=-1, keepdim=True)
    out = {"emcl_t_hat": t_hat.numpy(), "emcl_v_hat": v_hat.numpy()}

    torch.manual_seed(42)  # the inference module's Emcl is the first draw after seeding
    em = inference_cls(**INFERENCE)
    em.mu = em.mu.double()
    mixed = em(torch.cat((v_hat, t_hat)), if_train=False)
    v, t = mixed[: len(v_hat)], mixed[len(v_hat) :]
    out.update(emcl_inference_mu=em.mu.double().numpy(), emcl_inference_sim=(t @ v.t()).numpy())

    joint = joint_cls.__new__(joint_cls)
    for key, value in JOINT.items():
        setattr(joint, key, value)
    torch.manual_seed(0)
    mu = torch.empty(1, 1, JOINT["k"]).normal_(0, math.sqrt(2.0 / JOINT["k"])).double()
    joint.mu = mu / (1e-6 + mu.norm(dim=0, keepdim=True))
    out["emcl_joint_mu"] = joint.mu[0].numpy()
    mixed = joint(torch.cat((v_hat, t_hat))[None], if_train=False)[0]
    v, t = mixed[: len(v_hat)], mixed[len(v_hat) :]
    out["emcl_joint_sim"] = (t @ v.t()).numpy()
    # Training: the first 4 pairs, logits scaled by s, mu moved by momentum.
    n = len(VIDEO_LENGTHS)
    mixed = joint(torch.cat((v_hat[:n], t_hat[:n]))[None], if_train=True)[0]
    logits = model.clip.logit_scale.exp().double() * mixed[n:] @ mixed[:n].t()
    target = torch.arange(n)
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    out.update(emcl_joint_loss=loss.numpy(), emcl_joint_mu_after=joint.mu[0].numpy())
    return out


def fixture(args: argparse.Namespace, sim_header: str, seed: int) -> dict[str, np.ndarray]:
    """Weights, inputs and reference outputs for one sim_header."""
    model = build_reference(args.clip4clip, "modeling", "CLIP4Clip", sim_header, seed)
    inputs = make_inputs(seed + 100)
    text, frames = eval_features(model, inputs)
    with torch.no_grad():
        sim = model.get_similarity_logits(
            text, frames, inputs["mask"], inputs["video_mask"], loose_type=model.loose_type
        )[0]
    n = len(VIDEO_LENGTHS)
    arrays = state_arrays(model)
    arrays.update({k: v.numpy() for k, v in inputs.items()})
    arrays["pixels"] = inputs["pixels"].half().numpy()  # exact: a 1/8 grid
    arrays.update(sim=sim.numpy(), loss=train_loss(model, inputs, n).numpy())
    if sim_header == "tightTransf":
        model.cross.embeddings.dropout.p = 0.0
        arrays["loss"] = train_loss(model, inputs, n).numpy()
        model.cross.embeddings.dropout.p = 0.1
        torch.manual_seed(DROPOUT_SEED)
        arrays["loss_dropout"] = train_loss(model, inputs, n).numpy()
        arrays["dropout_seed"] = np.array(DROPOUT_SEED)
    if sim_header == "meanP":
        arrays.update(emcl_goldens(model, inputs, text, frames, args.emcl))
    arrays["reference"] = np.array(
        f"github:ArrowLuo/CLIP4Clip@{CLIP4CLIP_COMMIT} modules/modeling.py CLIP4Clip "
        f"(sim_header {sim_header}); EMCL: github:jpthu17/EMCL@{EMCL_COMMIT}"
    )
    return arrays


def main() -> None:
    """Parse the reference paths and write the four fixtures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip4clip", type=Path, required=True, help="CLIP4Clip export")
    parser.add_argument("--emcl", type=Path, required=True, help="EMCL export (CPU shim applied)")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures"))
    args = parser.parse_args()
    args.clip4clip, args.emcl = args.clip4clip.resolve(), args.emcl.resolve()
    init_distributed()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed, sim_header in enumerate(("meanP", "seqLSTM", "seqTransf", "tightTransf")):
        arrays = fixture(args, sim_header, seed)
        path = args.out / f"clip4clip_{sim_header}.npz"
        np.savez_compressed(path, **arrays)
        print(f"{path}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
