"""Exceptions raised at rnnkit's public boundary.

Every error names the component, what it expected and what it was given, for example
``LSTM: expected input of shape (T, B, 32), got (7, 3, 31)``.
"""

from __future__ import annotations


class RnnkitError(Exception):
    """Base class of rnnkit's own errors."""


class ShapeError(RnnkitError, ValueError):
    """An array has the wrong rank, size or dtype for the component that received it."""


class InputError(RnnkitError, ValueError):
    """Input values are unusable: NaN or infinity, lengths out of range, unknown options."""


class CheckpointError(RnnkitError, ValueError):
    """A checkpoint file is missing, malformed, or does not match the model it is loaded into."""


class TrainingDiverged(RnnkitError):
    """The loss or the gradient norm became NaN, infinite, or exploded (`rnnkit.training`'s
    divergence guard). The CLI reports it with exit status 1, apart from bad input (2)."""
