"""Retrieval methods, registered by name (lazy: nothing heavy is imported until used)."""

from harness.registry import METHODS

METHODS.register(
    "emcl",
    "baselines.emcl_net:EMCLNet",
    help="EMCL-Net: text-conditioned frame pooling + EM bases (NeurIPS 2022)",
)
METHODS.register(
    "clip4clip",
    "baselines.clip4clip:CLIP4Clip",
    help="CLIP4Clip: meanP/seqLSTM/seqTransf pooling or tightTransf cross encoder",
)
METHODS.register(
    "xclip",
    "baselines.xclip:XCLIP",
    help="X-CLIP: multi-grained contrast, attention over similarity matrices (ACM MM 2022)",
)
METHODS.register(
    "drl",
    "baselines.drl:DRL",
    help="DRL: weighted token-wise interaction + channel decorrelation (CDCR)",
)
METHODS.register(
    "hmmc", "baselines.hmmc:HMMC", help="HMMC: hierarchical video/frame matching, momentum contrast"
)
