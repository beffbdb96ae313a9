"""baselines.xclip against golden vectors of the reference X-CLIP model (tools/make_golden_xclip.py,
matrices at identity plus noise), the closed forms of METHODS §2.3 at identity (§9 sanity iii), and
the padding behaviour (reference: padded words and frames count; option: they do not)."""

from __future__ import annotations

import pytest
import torch
from test_clip4clip import (
    ATOL,
    MAX_FRAMES,
    MAX_WORDS,
    checkpoint,
    features,
    golden,
    in_float64,
    random_model,
    reference_model,
    train_batch,
)

from baselines.checkpoints import load_reference_checkpoint
from baselines.xclip import MATRICES, XCLIP

FIXTURE = "xclip_seqTransf.npz"
TAU = 0.01


def xclip(**method) -> XCLIP:
    return reference_model(XCLIP, FIXTURE, "xclip", **method)


def test_eval_scores_match_reference():
    g = golden(FIXTURE)
    model = xclip()
    with torch.no_grad():
        sim = model.score(*features(model, g))
    expected = g["sim"] / model.logit_scale.detach()
    torch.testing.assert_close(sim, expected, atol=ATOL, rtol=0)


def test_training_loss_matches_reference():
    g = golden(FIXTURE)
    model = xclip().train()
    torch.testing.assert_close(model(train_batch(g)), g["loss"], atol=ATOL, rtol=0)


def test_emcl_inference_replaces_the_video_sentence_term_as_the_reference_em():
    g = golden(FIXTURE)
    model = xclip(emcl="inference")
    model.emcl.em.mu = g["emcl_inference_mu"].float()
    text, video = features(model, g)
    with torch.no_grad():
        sim = model.double().score(in_float64(text), in_float64(video))
    torch.testing.assert_close(sim, g["emcl_inference_sim"], atol=1e-6, rtol=0)


def test_emcl_with_zero_beta_changes_nothing():
    """§9 sanity (iv): the EM step with beta = 0 returns its input."""
    g = golden(FIXTURE)
    settings = {"k": 7, "stage_num": 10, "lamd": 0.1, "beta": 0.0}
    plain, plugged = xclip(), xclip(emcl="inference", emcl_inference=settings)
    with torch.no_grad():
        expected = plain.score(*features(plain, g))
        sim = plugged.score(*features(plugged, g))
    torch.testing.assert_close(sim, expected, atol=0, rtol=0)


def softmax_mix(values: torch.Tensor) -> torch.Tensor:
    """``sum_i values_i softmax(values / tau)_i`` of a vector."""
    return (values * torch.softmax(values / TAU, dim=0)).sum()


def closed_form(sentence, words, video, frames) -> torch.Tensor:
    """§2.3 with identity matrices for one pair: sentence (D), words (L, D), video (D),
    frames (F, D), written per pair with explicit vectors."""
    video_sentence = sentence @ video
    video_word = softmax_mix(words @ video)
    sentence_frame = softmax_mix(frames @ sentence)
    sims = words @ frames.t()  # (L, F)
    per_frame = torch.stack([softmax_mix(sims[:, f]) for f in range(sims.shape[1])])
    per_word = torch.stack([softmax_mix(sims[i]) for i in range(sims.shape[0])])
    frame_word = (softmax_mix(per_frame) + softmax_mix(per_word)) / 2
    return (video_sentence + video_word + sentence_frame + frame_word) / 4


def random_features(n_text: int = 3, n_video: int = 4, dim: int = 16):
    """Normalised feature dicts with padded words and frames (float64)."""
    gen = torch.Generator().manual_seed(5)

    def unit(*shape):
        x = torch.randn(*shape, generator=gen, dtype=torch.float64)
        return x / x.norm(dim=-1, keepdim=True)

    word_mask = (torch.arange(MAX_WORDS) < torch.tensor([[8], [5], [3]])).long()
    video_mask = (torch.arange(MAX_FRAMES) < torch.tensor([[5], [2], [1], [4]])).long()
    text = {"sentence": unit(n_text, dim), "words": unit(n_text, MAX_WORDS, dim)}
    video = {"video": unit(n_video, dim), "frames": unit(n_video, MAX_FRAMES, dim)}
    return text | {"word_mask": word_mask}, video | {"video_mask": video_mask}


def identity_model(**method) -> XCLIP:
    """An X-CLIP head with 16-wide identity matrices (float64); its encoder is not used."""
    model = random_model(XCLIP, "xclip", **method).double()
    model.global_mat_weight.data = torch.eye(16, dtype=torch.float64)
    model.local_mat_weight.data = torch.eye(16, dtype=torch.float64)
    return model.eval()


def test_identity_matrices_reduce_to_the_closed_form():
    text, video = random_features()
    with torch.no_grad():
        sim = identity_model().score(text, video)
    expected = torch.tensor(
        [
            [
                closed_form(
                    text["sentence"][t], text["words"][t], video["video"][v], video["frames"][v]
                )
                for v in range(4)
            ]
            for t in range(3)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(sim, expected, atol=1e-12, rtol=0)


def test_masked_padding_equals_the_closed_form_on_real_positions_only():
    text, video = random_features()
    with torch.no_grad():
        sim = identity_model(mask_padding=True).score(text, video)
    for t in range(3):
        words = text["words"][t][text["word_mask"][t].bool()]
        for v in range(4):
            frames = video["frames"][v][video["video_mask"][v].bool()]
            expected = closed_form(text["sentence"][t], words, video["video"][v], frames)
            torch.testing.assert_close(sim[t, v], expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("mask_padding", [False, True])
def test_padded_words_and_frames_count_only_without_masking(mask_padding):
    text, video = random_features()
    model = identity_model(mask_padding=mask_padding)
    noisy_text = dict(
        text, words=torch.where(text["word_mask"][..., None] == 0, 0.3, text["words"])
    )
    noisy_video = dict(
        video, frames=torch.where(video["video_mask"][..., None] == 0, -0.2, video["frames"])
    )
    with torch.no_grad():
        before = model.score(text, video)
        after = model.score(noisy_text, noisy_video)
    assert torch.allclose(after, before, atol=1e-12) == mask_padding


def test_training_step_updates_every_matrix():
    g = golden(FIXTURE)
    model = xclip().train()
    model(train_batch(g)).backward()
    for name in MATRICES:
        grad = getattr(model, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_checkpoint_matrices_fix_max_frames():
    model = xclip()
    model.frame_logit_weight.data = torch.eye(MAX_FRAMES + 1)  # as built with one frame more
    with pytest.raises(ValueError, match="frame_logit_weight.*data.max_frames") as err:
        load_reference_checkpoint(model, checkpoint(golden(FIXTURE)))
    assert "\n" not in str(err.value)


def test_texts_longer_than_the_word_matrices_are_refused():
    g = golden(FIXTURE)
    model = xclip()
    with pytest.raises(ValueError, match="data.max_words"):
        model.encode_text(g["ids"][:, :6], g["mask"][:, :6])


def test_checkpoint_loader_is_shared_with_clip4clip():
    model = random_model(XCLIP, "xclip", sim_header="meanP")
    with pytest.raises(ValueError, match="transformerClip") as err:
        load_reference_checkpoint(model, checkpoint(golden(FIXTURE)))
    assert "\n" not in str(err.value)
