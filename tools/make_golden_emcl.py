"""Write golden vectors for harness.emcl and harness.metrics.retrieval from the reference code.

Reference: github.com/jpthu17/EMCL at commit 3af17942e8195c563e2f47af68be521100e5935f.
Export its ``video_retrieval`` tree (e.g. ``git show HEAD:<path>`` of every .py file) to REF_ROOT
and apply the one CPU shim: in ``video_retrieval/EMCL-Net/tvr/models/until_module.py`` replace
``mu = self.mu.repeat(b, 1).cuda(embds.device)`` by ``mu = self.mu.repeat(b, 1).to(embds.device)``.

    python tools/make_golden_emcl.py REF_ROOT [--out tests/fixtures]

``Emcl`` and the metric functions are imported. ``EMCL.get_logits``, ``_run_on_single_gpu`` and the
joint-training ``Emcl`` are compiled from their source text because importing their modules needs
timm, decord and CUDA. The packing of multi-sentence matrices and the inverted softmax are inline
code of ``main_retrieval.eval_epoch``; they are restated below. Everything runs in float64.
"""

from __future__ import annotations

import argparse
import ast
import logging
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EMCL_NET = Path("video_retrieval/EMCL-Net")
JOINT_MODEL = Path("video_retrieval/As_a_joint_training_module/model/model.py")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def compile_defs(path: Path, names: set[str], namespace: dict, within: str | None = None) -> dict:
    """Compile the defs ``names`` of ``path`` (or of its class ``within``) into ``namespace``."""
    tree = ast.parse(path.read_text())
    body = tree.body
    if within is not None:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == within).body
    defs = [n for n in body if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name in names]
    if {d.name for d in defs} != names:
        sys.exit(f"{path}: expected definitions {sorted(names)}; is REF_ROOT the EMCL export?")
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


class Reference:
    """Handles on the reference code under ``root``."""

    def __init__(self, root: Path) -> None:
        net = root / EMCL_NET
        sys.path.insert(0, str(net))
        from tvr.models.until_module import Emcl
        from tvr.utils import metrics

        if ".cuda(embds.device)" in (net / "tvr/models/until_module.py").read_text():
            sys.exit(f"{net}/tvr/models/until_module.py: apply the CPU shim in this script's doc")
        self.Emcl = Emcl
        self.metrics = metrics
        ns = {"torch": torch, "np": np, "F": F, "nn": nn, "th": torch, "math": math}
        ns["logger"] = logging.getLogger("reference")
        logit_defs = {"get_logits", "get_similarity_logits"}
        compile_defs(net / "tvr/models/modeling.py", logit_defs, ns, within="EMCL")
        compile_defs(net / "main_retrieval.py", {"_run_on_single_gpu"}, ns)
        self.logits_ns = ns
        self.JointEmcl = compile_defs(root / JOINT_MODEL, {"Emcl"}, dict(ns))["Emcl"]

    def emcl(self, k, stage_num, momentum, lamd, beta, mu):
        em = self.Emcl(k=k, stage_num=stage_num, momentum=momentum, lamd=lamd, beta=beta)
        em.mu = mu.clone()
        return em

    def logits_model(self, em, temp: float, training: bool):
        """An object carrying EMCL-Net's ``get_similarity_logits`` without the CLIP backbone."""
        ns = self.logits_ns
        model = type(
            "RefLogits",
            (nn.Module,),
            {"get_logits": ns["get_logits"], "get_similarity_logits": ns["get_similarity_logits"]},
        )()
        model.config = SimpleNamespace(temp=temp)
        model.emcl = em
        return model.train(training)

    def joint_emcl(self, k, stage_num, momentum, lamd, beta, mu):
        """The joint-training ``Emcl`` on CPU (its __init__ draws ``mu`` on CUDA; set it here)."""
        em = self.JointEmcl.__new__(self.JointEmcl)
        em.k, em.stage_num, em.momentum, em.lamd, em.beta = k, stage_num, momentum, lamd, beta
        em.mu = mu.clone()
        return em


def signs_mu(k: int, seed: int, ref: Reference) -> torch.Tensor:
    """The reference's fresh ``mu`` for ``seed`` (the first draw of the global RNG), in float64."""
    torch.manual_seed(seed)
    return ref.Emcl(k=k).mu.double()


def emcl_cases(ref: Reference, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """EM step on (N, D) inputs: fresh and momentum-moved ``mu``, eval and two train calls."""
    out: dict[str, np.ndarray] = {}
    seeds = {"seed0_k32": (0, 32), "seed42_k7": (42, 7), "seed42_k16": (42, 16)}
    for name, (seed, k) in seeds.items():
        out[f"{name}__mu"] = signs_mu(k, seed, ref).numpy()
        out[f"{name}__seed"] = np.array(seed)
    cases = [
        # name, N, D, (k, stage_num, momentum, lamd, beta), scale, mu source, train
        ("small", 12, 16, (4, 9, 0.9, 1.0, 3.0), 1.0, "seed0", False),
        ("default", 40, 32, (32, 9, 0.9, 1.0, 3.0), 0.3, "seed0", False),
        ("inference", 24, 64, (7, 10, 0.9, 0.1, 4.0), "unit", "seed42", False),
        ("general_mu", 30, 20, (8, 9, 0.9, 1.0, 3.0), 1.0, "normal", False),
        ("train", 33, 24, (16, 9, 0.9, 1.0, 3.0), 0.5, "seed42", True),
    ]
    for name, n, d, (k, stages, mom, lamd, beta), scale, mu_src, train in cases:
        if mu_src == "normal":
            mu = torch.from_numpy(rng.normal(size=(1, k)))
        else:
            mu = signs_mu(k, int(mu_src[4:]), ref)
        x = rng.normal(size=(n, d))
        x = x / np.linalg.norm(x, axis=1, keepdims=True) if scale == "unit" else x * scale
        em = ref.emcl(k, stages, mom, lamd, beta, mu)
        xs = [torch.from_numpy(x), torch.from_numpy(rng.normal(size=(n + 3, d)) * 0.5)]
        out[f"{name}__params"] = np.array([k, stages, mom, lamd, beta, float(train)])
        out[f"{name}__mu"] = mu.numpy()
        for step, xt in enumerate(xs[: 2 if train else 1]):
            out[f"{name}__x{step}"] = xt.numpy()
            out[f"{name}__y{step}"] = em(xt, if_train=train).numpy()
            out[f"{name}__mu{step}"] = em.mu.double().numpy()
    return out


def joint_cases(ref: Reference, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The joint-training variant, 3 modalities batched, two training calls then one eval call."""
    m, b, d, k = 3, 10, 16, 8
    mu = torch.from_numpy(rng.normal(size=(m, 1, k)))
    mu = mu / (1e-6 + mu.norm(dim=0, keepdim=True))
    em = ref.joint_emcl(k, 5, 0.9, 1.0, 3.0, mu)
    out = {"params": np.array([k, 5, 0.9, 1.0, 3.0]), "mu": mu.numpy()}
    for step, train in enumerate((True, True, False)):
        x = torch.from_numpy(rng.normal(size=(m, b, d)))
        out[f"x{step}"], out[f"train{step}"] = x.numpy(), np.array(train)
        out[f"y{step}"] = em(x, if_train=train).numpy()
        out[f"mu{step}"] = em.mu.numpy()
    return out


def features(rng, n_text, n_video, frames, d, min_frames):
    """Random text (Nt, D), video (Nv, F, D) and a mask with trailing padded frames."""
    text = rng.normal(size=(n_text, d))
    video = rng.normal(size=(n_video, frames, d)) * 0.5
    lengths = rng.integers(min_frames, frames + 1, size=n_video)
    mask = (np.arange(frames)[None, :] < lengths[:, None]).astype(np.float64)
    return text, video, mask


def similarity_cases(ref: Reference, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """EMCL-Net block similarity (eval and train) and the 32 x 32 blocked evaluation."""
    out: dict[str, np.ndarray] = {}
    mu = signs_mu(32, 0, ref)
    for name, train in (("block_eval", False), ("block_train", True)):
        text, video, mask = features(rng, 4, 5, 6, 16, 2)
        em = ref.emcl(32, 9, 0.9, 1.0, 3.0, mu)
        model = ref.logits_model(em, 3.0, train)
        t = torch.from_numpy(text)
        v, msk = torch.from_numpy(video), torch.from_numpy(mask)
        t2v, v2t = model.get_similarity_logits(t, t, v, None, msk, shaped=True)
        out.update({f"{name}__text": text, f"{name}__video": video, f"{name}__mask": mask})
        out.update({f"{name}__mu": mu.numpy(), f"{name}__sim": t2v.numpy()})
        out[f"{name}__mu_after"] = em.mu.double().numpy()
        assert torch.equal(t2v.T, v2t)
    text, video, mask = features(rng, 70, 70, 5, 16, 1)
    em = ref.emcl(32, 9, 0.9, 1.0, 3.0, mu)
    model = ref.logits_model(em, 3.0, False)
    t, v, msk = torch.from_numpy(text), torch.from_numpy(video), torch.from_numpy(mask)
    text_mask = torch.ones(len(t), 1)  # split alongside the texts but unused by EMCL-Net
    rows = ref.logits_ns["_run_on_single_gpu"](model, text_mask, msk, t, v, t, mini_batch=32)
    out.update({"blocked__text": text, "blocked__video": video, "blocked__mask": mask})
    out.update({"blocked__mu": mu.numpy(), "blocked__sim": np.concatenate(rows, axis=0)})
    return out


def metric_dict(m: dict) -> np.ndarray:
    """R1, R5, R10, R50, MedianR, MeanR of a reference metrics dict."""
    return np.array([m["R1"], m["R5"], m["R10"], m["R50"], m["MedianR"], m["MeanR"]], float)


def compute_metrics_cases(ref: Reference, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``compute_metrics`` on matrices with ties, a constant one and a rectangular one."""
    sims = {
        "ties": rng.integers(0, 4, size=(20, 20)).astype(float),
        "constant": np.full((10, 10), 0.5),
        "continuous": rng.normal(size=(60, 60)) + 2 * np.eye(60),
        "rectangular": np.round(rng.normal(size=(8, 12)), 1),
        "some_ties": np.round(rng.normal(size=(70, 70)) + np.eye(70), 1),
    }
    out = {}
    for name, sim in sims.items():
        m = ref.metrics.compute_metrics(sim)
        out.update({f"{name}__sim": sim, f"{name}__metrics": metric_dict(m)})
    return out


def pack_groups(sim: np.ndarray, counts: list[int]) -> np.ndarray:
    """``main_retrieval.eval_epoch``: rows of each video padded with -inf to (V, M, V)."""
    ends = np.cumsum(counts)
    starts = ends - np.array(counts)
    width = max(counts)
    return np.stack(
        [
            np.concatenate((sim[s:e], np.full((width - e + s, sim.shape[1]), -np.inf)), axis=0)
            for s, e in zip(starts, ends, strict=True)
        ]
    )


def multi_sentence_cases(ref: Reference, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``tensor_text_to_video_metrics`` and ``compute_metrics(tensor_video_to_text_sim(.))``."""
    out = {}
    for name, n_videos, quantum in (("small", 6, 0.5), ("ties", 60, 0.25), ("fine", 40, 0.0)):
        counts = list(rng.integers(1, 5, size=n_videos))
        vid = np.repeat(np.arange(n_videos), counts)
        sim = rng.normal(size=(len(vid), n_videos)) + 1.5 * (vid[:, None] == np.arange(n_videos))
        if quantum:
            sim = np.round(sim / quantum) * quantum
        t2v = ref.metrics.tensor_text_to_video_metrics(pack_groups(sim, counts))
        v2t = ref.metrics.compute_metrics(
            ref.metrics.tensor_video_to_text_sim(torch.from_numpy(pack_groups(sim, counts)))
        )
        out.update({f"{name}__sim": sim, f"{name}__video_of_sentence": vid})
        out.update({f"{name}__t2v": metric_dict(t2v), f"{name}__v2t": metric_dict(v2t)})
    return out


def inverted_softmax_cases(ref: Reference, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``main_retrieval.eval_epoch`` post-processing on cosine-like scores, temp 0.01."""
    out = {}
    for name, (n_text, n_video) in (("square", (40, 40)), ("rectangular", (12, 30))):
        raw = np.tanh(rng.normal(size=(n_text, n_video)) * 0.3 + 0.3 * np.eye(n_text, n_video))
        s = torch.from_numpy(raw)
        t2v = s * F.softmax(s / 0.01, dim=0) * len(s)
        v2t = s * F.softmax(s / 0.01, dim=1) * len(s)
        out.update({f"{name}__sim": raw, f"{name}__t2v_sim": t2v.numpy()})
        out[f"{name}__v2t_sim_T"] = v2t.numpy().T
        if n_text == n_video:
            out[f"{name}__t2v"] = metric_dict(ref.metrics.compute_metrics(t2v.numpy()))
            out[f"{name}__v2t"] = metric_dict(ref.metrics.compute_metrics(v2t.numpy().T))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref_root", type=Path, help="export of jpthu17/EMCL (see module doc)")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    ref = Reference(args.ref_root.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    writers = {
        "emcl_module": emcl_cases,
        "emcl_joint": joint_cases,
        "emcl_similarity": similarity_cases,
        "metrics_compute": compute_metrics_cases,
        "metrics_multi_sentence": multi_sentence_cases,
        "metrics_inverted_softmax": inverted_softmax_cases,
    }
    for i, (name, writer) in enumerate(writers.items()):
        arrays = writer(ref, np.random.default_rng(1000 + i))
        path = args.out / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        print(f"{path}: {len(arrays)} arrays, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
