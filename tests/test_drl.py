"""DRL (baselines/drl.py) against golden vectors of foolwood/DRL (tools/make_golden_drl.py): the
reference checkpoint loads through our adapter into a tiny CLIP, and our scores and losses match
the reference for dp / ti / wti (arch 1-3), CDCR 0-3 and meanP, and for the cross-transformer
xti (scores, losses with and without dropout, one process's share of a two-process batch); plus
the EMCL plug-in."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml
from conftest import FIXTURES, REPO_ROOT
from transformers import CLIPModel

import baselines.drl
import harness.heads
from baselines.drl import DRL, cross_correlation, decorrelation_loss, load_reference_checkpoint
from harness.config import ConfigError
from harness.encoder import VideoTextEncoder, clip_config_from_openai

GOLDEN = np.load(FIXTURES / "drl_golden.npz")
EMCL_GOLDEN = np.load(FIXTURES / "drl_emcl.npz")
XTI = np.load(FIXTURES / "drl_xti.npz")
DRL_YAML = REPO_ROOT / "baselines/configs/retrieval/drl.yaml"
DEFAULTS = yaml.safe_load(DRL_YAML.read_text())["method"]
CASES = list(GOLDEN["case_names"])
ALPHA1, ALPHA2, LAMBDA = GOLDEN["cdcr_params"].tolist()
CLOSE = dict(rtol=1e-5, atol=1e-5)
HEADS = ("text_weight_fc.", "video_weight_fc.")
TEMPORAL = ("frame_position_embeddings.", "transformerClip.")


def checkpoint(arch: int | None = None, temporal: bool = True) -> dict[str, torch.Tensor]:
    """The reference state dict: shared weights plus the heads of ``arch`` (None: no heads)."""
    sd = {
        k.removeprefix("sd/"): torch.from_numpy(GOLDEN[k]).float()
        for k in GOLDEN.files
        if k.startswith("sd/")
    }
    if not temporal:
        sd = {k: v for k, v in sd.items() if not k.startswith(TEMPORAL)}
    if arch is not None:
        prefix = f"head{arch}/"
        sd.update(
            {
                k.removeprefix(prefix): torch.from_numpy(GOLDEN[k]).float()
                for k in GOLDEN.files
                if k.startswith(prefix)
            }
        )
    return sd


def config(**method) -> dict:
    return {
        "method": {**copy.deepcopy(DEFAULTS), "temporal_layers": 2, **method},
        "train": {"gather_grad": "local", "micro_batch": None, "reference_world_size": None},
        "eval": {"block_size": 32},
    }


def build(sd: dict[str, torch.Tensor], **method) -> DRL:
    """Our DRL with a tiny CLIP shaped like ``sd``, loaded through the adapter."""
    clip = CLIPModel(clip_config_from_openai(sd, prefix="clip.", head_dim=16))
    model = DRL(VideoTextEncoder(clip), config(**method))
    load_reference_checkpoint(model, sd)
    return model


def case_model(case: str, **method) -> DRL:
    interaction = str(GOLDEN[f"{case}__interaction"])
    arch = int(GOLDEN[f"{case}__wti_arch"])
    agg = str(GOLDEN[f"{case}__agg"])
    sd = checkpoint(arch if interaction == "wti" else None, temporal=agg != "meanP")
    return build(
        sd,
        interaction=interaction,
        wti_arch=arch,
        agg_module=agg,
        cdcr_alpha1=ALPHA1,
        cdcr_alpha2=ALPHA2,
        cdcr_lambda=LAMBDA,
        **method,
    )


def batch() -> dict[str, torch.Tensor]:
    return {
        "ids": torch.from_numpy(GOLDEN["ids"]),
        "mask": torch.from_numpy(GOLDEN["mask"]),
        "pixels": torch.from_numpy(GOLDEN["pixels"]).float(),
        "video_mask": torch.from_numpy(GOLDEN["video_mask"]),
    }


def scores(model: DRL) -> torch.Tensor:
    b = batch()
    model.eval()
    with torch.no_grad():
        return model.score(
            model.encode_text(b["ids"], b["mask"]), model.encode_video(b["pixels"], b["video_mask"])
        )


@pytest.mark.parametrize("case", CASES)
def test_similarity_matches_reference(case: str) -> None:
    sim = scores(case_model(case, cdcr=0))
    np.testing.assert_allclose(sim.numpy(), GOLDEN[f"{case}__sim"], **CLOSE)


LOSS_CASES = [
    (case, int(key.rsplit("cdcr", 1)[1]))
    for case in CASES
    for key in GOLDEN.files
    if key.startswith(f"{case}__loss_cdcr")
]


@pytest.mark.parametrize(("case", "cdcr"), LOSS_CASES)
def test_training_loss_matches_reference(case: str, cdcr: int) -> None:
    model = case_model(case, cdcr=cdcr).train()
    loss = model(batch())
    np.testing.assert_allclose(loss.item(), GOLDEN[f"{case}__loss_cdcr{cdcr}"], **CLOSE)


def test_uniform_weights_reduce_wti_to_ti() -> None:
    # METHODS §9 (iii): constant weight logits give uniform weights over the real tokens/frames.
    wti = case_model("wti2")
    with torch.no_grad():
        for head in (wti.text_weight_fc, wti.video_weight_fc):
            head[-1].weight.zero_()
    np.testing.assert_allclose(scores(wti).numpy(), GOLDEN["ti__sim"], **CLOSE)


def test_dp_is_cosine_of_eot_and_masked_frame_mean() -> None:
    model = case_model("dp").eval()
    b = batch()
    with torch.no_grad():
        tokens = model.encoder.encode_text(b["ids"], b["mask"]).words
        frames = model.encode_video(b["pixels"], b["video_mask"])["frames"]
    t = tokens[torch.arange(4), b["mask"].sum(-1) - 1]
    frames = frames / frames.norm(dim=-1, keepdim=True)
    lengths = b["video_mask"].sum(-1).tolist()
    v = torch.stack([f[:n].mean(0) for f, n in zip(frames, lengths, strict=True)])
    expected = torch.nn.functional.normalize(t, dim=-1) @ torch.nn.functional.normalize(v).t()
    torch.testing.assert_close(scores(model), expected, **CLOSE)


def test_constant_channels_standardise_to_zero_instead_of_nan() -> None:
    # e.g. every frame's best token is the start token, identical in every caption.
    x = torch.randn(6, 4, dtype=torch.float64)
    x[:, 1] = 0.3
    x.requires_grad_()
    y = torch.randn(6, 4, dtype=torch.float64)
    c = cross_correlation(x, y)
    assert torch.count_nonzero(c[1]) == 0
    keep = [0, 2, 3]
    z = lambda a: (a - a.mean(0)) / a.std(0)  # noqa: E731  (the reference formula)
    torch.testing.assert_close(c[keep], (z(x[:, keep]).t() @ z(y)) / 6)
    decorrelation_loss(c, 0.11, 0.06).backward()
    assert torch.isfinite(x.grad).all()


def double_model(case: str, **method) -> DRL:
    model = case_model(case, **method).double().eval()
    model.global_emcl.em.mu = torch.from_numpy(EMCL_GOLDEN["mu"])
    return model


def emcl_features() -> tuple[dict, dict]:
    e = {k: torch.from_numpy(EMCL_GOLDEN[k]) for k in EMCL_GOLDEN.files if k != "reference"}
    text = {"tokens": e["text_tokens"], "mask": e["mask"]}
    return text, {"frames": e["video_frames"], "video_mask": e["video_mask"]}


@pytest.mark.parametrize("case", ["dp", "wti2"])
def test_emcl_inference_matches_reference_emcl_on_drl_features(case: str) -> None:
    model = double_model(case, emcl="inference")
    assert model.eval_block == 32
    with torch.no_grad():
        sim = model.score(*emcl_features())
    np.testing.assert_allclose(sim.numpy(), EMCL_GOLDEN[f"{case}__sim"], rtol=0, atol=1e-10)


def test_emcl_inference_with_beta_zero_keeps_dp_and_averages_wti() -> None:
    text, video = emcl_features()
    for case, blend in (("dp", 1.0), ("wti2", 0.5)):
        plain = double_model(case, emcl="inference")
        plain.global_emcl.em.beta = 0.0
        off = case_model(case).double().eval()
        with torch.no_grad():
            dp = off.prepare_text(text)["global"] @ off.prepare_video(video)["global"].t()
            expected = blend * dp + (1 - blend) * off.score(text, video)
            torch.testing.assert_close(plain.score(text, video), expected)


def test_emcl_inference_leaves_training_loss_alone() -> None:
    torch.manual_seed(0)
    with_emcl = case_model("wti2", cdcr=3, emcl="inference").train()
    loss = with_emcl(batch())
    np.testing.assert_allclose(loss.item(), GOLDEN["wti2__loss_cdcr3"], **CLOSE)


@pytest.mark.parametrize("emcl", ["off", "joint"])
def test_training_step_backpropagates(emcl: str) -> None:
    model = case_model("wti2", cdcr=3, emcl=emcl).train()
    loss = model(batch())
    assert torch.isfinite(loss)
    loss.backward()
    for module in (model.encoder.clip.text_model, model.aggregator, model.text_weight_fc):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if emcl == "joint":
        mu = model.global_emcl.em.mu.clone()
        model(batch())
        assert not torch.equal(mu, model.global_emcl.em.mu)  # momentum update in training


def test_cdcr1_draws_random_rows_for_token_interactions() -> None:
    model = case_model("wti2", cdcr=1).train()
    losses = {model(batch()).item() for _ in range(6)}
    assert all(np.isfinite(list(losses))) and len(losses) > 1


def xti_checkpoint() -> dict[str, torch.Tensor]:
    """The shared reference checkpoint plus the xti cross encoder."""
    cross = {
        k.removeprefix("xti/"): torch.from_numpy(XTI[k]).float()
        for k in XTI.files
        if k.startswith("xti/")
    }
    return {**checkpoint(), **cross}


def xti_model(dropout: float = 0.0, **method) -> DRL:
    model = build(xti_checkpoint(), interaction="xti", **method)
    model.cross.dropout.p = dropout
    return model


def test_xti_similarity_matches_reference() -> None:
    np.testing.assert_allclose(scores(xti_model()).numpy(), XTI["sim"], **CLOSE)


@pytest.mark.parametrize("cdcr", [0, 3])
def test_xti_training_loss_matches_reference_without_cdcr(cdcr: int) -> None:
    # The reference adds no CDCR term to xti, whatever --cdcr says.
    loss = xti_model(cdcr=cdcr).train()(batch())
    np.testing.assert_allclose(loss.item(), XTI["loss"], **CLOSE)


def test_xti_dropout_draws_the_reference_masks() -> None:
    model = xti_model(dropout=0.1).train()
    torch.manual_seed(int(XTI["dropout_seed"]))
    loss = model(batch())
    np.testing.assert_allclose(loss.item(), XTI["loss_dropout"], **CLOSE)
    assert not np.isclose(loss.item(), XTI["loss"])


def xti_share(model: DRL, monkeypatch: pytest.MonkeyPatch, rank: int) -> torch.Tensor:
    """The loss process ``rank`` of 2 computes from the gathered batch (it owns rows 2 * rank and
    2 * rank + 1)."""
    monkeypatch.setattr(baselines.drl, "world_size", lambda: 2)
    monkeypatch.setattr(baselines.drl, "rank", lambda: rank)
    b = batch()
    text = model.encode_text(b["ids"], b["mask"])
    return model.loss(text, model.encode_video(b["pixels"], b["video_mask"]))


def test_xti_process_share_matches_reference_and_averages_to_the_whole_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = xti_model().train()
    shares = [xti_share(model, monkeypatch, rank).item() for rank in (0, 1)]
    np.testing.assert_allclose(shares[1], XTI["loss_rank1of2"], **CLOSE)
    np.testing.assert_allclose(np.mean(shares), XTI["loss"], **CLOSE)


def test_xti_gathers_with_summed_gradients_and_trains_every_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    modes = []

    def gather(tensor: torch.Tensor, mode: str) -> torch.Tensor:
        if tensor.is_floating_point():  # masks carry no gradient
            modes.append(mode)
        return tensor

    monkeypatch.setattr(harness.heads, "all_gather_with_grad", gather)
    model = xti_model(dropout=0.1).train()
    assert model.gather_grad == "sum"  # config train.gather_grad is "local"
    model(batch()).backward()
    assert modes and set(modes) == {"sum"}
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    for part in (
        "logit_scale",
        "cross.similarity_dense",
        "aggregator.",
        "text_model",
        "vision_model",
    ):
        assert any(n.startswith(f"encoder.clip.{part}") or n.startswith(part) for n in grads), part


@pytest.mark.parametrize(
    ("method", "match"),
    [
        ({"interaction": "xti", "emcl": "inference"}, "xti"),
        ({"interaction": "ti", "cdcr": 3}, "method.cdcr"),
        ({"wti_arch": 4}, "wti_arch"),
        ({"emcl": "sometimes"}, "method.emcl"),
    ],
)
def test_bad_options_raise_one_line_config_errors(method: dict, match: str) -> None:
    sd = checkpoint(2)
    clip = CLIPModel(clip_config_from_openai(sd, prefix="clip.", head_dim=16))
    with pytest.raises(ConfigError, match=match) as err:
        DRL(VideoTextEncoder(clip), config(**method))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("sd", "method", "match"),
    [
        ({**checkpoint(2), "extra.weight": torch.zeros(1)}, {}, "extra.weight"),
        (checkpoint(3), {"wti_arch": 2}, "wti_arch"),
        (checkpoint(2), {"interaction": "dp"}, "text_weight_fc"),
        (checkpoint(2), {"agg_module": "meanP"}, "aggregation"),
        (xti_checkpoint(), {"interaction": "dp"}, "cross.embeddings"),
        (checkpoint(), {"interaction": "xti"}, "similarity_dense.weight"),
    ],
)
def test_checkpoint_mismatches_raise_one_line_errors(sd, method, match) -> None:
    with pytest.raises(ValueError, match=match) as err:
        build(sd, **method)
    assert "\n" not in str(err.value)


def test_a_channel_constant_up_to_rounding_standardises_to_zero_without_gradient():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    x[:, 1] = 0.1  # one value in every row: its mean differs from it by rounding only
    x.requires_grad_(True)
    z = baselines.drl._standardize(x)
    assert torch.equal(z[:, 1], torch.zeros(64))
    assert torch.allclose(z[:, 0].std(), torch.tensor(1.0))
    z.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.equal(x.grad[:, 1], torch.zeros(64))
