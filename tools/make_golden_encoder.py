"""Golden vectors for harness.encoder and harness.temporal, produced by running reference code.

    python tools/make_golden_encoder.py --openai-clip REF/CLIP --emcl-net REF/EMCL-Net

``--openai-clip``: an export of github:openai/CLIP (reads ``clip/model.py``); fixtures were made at
commit d05afc436d78f1c48dc0dbf8e5980a9d471f35f6. ``--emcl-net``: the folder holding the ``tvr``
package of github:jpthu17/EMCL ``video_retrieval/EMCL-Net``; commit
3af17942e8195c563e2f47af68be521100e5935f. The reference code is imported from those paths, never
copied. EMCL-Net imports ``timm`` only for a drop-path that is inactive in eval mode; when timm is
not installed a stub stands in for it.

Writes to ``--out`` (default tests/fixtures):
- encoder_openai_tiny.npz: a tiny OpenAI ViT CLIP (width 32, 2 layers, 2 heads per tower, 32 px
  images, patch 8, vocabulary 64, context 16) with random fp16-valued weights run in fp32:
  ``sd/<OpenAI key>`` (float16, plus the JIT archives' int attributes), ``images``, ``ids``,
  ``mask``, ``image_features``, ``image_tokens`` (ln_post + proj on every token), ``text_eot``,
  ``text_tokens`` (ln_final + text_projection on every position).
- temporal_seqtransf.npz / temporal_seqlstm.npz: EMCL-Net's ``agg_video_feat`` on random frames
  (B=3, F=6, width 32; seqTransf 4 heads, 2 layers, 16 positions) with a padded mask:
  ``sd/<checkpoint key>`` (float16 values), ``frames``, ``mask``, ``output``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden_tiny as tiny  # noqa: E402

OPENAI_COMMIT = "d05afc436d78f1c48dc0dbf8e5980a9d471f35f6"
EMCL_COMMIT = "3af17942e8195c563e2f47af68be521100e5935f"
JIT_INT_ATTRIBUTES = {"input_resolution": 32, "context_length": 16, "vocab_size": 64}


def import_openai_model(root: Path) -> types.ModuleType:
    """openai/CLIP's ``clip/model.py`` as a module (its package __init__ needs torchvision)."""
    spec = importlib.util.spec_from_file_location("openai_clip_model", root / "clip" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_emcl_modeling(root: Path) -> types.ModuleType:
    """EMCL-Net's ``tvr.models.modeling``, with a timm stub when timm is absent."""
    tiny.stub_timm_when_absent()
    sys.path.insert(0, str(root))
    import tvr.models.modeling as modeling

    return modeling


@torch.no_grad()
def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Random, fp16-representable values in every parameter (LayerNorm weights near 1), so that
    every weight and bias is exercised and the fixture can hold them as float16."""
    for name, param in model.named_parameters():
        leaf_module = name.rsplit(".", 2)[-2] if "." in name else ""
        noise = torch.randn(param.shape, generator=generator)
        if leaf_module.startswith("ln") and name.endswith("weight"):
            value = 1.0 + 0.2 * noise
        elif param.dim() >= 2:
            value = noise * (param[0].numel() ** -0.5)
        else:
            value = 0.2 * noise
        param.copy_(value.half().float())


def state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """``sd/<key>`` -> float16 array for every tensor of the state dict."""
    return {f"sd/{k}": v.detach().half().numpy() for k, v in model.state_dict().items()}


def openai_fixture(clip_root: Path) -> dict[str, np.ndarray]:
    """Tiny OpenAI CLIP: weights, inputs and the reference outputs."""
    ref = import_openai_model(clip_root)
    gen = torch.Generator().manual_seed(0)
    width, layers, heads, image, patch, vocab, context = 32, 2, 2, 32, 8, 64, 16
    # CLIP() derives vision heads as width // 64 (0 at width 32): build with a valid width, then
    # put in the reference VisionTransformer with the tiny shapes.
    model = ref.CLIP(width, image, layers, 64, patch, context, vocab, width, heads, layers)
    model.visual = ref.VisionTransformer(image, patch, width, layers, heads, output_dim=width)
    randomize(model, gen)
    model.eval()

    images = torch.randn(2, 3, image, image, generator=gen)
    sot, eot = vocab - 2, vocab - 1
    lengths = (context, 7, 3)  # full, mid, shortest (SOT word EOT)
    ids = torch.zeros(len(lengths), context, dtype=torch.long)
    for row, n in enumerate(lengths):
        words = torch.randint(1, sot, (n - 2,), generator=gen)
        ids[row, :n] = torch.cat([torch.tensor([sot]), words, torch.tensor([eot])])
    mask = (ids != 0).long()

    captured: dict[str, torch.Tensor] = {}
    model.visual.transformer.register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("visual", out.permute(1, 0, 2))
    )
    model.ln_final.register_forward_hook(lambda _m, _i, out: captured.__setitem__("text", out))
    with torch.no_grad():
        image_features = model.encode_image(images)
        text_eot = model.encode_text(ids)
        image_tokens = model.visual.ln_post(captured["visual"]) @ model.visual.proj
        text_tokens = captured["text"] @ model.text_projection
    assert torch.allclose(image_tokens[:, 0], image_features, atol=1e-6)

    arrays = state_arrays(model)
    arrays.update({f"sd/{k}": np.array(v, dtype=np.int64) for k, v in JIT_INT_ATTRIBUTES.items()})
    outputs = {
        "images": images,
        "ids": ids,
        "mask": mask,
        "image_features": image_features,
        "image_tokens": image_tokens,
        "text_eot": text_eot,
        "text_tokens": text_tokens,
    }
    arrays.update({k: v.numpy() for k, v in outputs.items()})
    arrays["reference"] = np.array(f"github:openai/CLIP@{OPENAI_COMMIT} clip/model.py")
    return arrays


def temporal_fixture(modeling: types.ModuleType, kind: str) -> dict[str, np.ndarray]:
    """EMCL-Net ``agg_video_feat`` for ``kind`` on random frames; weights, inputs, output."""
    gen = torch.Generator().manual_seed(1 if kind == "seqTransf" else 2)
    width, heads, layers, frames_n, positions = 32, 4, 2, 6, 16
    holder = nn.Module()
    holder.frame_position_embeddings = nn.Embedding(positions, width)
    if kind == "seqTransf":
        holder.transformerClip = modeling.TransformerClip(width=width, layers=layers, heads=heads)
        lengths = (6, 4, 2)
    else:
        holder.lstm_visual = nn.LSTM(width, width, batch_first=True, num_layers=1)
        lengths = (5, 3, 2)  # every video shorter than F: exercises the rows past the batch max
    randomize(holder, gen)
    holder.eval()

    frames = torch.randn(len(lengths), frames_n, width, generator=gen)
    mask = (torch.arange(frames_n)[None, :] < torch.tensor(lengths)[:, None]).long()
    this = SimpleNamespace(training=False, **dict(holder.named_children()))
    with torch.no_grad():
        output = modeling.EMCL.agg_video_feat(this, frames, mask, kind)

    arrays = state_arrays(holder)
    arrays.update({"frames": frames.numpy(), "mask": mask.numpy(), "output": output.numpy()})
    arrays["reference"] = np.array(
        f"github:jpthu17/EMCL@{EMCL_COMMIT} video_retrieval/EMCL-Net/tvr/models/modeling.py "
        f"EMCL.agg_video_feat({kind!r})"
    )
    return arrays


def main() -> None:
    """Parse the reference paths and write the three fixtures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--openai-clip", type=Path, required=True, help="openai/CLIP export")
    parser.add_argument("--emcl-net", type=Path, required=True, help="EMCL-Net folder with tvr/")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures"))
    args = parser.parse_args()
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    modeling = import_emcl_modeling(args.emcl_net)
    fixtures = {
        "encoder_openai_tiny.npz": openai_fixture(args.openai_clip),
        "temporal_seqtransf.npz": temporal_fixture(modeling, "seqTransf"),
        "temporal_seqlstm.npz": temporal_fixture(modeling, "seqLSTM"),
    }
    for name, arrays in fixtures.items():
        np.savez_compressed(args.out / name, **arrays)
        print(f"{args.out / name}: {(args.out / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
