"""The one training loop: every task trains through `Trainer`.

A task supplies an `Objective`: one training step (forward and backward of a batch, leaving
gradients in the model), an evaluation on held-out data, and whatever state it carries from
one batch to the next (the hidden state of truncated BPTT). The `Trainer` does the rest:
AdamW with global-norm clipping and a warm-up plus cosine schedule over the budget (steps or
minutes), evaluation at intervals, the best checkpoint kept, a ``.last`` checkpoint to resume
from exactly, progress (a live bar on a terminal, a plain line every ``progress_every`` seconds
otherwise), a divergence guard from the first steps and on every evaluation, a stop after the
current step on SIGINT or SIGTERM, and a loss-curve PNG.

Files, for ``out = runs/lm.safetensors``: ``runs/lm.safetensors`` (best by validation loss),
``runs/lm.last.safetensors`` (latest state, with optimizer and carried state, for ``resume``),
``runs/lm.loss.png`` (training and validation loss by step).

The modules: `config` (`Objective`, `TrainConfig`, `TrainResult`, the schedule and the
budget), `trainer` (`Trainer`, the loop), `guard` (the divergence guard), `report` (progress,
evaluation lines, the loss curve), `checkpoints` (the best and ``.last`` files, resuming).
"""

from ..errors import TrainingDiverged  # raised by the guard
from .checkpoints import last_path, plot_path, read_last
from .config import (
    Objective,
    TrainConfig,
    TrainResult,
    decay_progress,
    learning_rates,
    with_epochs,
)
from .guard import EXPLODED, SPIKE, WINDOW
from .report import log_to_stderr
from .trainer import Trainer

__all__ = [
    "EXPLODED",
    "SPIKE",
    "WINDOW",
    "Objective",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "decay_progress",
    "last_path",
    "learning_rates",
    "log_to_stderr",
    "plot_path",
    "read_last",
    "with_epochs",
]
