"""Shared pieces of the golden-vector generators in tools/: a tiny random OpenAI CLIP built with
a reference repository's own ``module_clip``, tiny inputs, the reference EMCL inference module,
a ``timm`` stub for importing EMCL-Net, and fixture writing.

Tiny shapes: width 32 in both towers and every temporal module, 2 heads (head_dim 16), 2 layers,
16 px frames with 8 px patches, a 64-token vocabulary and 16 text positions. Weights are random
multiples of 1/64 (exact in float16, and compressible), so fixtures stay small.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WIDTH, HEADS, LAYERS = 32, 2, 2
IMAGE, PATCH = 16, 8
VOCAB, CONTEXT = 64, 16
SOT, EOT = VOCAB - 2, VOCAB - 1
HEAD_DIM = WIDTH // HEADS
LOGIT_SCALE = 4.60546875  # ln(100) to float16 precision: exp() = 100.035
EMCL_COMMIT = "3af17942e8195c563e2f47af68be521100e5935f"
EMCL_INFERENCE = Path("video_retrieval/As_an_inference_module/modules/modeling.py")
QUANTUM = 64.0


@torch.no_grad()
def randomize(module: nn.Module, generator: torch.Generator, prefix: str = "") -> None:
    """Random multiples of 1/64 in every parameter whose name starts with ``prefix`` (LayerNorm
    weights near 1, matrices scaled by fan-in, vectors by 0.2)."""
    for name, param in module.named_parameters():
        if not name.startswith(prefix):
            continue
        noise = torch.randn(param.shape, generator=generator)
        leaf = name.rsplit(".", 2)[-2] if "." in name else ""
        if leaf.startswith("ln") and name.endswith("weight"):
            value = 1.0 + 0.2 * noise
        elif param.dim() >= 2:
            value = noise * (param[0].numel() ** -0.5)
        else:
            value = 0.2 * noise
        param.copy_((value * QUANTUM).round().clamp(-127, 127) / QUANTUM)


def tiny_clip(module_clip: types.ModuleType) -> nn.Module:
    """A tiny ``CLIP`` of the given reference ``module_clip`` with 2-head towers.

    ``CLIP`` derives vision heads as width // 64: it is built with a 64-wide vision tower, which
    is then replaced by a tiny ``VisualTransformer``.
    """
    clip = module_clip.CLIP(WIDTH, IMAGE, LAYERS, 64, PATCH, CONTEXT, VOCAB, WIDTH, HEADS, LAYERS)
    clip.visual = module_clip.VisualTransformer(IMAGE, PATCH, WIDTH, LAYERS, HEADS, WIDTH)
    return clip


def tiny_openai_state(module_clip: types.ModuleType, generator: torch.Generator) -> dict:
    """Random OpenAI-keyed weights of a tiny CLIP (float32), logit_scale = ln(100)."""
    clip = tiny_clip(module_clip)
    randomize(clip, generator)
    sd = {k: v.clone() for k, v in clip.state_dict().items()}
    sd["logit_scale"] = torch.tensor(LOGIT_SCALE)
    return sd


def text_inputs(generator: torch.Generator, lengths: tuple[int, ...], max_words: int):
    """ids (B, L) ``[SOT, words..., EOT, 0...]`` and mask (B, L) for captions of ``lengths``."""
    ids = torch.zeros(len(lengths), max_words, dtype=torch.long)
    for row, n in enumerate(lengths):
        words = torch.randint(1, SOT, (n - 2,), generator=generator)
        ids[row, :n] = torch.cat([torch.tensor([SOT]), words, torch.tensor([EOT])])
    return ids, (ids != 0).long()


def video_inputs(generator: torch.Generator, lengths: tuple[int, ...], frames: int):
    """pixels (B, F, 3, IMAGE, IMAGE) (float16-exact values; padded slots all zero, as the
    reference loaders pad) and video_mask (B, F) for videos of ``lengths`` real frames."""
    pixels = torch.randn(len(lengths), frames, 3, IMAGE, IMAGE, generator=generator)
    mask = (torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]).long()
    pixels = pixels.half().float() * mask[:, :, None, None, None]
    return pixels, mask


@contextlib.contextmanager
def cuda_is_identity() -> Iterator[None]:
    """CPU shim: ``Tensor.cuda(...)`` returns the tensor itself while active."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def stub_timm_when_absent() -> None:
    """EMCL-Net imports ``timm`` only for a drop-path, inactive in eval mode: when timm is not
    installed, register empty ``timm`` modules whose drop-path raises if it is ever called."""
    if "timm" in sys.modules or importlib.util.find_spec("timm") is not None:
        return

    def drop_path(*_args, **_kwargs):
        raise RuntimeError("drop path runs in training only; golden runs are in eval mode")

    for name in ("timm", "timm.models", "timm.models.layers"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["timm.models.layers"].drop_path = drop_path


def reference_emcl(emcl_root: Path) -> type:
    """The ``Emcl`` class of jpthu17/EMCL's inference module, compiled from its source text
    (importing its module needs the CLIP2Video stack); call it under :func:`cuda_is_identity`."""
    path = emcl_root / EMCL_INFERENCE
    tree = ast.parse(path.read_text())
    defs = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Emcl"]
    if not defs:
        sys.exit(f"{path}: no class Emcl; is --emcl an export of jpthu17/EMCL?")
    namespace = {"torch": torch, "F": F, "math": __import__("math")}
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(path), "exec"), namespace)
    return namespace["Emcl"]


def inference_emcl_scores(
    emcl_cls: type, text: torch.Tensor, video: torch.Tensor, seed: int = 42
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference EMCL inference step (k 7, 10 stages, lamd 0.1, beta 4, ``if_train=False``) on
    ``[video; text]`` normalised globals (float64); returns ``t' v'^T`` and the ``mu`` used."""
    torch.manual_seed(seed)
    em = emcl_cls(k=7, stage_num=10, momentum=0.9, lamd=0.1, beta=4)
    em.mu = em.mu.double()
    with cuda_is_identity():
        mixed = em(torch.cat((video, text), dim=0), if_train=False)
    return mixed[video.shape[0] :] @ mixed[: video.shape[0]].t(), em.mu


def weight_arrays(sd: dict[str, torch.Tensor], prefix: str = "sd/") -> dict[str, np.ndarray]:
    """``prefix + key`` -> float16 array (exact for the 1/64 grid) for every floating tensor."""
    return {
        prefix + k: v.detach().half().numpy() if v.is_floating_point() else v.numpy()
        for k, v in sd.items()
    }


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed .npz and report its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"{path}: {len(arrays)} arrays, {path.stat().st_size // 1024} KiB")
