"""The labelled post-processed metric sets of a retrieval evaluation (``eval.postprocess``): what
each is computed from, its settings as recorded in results.json, and its score matrices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.config import Config
from harness.metrics.postprocess import DSL, INVERTED_SOFTMAX, QB_NORM, dual_softmax, qb_norm
from harness.metrics.postprocess import inverted_softmax as inverted

# name -> (t2v (T, V), v2t (V, T) or None when the post-processing has no video-query side)
Matrices = dict[str, tuple[np.ndarray, np.ndarray | None]]
PostProcess = Callable[[np.ndarray], Matrices]


def bank_indices(num_captions: int, size: int, seed: int) -> np.ndarray:
    """The training captions of the QB-Norm query bank: ``size`` of the ``num_captions``
    (all when fewer), drawn without replacement by ``numpy.random.default_rng(seed)``, sorted."""
    if size >= num_captions:
        return np.arange(num_captions)
    chosen = np.random.default_rng(seed).choice(num_captions, size=size, replace=False)
    return np.sort(chosen)


def settings(config: Config, bank_size: int) -> dict[str, Any]:
    """What each chosen post-processing was computed with, for results.json's ``protocol``:
    temperatures (DSL: 1 on the model's logits), the QB-Norm bank size and beta."""
    cfg = config["eval"]
    described: dict[str, Any] = {}
    for name in cfg["postprocess"]:
        if name == INVERTED_SOFTMAX:
            described[name] = {"temperature": cfg["inverted_softmax_temp"]}
        elif name == DSL:
            described[name] = {"temperature": 1.0, "scores": "logits"}
        elif name == QB_NORM:
            beta = cfg["qb_norm_beta"]
            described[name] = {
                "bank": "training captions",
                "bank_size": bank_size,
                "beta": beta,
                "temperature": 1.0 / beta,
                "k": 1,
            }
    return described


def postprocessor(config: Config, logit_scale: float, bank_sim: np.ndarray | None) -> PostProcess:
    """A function from a raw (T, V) score matrix to the chosen post-processings' matrices;
    ``bank_sim`` (B, V): the QB-Norm bank's scores on the same videos (None unless chosen)."""
    cfg = config["eval"]
    chosen = cfg["postprocess"]

    def apply(sim: np.ndarray) -> Matrices:
        out: Matrices = {}
        if INVERTED_SOFTMAX in chosen:
            out[INVERTED_SOFTMAX] = inverted(sim, cfg["inverted_softmax_temp"])
        if DSL in chosen:
            out[DSL] = dual_softmax(sim, logit_scale)
        if QB_NORM in chosen and bank_sim is not None:
            out[QB_NORM] = (qb_norm(sim, bank_sim, cfg["qb_norm_beta"]), None)
        return out

    return apply


def none(sim: np.ndarray) -> Matrices:
    """No post-processing (multi-sentence sets): no matrices for ``sim``."""
    return {}
