"""Estimators with scikit-learn's conventions (`Estimator`), trained through `Trainer`."""

from .base import Estimator
from .classifier import SequenceClassifier

__all__ = ["Estimator", "SequenceClassifier"]
