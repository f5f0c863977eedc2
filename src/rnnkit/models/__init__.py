"""Task models composed from layers."""

from .language import LanguageModel, LMConfig
from .regressor import RegressorConfig, SequenceRegressor

__all__ = ["LMConfig", "LanguageModel", "RegressorConfig", "SequenceRegressor"]
