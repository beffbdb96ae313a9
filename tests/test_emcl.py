"""harness.emcl against golden vectors of the reference EMCL code (tools/make_golden_emcl.py).

Fixtures are float64 (the EM iteration amplifies fp32 rounding, METHODS.md §10.21); the tolerance
1e-10 leaves room for BLAS builds that order sums differently (observed difference: 0).
"""

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from harness.emcl import EMCL, emcl_net_similarity, emcl_net_similarity_blocked

ATOL = 1e-10
MODULE = np.load(FIXTURES / "emcl_module.npz")
JOINT = np.load(FIXTURES / "emcl_joint.npz")
SIM = np.load(FIXTURES / "emcl_similarity.npz")
MODULE_CASES = sorted(k.split("__")[0] for k in MODULE.files if k.endswith("__params"))


def module_with_mu(mu: np.ndarray, **kwargs) -> EMCL:
    em = EMCL(k=mu.shape[-1], **kwargs).double()
    em.mu = torch.from_numpy(mu)
    return em


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def randn(*shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(sum(shape)))


@pytest.mark.parametrize("case", MODULE_CASES)
def test_em_step_matches_reference(case: str) -> None:
    k, stages, momentum, lamd, beta, train = MODULE[f"{case}__params"]
    em = module_with_mu(
        MODULE[f"{case}__mu"], stage_num=int(stages), momentum=momentum, lamd=lamd, beta=beta
    )
    em.train(bool(train))
    step = 0
    while f"{case}__x{step}" in MODULE.files:
        out = em(t(MODULE[f"{case}__x{step}"]))
        np.testing.assert_allclose(out.numpy(), MODULE[f"{case}__y{step}"], rtol=0, atol=ATOL)
        np.testing.assert_allclose(em.mu.numpy(), MODULE[f"{case}__mu{step}"], rtol=0, atol=ATOL)
        step += 1
    assert step == (2 if train else 1)


@pytest.mark.parametrize(("seed", "k", "positives"), [(0, 32, 17), (42, 7, 5), (42, 16, 6)])
def test_seeded_init_reproduces_reference_draw(seed: int, k: int, positives: int) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        mu = EMCL(k=k).mu
    np.testing.assert_array_equal(mu.double().numpy(), MODULE[f"seed{seed}_k{k}__mu"])
    assert int((mu > 0).sum()) == positives  # METHODS.md §4.7


def test_joint_variant_matches_reference_per_modality() -> None:
    k, stages, momentum, lamd, beta = JOINT["params"]
    modules = [
        module_with_mu(
            mu, stage_num=int(stages), momentum=momentum, lamd=lamd, beta=beta, variant="joint"
        )
        for mu in JOINT["mu"]
    ]
    for step in range(3):
        for i, em in enumerate(modules):
            em.train(bool(JOINT[f"train{step}"]))
            out = em(t(JOINT[f"x{step}"][i]))
            np.testing.assert_allclose(out.numpy(), JOINT[f"y{step}"][i], rtol=0, atol=ATOL)
            np.testing.assert_allclose(em.mu.numpy(), JOINT[f"mu{step}"][i], rtol=0, atol=ATOL)


@pytest.mark.parametrize("case", ["block_eval", "block_train"])
def test_block_similarity_matches_reference(case: str) -> None:
    em = module_with_mu(SIM[f"{case}__mu"]).train(case == "block_train")
    sim = emcl_net_similarity(
        t(SIM[f"{case}__text"]), t(SIM[f"{case}__video"]), t(SIM[f"{case}__mask"]), em
    )
    assert sim.shape == (4, 5)
    np.testing.assert_allclose(sim.detach().numpy(), SIM[f"{case}__sim"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(em.mu.numpy(), SIM[f"{case}__mu_after"], rtol=0, atol=ATOL)


def test_blocked_similarity_reproduces_32x32_evaluation() -> None:
    em = module_with_mu(SIM["blocked__mu"]).eval()
    with torch.no_grad():
        sim = emcl_net_similarity_blocked(
            t(SIM["blocked__text"]), t(SIM["blocked__video"]), t(SIM["blocked__mask"]), em
        )
    np.testing.assert_allclose(sim.numpy(), SIM["blocked__sim"], rtol=0, atol=ATOL)
    whole = emcl_net_similarity_blocked(
        t(SIM["blocked__text"]), t(SIM["blocked__video"]), t(SIM["blocked__mask"]), em, block=70
    )
    assert not torch.allclose(whole, sim)  # EM mixes a block's rows: blocking matters


def test_beta_zero_returns_input_exactly() -> None:
    x = randn(20, 12)
    assert torch.equal(EMCL(k=4, beta=0.0).double()(x), x)


def test_eval_keeps_mu_and_train_moves_it() -> None:
    em = EMCL(k=8).double()
    start = em.mu.clone()
    x = randn(30, 16)
    em.eval()(x)
    assert torch.equal(em.mu, start)
    em.train()(x)
    assert not torch.allclose(em.mu, start)
    assert em.mu.shape == (1, 8)


def test_gradient_flows_only_through_identity() -> None:
    x = randn(10, 6).requires_grad_()
    EMCL(k=4).double()(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_double_and_float_agree_at_clip_like_scale() -> None:
    em = EMCL().eval()
    x = torch.nn.functional.normalize(randn(96, 512, dtype=torch.float32), dim=-1)
    out32 = em(x)
    out64 = em.double()(x.double())
    assert em.mu.dtype == torch.float64 and out64.dtype == torch.float64
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), rtol=0, atol=1e-6)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="variant"):
        EMCL(variant="mmt")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        EMCL()(torch.randn(2, 3, 4))
