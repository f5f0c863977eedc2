"""Estimators with scikit-learn's conventions (`Estimator`), trained through `Trainer`."""

from .base import Estimator
from .classifier import SequenceClassifier
from .forecaster import Forecaster

__all__ = ["Estimator", "Forecaster", "SequenceClassifier"]
