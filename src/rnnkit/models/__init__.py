"""Task models composed from layers."""

from .regressor import RegressorConfig, SequenceRegressor

__all__ = ["RegressorConfig", "SequenceRegressor"]
