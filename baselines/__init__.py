"""Methods, registered per task (lazy: nothing heavy is imported until used).

A new method is one module in this package plus one line here; its default settings are
``configs/<task>/<name>.yaml`` beside this file (the ``method:`` section it reads), and the range
and choice rules of those settings a tuple in ``checks.py`` (light: checked when the config is
resolved), and the loader of its reference repository's released ``pytorch_model.bin`` layout
a ``reference=`` function (``run.py --eval-only --checkpoint FILE``).
"""

from pathlib import Path

from harness.registry import FRAME_RULES, METHODS

CONFIGS = Path(__file__).resolve().parent / "configs"


def _method(
    task: str,
    name: str,
    target: str,
    help: str,
    checks: str | None = None,
    reference: str | None = None,
) -> None:
    """Register a method; ``checks`` names its rule tuple in ``checks.py``, ``reference`` the
    ``"module:function"`` that loads its reference repository's released checkpoints."""
    METHODS.register(
        task,
        name,
        target,
        help=help,
        config=CONFIGS / task / f"{name}.yaml",
        checks=f"baselines.checks:{checks}" if checks else None,
        reference_checkpoint=reference,
    )


_method(
    "retrieval",
    "emcl",
    "baselines.emcl_net:EMCLNet",
    "EMCL-Net: text-conditioned frame pooling + EM bases (NeurIPS 2022)",
    checks="EMCL_RETRIEVAL",
    reference="baselines.emcl_net:load_reference_checkpoint",
)
_method(
    "retrieval",
    "clip4clip",
    "baselines.clip4clip:CLIP4Clip",
    "CLIP4Clip: meanP/seqLSTM/seqTransf pooling or tightTransf cross encoder",
    checks="CLIP4CLIP",
    reference="baselines.checkpoints:load_reference_checkpoint",
)
_method(
    "retrieval",
    "xclip",
    "baselines.xclip:XCLIP",
    "X-CLIP: multi-grained contrast, attention over similarity matrices (ACM MM 2022)",
    checks="XCLIP",
    reference="baselines.checkpoints:load_reference_checkpoint",
)
_method(
    "retrieval",
    "drl",
    "baselines.drl:DRL",
    "DRL: weighted token-wise interaction + channel decorrelation (CDCR)",
    checks="DRL",
    reference="baselines.drl:load_reference_checkpoint",
)
_method(
    "retrieval",
    "hmmc",
    "baselines.hmmc:HMMC",
    "HMMC: hierarchical video/frame matching, momentum contrast",
    checks="HMMC",
    reference="baselines.hmmc_checkpoint:load_reference_checkpoint",
)
_method(
    "retrieval",
    "clip2video",
    "baselines.clip2video:CLIP2Video",
    "CLIP2Video: temporal difference and alignment blocks; host of EMCL's inference module",
    checks="CLIP2VIDEO",
    reference="baselines.clip2video:load_reference_checkpoint",
)
_method(
    "qa",
    "emcl",
    "baselines.qa_emcl:EMCLQA",
    "EMCL-QA: temporal module, attention pooling, EM step in the contrastive term",
    checks="EMCL_VIDEO",
)
_method(
    "qa",
    "clip",
    "baselines.qa_clip:CLIPQA",
    "plain CLIP: mean-pooled frames, sentence feature, no EM step, same classifier",
)
_method(
    "captioning",
    "emcl",
    "baselines.captioning_emcl:EMCLCaptioner",
    "EMCL encoder: temporal module + per-video EM step, transformer decoder",
    checks="EMCL_VIDEO",
)
_method(
    "captioning",
    "clip",
    "baselines.captioning_clip:CLIPCaptioner",
    "plain CLIP: mean-pooled frames, no EM step, same decoder",
)

FRAME_RULES.register(
    "hmmc",
    "baselines.hmmc_frames:HMMC_FRAMES",
    "HMMC: 30 JPEG frames at linspace(0, n-10, 30), max_frames of them picked",
)
