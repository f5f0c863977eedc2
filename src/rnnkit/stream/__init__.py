"""The streaming runtime: `Stream` and `StreamPool` hold a model's state between inputs, and the
step plans (`steps`) run one input through a unidirectional stack on the fused step kernels."""

from .runtime import Stream, StreamPool

__all__ = ["Stream", "StreamPool"]
