"""The divergence guard: when a training step's loss or gradient norm, or an evaluation's
validation loss, says the model diverged, and the one-line `TrainingDiverged` that stops the
run before the bad update or the bad weights reach a checkpoint.

Every comparison is with the first training loss, the untrained model's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..errors import TrainingDiverged

EXPLODED = 1.5  # a window of recent losses this many times the first loss: diverged
SPIKE = 3.0  # one loss this many times the first: diverged at once
WINDOW = 5  # training losses in the window


def step_trouble(loss: float, norm: float, train_losses: list[float]) -> str | None:
    """Why a step with ``loss`` and gradient ``norm`` diverged, after ``train_losses``; None
    when it did not.

    From the second step on: a loss above ``SPIKE`` times the first, or a mean of the last
    ``WINDOW`` losses above ``EXPLODED`` times the first (one noisy batch is not enough).
    """
    first = train_losses[0] if train_losses else None
    recent = [*train_losses[-(WINDOW - 1) :], loss]
    bad = None
    if not math.isfinite(loss):
        bad = f"the loss is {loss}"
    elif not math.isfinite(norm):
        bad = f"the gradient norm is {norm}"
    elif first is not None and loss > SPIKE * first:
        bad = f"the loss jumped to {loss:.3g} (it started at {first:.3g})"
    elif first is not None and np.mean(recent) > EXPLODED * first:
        bad = (
            f"the loss exploded to a mean of {np.mean(recent):.3g} over the last "
            f"{len(recent)} steps (it started at {first:.3g})"
        )
    return bad


def validation_trouble(val: float, first: float | None, compare: bool) -> str | None:
    """Why a validation loss ``val`` is a diverged model's: not finite, or (when ``compare``)
    ``EXPLODED`` times the untrained model's training loss ``first``; None when it is not."""
    if not math.isfinite(val):
        return f"the validation loss is {val}"
    if compare and first is not None and val > EXPLODED * first:
        return (
            f"the validation loss {val:.3g} is far above the untrained model's loss "
            f"{first:.3g} (or the validation text is unlike the training text)"
        )
    return None


def diverged(why: str, step: int, out: Path) -> NoReturn:
    """Stop the run: `TrainingDiverged` at ``step`` for ``why``, saying whether the best
    checkpoint ``out`` is on disk."""
    kept = (
        f"the best checkpoint {str(out)!r} is intact"
        if out.exists()
        else "no checkpoint was written"
    )
    raise TrainingDiverged(
        f"training diverged at step {step}: {why}; {kept}. Try a lower --lr or a smaller --clip"
    )
