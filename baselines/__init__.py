"""Retrieval methods, registered by name (lazy: nothing heavy is imported until used)."""

from harness.registry import METHODS

METHODS.register(
    "emcl",
    "baselines.emcl_net:EMCLNet",
    help="EMCL-Net: text-conditioned frame pooling + EM bases (NeurIPS 2022)",
)
