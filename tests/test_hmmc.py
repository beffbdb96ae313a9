"""HMMC (baselines/hmmc.py) against golden vectors of cheetah003/HMMC
(tools/make_golden_hmmc.py): the reference fine-tuning checkpoint loads through our adapter, and
our scores, losses, EMCL plug-in and momentum-contrast queue losses match the reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml
from conftest import FIXTURES, REPO_ROOT
from transformers import CLIPModel

from baselines.hmmc import (
    HMMC,
    frame_alignment_loss,
    frame_text_queue_loss,
    momentum_update,
    queue_contrastive_loss,
)
from baselines.hmmc_checkpoint import load_reference_checkpoint
from harness.config import ConfigError
from harness.encoder import VideoTextEncoder, clip_config_from_openai

GOLDEN = np.load(FIXTURES / "hmmc_golden.npz")
EMCL_GOLDEN = np.load(FIXTURES / "hmmc_emcl.npz")
MOMENTUM = {
    k: torch.from_numpy(v)
    for k, v in np.load(FIXTURES / "hmmc_momentum.npz").items()
    if k != "reference"
}
YAML = yaml.safe_load((REPO_ROOT / "baselines/configs/retrieval/hmmc.yaml").read_text())
FRAMES = GOLDEN["pixels"].shape[1]
QUEUE_NAMES = {
    "queue_v_cross_ng": "queue_video",
    "queue_title_cross_ng": "queue_text",
    "queue_frame_cross_ng": "queue_frame",
    "queue_frame_proj_ng": "queue_frame_proj",
    "queue_ptr": "queue_ptr",
}


def checkpoint() -> dict[str, torch.Tensor]:
    """The reference fine-tuning state dict (no logit_scale, as HMMC saves it)."""
    return {
        k.removeprefix("sd/"): torch.from_numpy(GOLDEN[k]).float()
        for k in GOLDEN.files
        if k.startswith("sd/")
    }


def openai_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """METHODS §7.3: ``text_encoder.X`` -> ``X``, ``visual_encoder.visual.X`` -> ``visual.X``."""
    out = {k.removeprefix("text_encoder."): v for k, v in sd.items() if k.startswith("text_")}
    out.update({k.removeprefix("visual_encoder."): v for k, v in sd.items() if ".visual." in k})
    return out


def config(max_frames: int = FRAMES, **method) -> dict:
    defaults = copy.deepcopy(YAML["method"])
    return {
        "method": {**defaults, "temporal_layers": 2, "temporal_heads": 2, **method},
        "train": {
            "gather_grad": YAML["train"]["gather_grad"],
            "micro_batch": None,
            "reference_world_size": None,
        },
        "eval": {"block_size": 32},
        "data": {"max_frames": max_frames},
    }


def encoder() -> VideoTextEncoder:
    return VideoTextEncoder(
        CLIPModel(clip_config_from_openai(openai_layout(checkpoint()), head_dim=16))
    )


def build(sd: dict | None = None, max_frames: int = FRAMES, **method) -> HMMC:
    model = HMMC(encoder(), config(max_frames, **method))
    load_reference_checkpoint(model, checkpoint() if sd is None else sd)
    return model


def batch() -> dict[str, torch.Tensor]:
    pixels = torch.from_numpy(GOLDEN["pixels"]).float()
    return {
        "ids": torch.from_numpy(GOLDEN["ids"]),
        "mask": torch.from_numpy(GOLDEN["mask"]),
        "pixels": pixels,
        "video_mask": torch.ones(pixels.shape[:2], dtype=torch.long),
    }


def scores(model: HMMC) -> torch.Tensor:
    b = batch()
    model.eval()
    with torch.no_grad():
        return model.score(
            model.encode_text(b["ids"], b["mask"]), model.encode_video(b["pixels"], b["video_mask"])
        )


@pytest.mark.parametrize("top", [2, 3])
def test_similarity_matches_reference_up_to_the_scale(top: int) -> None:
    model = build(top_frames=top)
    assert model.eval_block is None  # pairwise scores: blocks do not matter
    sim = scores(model) * model.scale
    np.testing.assert_allclose(sim.numpy(), GOLDEN[f"sim_top{top}"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(("use_frame_fea", "key"), [(True, "loss"), (False, "loss_no_frames")])
def test_training_loss_matches_reference(use_frame_fea: bool, key: str) -> None:
    model = build(use_frame_fea=use_frame_fea).train()
    loss = model(batch())
    np.testing.assert_allclose(loss.item(), GOLDEN[key], rtol=1e-5, atol=1e-5)


def test_video_mask_is_ignored_and_scale_is_constant() -> None:
    model = build()
    b = batch()
    with torch.no_grad():
        full = model.encode_video(b["pixels"], b["video_mask"])
        masked = model.encode_video(b["pixels"], torch.zeros_like(b["video_mask"]))
    torch.testing.assert_close(full, masked)
    assert model.logit_scale.item() == 100.0
    assert not model.encoder.logit_scale.requires_grad
    assert model.gather_grad == "sum"


def test_temporal_module_has_pytorch_default_init_not_clip() -> None:
    model = HMMC(encoder(), config(temporal_heads=2))
    table = model.temporal.position_embeddings.weight
    assert table.shape == (48, 32)
    assert 0.7 < table.std().item() < 1.3  # nn.Embedding's N(0, 1)
    layer = model.temporal.layers[0]
    bound = (6.0 / (4 * 32)) ** 0.5  # Xavier-uniform over the packed (3W, W) in_proj
    assert layer.self_attn.q_proj.weight.abs().max() <= bound
    assert layer.self_attn.q_proj.weight.abs().max() > 0.8 * bound
    assert torch.count_nonzero(layer.self_attn.out_proj.bias) == 0
    text_layer = model.encoder.clip.text_model.encoder.layers[0]
    assert not torch.equal(layer.mlp.fc1.weight, text_layer.mlp.fc1.weight)


def test_emcl_inference_matches_reference_emcl_on_hmmc_features() -> None:
    model = build(emcl="inference").double().eval()
    assert model.eval_block == 32
    model.global_emcl.em.mu = torch.from_numpy(EMCL_GOLDEN["mu"])
    text = {"sentence": torch.from_numpy(EMCL_GOLDEN["query"])}
    video = {k: torch.from_numpy(EMCL_GOLDEN[k]) for k in ("video", "frames")}
    with torch.no_grad():
        sim = model.score(text, video)
    np.testing.assert_allclose(sim.numpy(), EMCL_GOLDEN["sim"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("emcl", ["off", "joint"])
def test_training_step_backpropagates(emcl: str) -> None:
    model = build(emcl=emcl).train()
    loss = model(batch())
    assert torch.isfinite(loss)
    loss.backward()
    for module in (model.encoder.clip.vision_model, model.temporal):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


def test_queue_losses_match_reference() -> None:
    m, t = MOMENTUM, float(MOMENTUM["temperature"])
    vtm = queue_contrastive_loss(m["video"], m["text_k"], m["queue_title_cross_ng"], t)
    vtm = vtm + queue_contrastive_loss(m["text"], m["video_k"], m["queue_v_cross_ng"], t)
    ftm = frame_text_queue_loss(
        m["frames"],
        m["frames_k"],
        m["queue_frame_cross_ng"],
        m["text"],
        m["text_k"],
        m["queue_title_cross_ng"],
        t,
    )
    fam = frame_alignment_loss(m["predicted"], m["projected_k"], m["queue_frame_proj_ng"], t)
    for ours, key in ((vtm, "vtm"), (ftm, "ftm"), (fam, "fam")):
        np.testing.assert_allclose(ours.item(), m[key].item(), rtol=0, atol=1e-12)


def momentum_model(queue: int, max_frames: int) -> HMMC:
    return build(
        max_frames=max_frames,
        momentum_contrast=True,
        contrast_num_negative=queue,
        projector_hidden=64,
        top_frames=2,
    )


def test_enqueue_matches_reference_dequeue_and_enqueue() -> None:
    m = MOMENTUM
    model = momentum_model(queue=m["queue_v_cross_ng"].shape[1], max_frames=m["frames"].shape[1])
    model = model.double()
    for theirs, ours in QUEUE_NAMES.items():
        getattr(model, ours).copy_(m[theirs])
    for step, suffix in ((1, ""), (2, "2")):
        keys = ("video_k", "text_k", "frames_k", "projected_k")
        model._enqueue(*(m[k + suffix] for k in keys))
        for theirs, ours in QUEUE_NAMES.items():
            torch.testing.assert_close(getattr(model, ours), m[f"after{step}__{theirs}"])


def test_momentum_contrast_training_step() -> None:
    model = momentum_model(queue=8, max_frames=FRAMES).train()
    online = dict(model.encoder.named_parameters())
    with torch.no_grad():  # move the momentum copy away from the online weights
        for param in model.encoder_k.parameters():
            param.add_(0.01)
    before = {k: v.clone() for k, v in model.encoder_k.named_parameters()}
    loss = model(batch())
    assert torch.isfinite(loss)
    loss.backward()
    assert model.v_predictor[0].weight.grad is not None
    assert all(p.grad is None for p in model.encoder_k.parameters())
    for name, param in model.encoder_k.named_parameters():
        expected = 0.99 * before[name] + 0.01 * online[name].detach()
        torch.testing.assert_close(param, expected)
    assert int(model.queue_ptr) == 4
    b = batch()
    with torch.no_grad():
        text_k = model.encoder_k.encode_text(b["ids"], b["mask"]).sentence
    torch.testing.assert_close(model.queue_text[:, :4], torch.nn.functional.normalize(text_k).t())


def test_momentum_update_is_the_exponential_average() -> None:
    online, key = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = key.weight.detach().clone()
    momentum_update([(online, key)], 0.9)
    torch.testing.assert_close(key.weight, 0.9 * before + 0.1 * online.weight.detach())


def reference_mlp_keys(prefix: str, mlp: torch.nn.Sequential) -> dict[str, torch.Tensor]:
    """Our projector's weights under HMMC's MLP keys (``linear_hidden.{1,2}``, ``linear_out``)."""
    names = {"0.": "linear_hidden.1.", "1.": "linear_hidden.2.", "3.": "linear_out."}
    return {f"{prefix}.{names[k[:2]]}{k[2:]}": v.clone() for k, v in mlp.state_dict().items()}


def pretraining_checkpoint(source: HMMC) -> dict[str, torch.Tensor]:
    """A pre-training layout (METHODS §7.1): fine-tuning keys plus momentum copies, projectors,
    the MLM head and the queues."""
    sd = checkpoint()
    sd.update({k.replace("_encoder.", "_encoder_k.", 1): v + 1.0 for k, v in checkpoint().items()})
    for name in ("v_projector", "v_projector_k", "v_predictor"):
        sd.update(reference_mlp_keys(name, getattr(source, name)))
    sd["t_projector.linear_out.weight"] = torch.zeros(2, 2)
    sd["cls.predictions.bias"] = torch.zeros(3)
    for theirs, ours in QUEUE_NAMES.items():
        sd[theirs] = getattr(source, ours).clone() + (1 if theirs == "queue_ptr" else 0)
    sd["queue_tag_cross_ng"] = torch.zeros(1)
    return sd


def test_pretraining_checkpoint_loads_momentum_branch_or_is_skipped() -> None:
    source = momentum_model(queue=8, max_frames=FRAMES)
    sd = pretraining_checkpoint(source)
    model = momentum_model(queue=8, max_frames=FRAMES)
    load_reference_checkpoint(model, sd)
    torch.testing.assert_close(scores(model), scores(build()))
    k_table = model.encoder_k.clip.text_model.embeddings.position_embedding.weight
    torch.testing.assert_close(k_table, sd["text_encoder_k.positional_embedding"])
    torch.testing.assert_close(model.v_predictor[0].weight, source.v_predictor[0].weight)
    assert int(model.queue_ptr) == 1
    plain = build(sd)  # a fine-tuning model skips the pre-training extras
    torch.testing.assert_close(scores(plain), scores(build()))
    with pytest.raises(ValueError, match="contrast_num_negative") as err:
        load_reference_checkpoint(momentum_model(queue=16, max_frames=FRAMES), sd)
    assert "\n" not in str(err.value)


def test_fine_tuning_checkpoint_restarts_momentum_copies_from_online_weights() -> None:
    model = momentum_model(queue=8, max_frames=FRAMES)
    for p, p_k in zip(model.encoder.parameters(), model.encoder_k.parameters(), strict=True):
        torch.testing.assert_close(p, p_k)


def test_unknown_checkpoint_key_raises_one_line() -> None:
    with pytest.raises(ValueError, match="decoder.weight") as err:
        build({**checkpoint(), "decoder.weight": torch.zeros(1)})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="use_temp"):
        build(use_temp=False)


@pytest.mark.parametrize(
    ("max_frames", "method", "match"),
    [
        (FRAMES, {"top_frames": FRAMES + 1}, "top_frames"),
        (49, {}, "max_frames"),
        (FRAMES, {"momentum_contrast": True, "emcl": "joint"}, "method.emcl"),
    ],
)
def test_bad_options_raise_one_line_config_errors(max_frames, method, match) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        HMMC(encoder(), config(max_frames, **method))
    assert "\n" not in str(err.value)
