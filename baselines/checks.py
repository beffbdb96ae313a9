"""Range and choice rules of the ``method`` keys each method declares
(``configs/<task>/<name>.yaml``), checked when the config is resolved
(:mod:`harness.config_checks`). Light: no torch, so the registry reaches them through
``METHODS.register(..., checks="baselines.checks:<NAME>")``.

The choice words live here, in a module without torch, and the method modules import them.
Settings that depend on one another (e.g.
HMMC's ``top_frames`` against ``data.max_frames``) are still checked where the model is built.
"""

from harness.config_checks import (
    AGGREGATORS,
    Rule,
    dropout,
    fraction,
    non_negative,
    non_negative_int,
    one_of,
    positive,
    positive_int,
)

SIM_HEADERS = (*AGGREGATORS, "tightTransf")  # CLIP4Clip's similarity headers
EMCL_MODES = ("off", "inference", "joint")  # the EMCL plug-in on any retrieval method
INTERACTIONS = ("dp", "ti", "wti", "xti")  # DRL's text-video interactions
WTI_ARCHS = (1, 2, 3)
CDCR_VARIANTS = (0, 1, 2, 3)
MASK_ORDERS = ("reference", "per_video")  # CLIP2Video's frame masks over attention heads


def em_step(section: str, momentum: bool = True) -> tuple[Rule, ...]:
    """The rules of one EM step's settings under ``method.<section>`` (``method`` itself when
    ``section`` is empty); the inference plug-in has no ``momentum`` (its bases never move)."""
    prefix = f"method.{section}." if section else "method."
    rules = (
        positive_int(prefix + "k"),
        positive_int(prefix + "stage_num"),
        positive(prefix + "lamd"),  # the E-step logits are divided (or multiplied) by it
        non_negative(prefix + "beta"),  # 0 turns the refinement off
    )
    return (*rules, fraction(prefix + "momentum")) if momentum else rules


def emcl_plugin() -> tuple[Rule, ...]:
    """``method.emcl`` (off | inference | joint) and its two sections."""
    return (
        one_of("method.emcl", *EMCL_MODES),
        *em_step("emcl_inference", momentum=False),
        *em_step("emcl_joint"),
    )


def temporal(key: str, kinds: tuple[str, ...] = AGGREGATORS) -> tuple[Rule, ...]:
    """The temporal module ``method.<key>`` and its depth ``method.temporal_layers``."""
    return (one_of(f"method.{key}", *kinds), non_negative_int("method.temporal_layers"))


EMCL_RETRIEVAL: tuple[Rule, ...] = (
    *temporal("agg_module"),
    positive("method.temp"),  # frame pooling divides by it
    *em_step(""),
)

CLIP4CLIP: tuple[Rule, ...] = (
    *temporal("sim_header", SIM_HEADERS),
    dropout("method.cross_dropout"),
    *emcl_plugin(),
)

XCLIP: tuple[Rule, ...] = (
    *temporal("sim_header"),
    positive("method.tau"),
    *emcl_plugin(),
)

DRL: tuple[Rule, ...] = (
    one_of("method.interaction", *INTERACTIONS),
    one_of("method.wti_arch", *WTI_ARCHS),
    *temporal("agg_module"),
    one_of("method.cdcr", *CDCR_VARIANTS),
    non_negative("method.cdcr_alpha1"),
    non_negative("method.cdcr_alpha2"),
    non_negative("method.cdcr_lambda"),
    *emcl_plugin(),
)

CLIP2VIDEO: tuple[Rule, ...] = (
    non_negative_int("method.temporal_layers"),
    positive_int("method.center_k"),
    fraction("method.center_weight"),
    one_of("method.mask_order", *MASK_ORDERS),
    *emcl_plugin(),
)

HMMC: tuple[Rule, ...] = (
    non_negative_int("method.temporal_layers"),
    positive_int("method.temporal_heads"),
    positive_int("method.frame_positions"),
    positive_int("method.top_frames"),
    non_negative("method.weight_vtm"),
    non_negative("method.weight_ftm"),
    positive("method.logit_scale"),
    fraction("method.contrast_momentum"),
    positive_int("method.contrast_num_negative"),
    positive("method.contrast_temperature"),
    non_negative("method.weight_fam_pretrain"),
    non_negative("method.weight_vtm_pretrain"),
    non_negative("method.weight_ftm_pretrain"),
    positive_int("method.projector_hidden"),
    *emcl_plugin(),
)

# EMCL for QA and captioning: a temporal module, then the EM step of method.emcl.
EMCL_VIDEO: tuple[Rule, ...] = (*temporal("agg_module"), *em_step("emcl"))
