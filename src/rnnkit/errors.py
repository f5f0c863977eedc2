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


class OutputError(RnnkitError, ValueError):
    """An output path is unusable: a folder, unwritable, one of the inputs, or a file that is
    not rnnkit's own and would be overwritten (`rnnkit.files.check_output`)."""


class ResourceError(RnnkitError):
    """The work asked for needs more memory than the machine has; the message names the
    option to reduce."""


class NotFittedError(RnnkitError, ValueError, AttributeError):
    """An estimator was asked to predict, score or save before `fit` (the same bases as
    scikit-learn's ``NotFittedError``)."""


class RnnkitWarning(UserWarning):
    """Something a user should know that does not stop the work: unknown tokens in the
    validation text or the prime, a schedule stretched by ``--resume --force``. The CLI prints
    each as one line ``rnnkit: warning: ...``."""


class DistributedError(RnnkitError):
    """A rank of a data-parallel run stopped (killed, out of memory, its machine lost): the
    others stop too, naming it (`rnnkit.training.distributed`); the run resumes from its last
    checkpoint with ``--resume``. The CLI reports it with exit status 1."""


class TrainingDiverged(RnnkitError):
    """The loss or the gradient norm became NaN, infinite, or exploded (`rnnkit.training`'s
    divergence guard). The CLI reports it with exit status 1, apart from bad input (2)."""
