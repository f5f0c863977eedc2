"""What a training run is given and what it returns: the `Objective` a task supplies,
`TrainConfig` (the budget in steps, minutes or epochs, and the optimizer's settings),
`TrainResult`; the learning-rate schedule over the budget and how much of the budget is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ..errors import InputError
from ..layers.module import Module
from ..schedules import CosineLR


class Objective(Protocol):
    @property
    def model(self) -> Module:
        """The model being trained."""
        ...

    def train_step(self, step: int) -> tuple[float, int]:
        """Forward and backward of training batch ``step``: mean loss per token, token count."""
        ...

    def evaluate(self) -> float:
        """Mean loss per token on the held-out data."""
        ...

    def carry_arrays(self) -> dict[str, np.ndarray]:
        """State carried between steps, to save for an exact resume."""
        ...

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None: ...


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = None  # budget in optimizer steps
    minutes: float | None = None  # budget in wall-clock minutes (evaluation included)
    epochs: float | None = None  # budget in passes over the data (`Objective.steps_per_epoch`)
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    clip: float = 1.0
    eval_every: int = 250
    unit: str = "token"  # what the throughput counts: "char" or "token"
    patience: int | None = None  # stop after this many evaluations without a better one
    guard_validation: bool = True  # a validation loss far above the first loss: diverged
    ema: float = 0.0  # evaluate and keep a moving average of the weights of this decay (0: off)

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None and self.epochs is None:
            raise InputError("TrainConfig: expected a budget: steps, minutes or epochs")
        if self.epochs is not None and not self.epochs > 0:
            raise InputError(f"TrainConfig: epochs must be positive, got {self.epochs}")
        if self.patience is not None and self.patience <= 0:
            raise InputError(f"TrainConfig: patience must be positive, got {self.patience}")
        if self.steps is not None and self.steps <= 0:
            raise InputError(f"TrainConfig: steps must be positive, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise InputError(f"TrainConfig: minutes must be positive, got {self.minutes}")
        if self.warmup_steps < 0:
            raise InputError(f"TrainConfig: warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.ema < 1:
            raise InputError(f"TrainConfig: ema must be in [0, 1), got {self.ema}")
        if self.eval_every <= 0:
            raise InputError(f"TrainConfig: eval_every must be positive, got {self.eval_every}")


@dataclass
class TrainResult:
    steps: int
    minutes: float
    tokens_per_s: float
    val_loss: float  # at the end of training
    best_val_loss: float
    stopped: str  # "budget", "early" (no better validation loss for `patience`) or "interrupted"
    history: dict[str, list] = field(default_factory=dict)


def learning_rates(cfg: TrainConfig) -> CosineLR:
    """The schedule of every run: linear warm-up over ``warmup_steps``, then cosine from ``lr``
    to ``min_lr`` over the rest of the budget (its progress: `decay_progress`)."""
    return CosineLR(cfg.lr, None, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps)


def decay_progress(cfg: TrainConfig, step: int, elapsed: float, decay_start: float) -> float:
    """The share of the budget after the warm-up used after ``step`` steps, in steps or in
    time, whichever is more; ``decay_start`` is the seconds elapsed when the warm-up ended."""
    parts = []
    if cfg.steps is not None:
        parts.append((step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1))
    if cfg.minutes is not None:
        parts.append((elapsed - decay_start) / max(60.0 * cfg.minutes - decay_start, 1e-9))
    return max(parts)


def with_epochs(cfg: TrainConfig, objective: Any) -> TrainConfig:
    """``cfg`` with an ``epochs`` budget turned into steps (the fewer, with ``steps`` too), from
    the objective's ``steps_per_epoch``."""
    if cfg.epochs is None:
        return cfg
    per_epoch = getattr(objective, "steps_per_epoch", None)
    if not isinstance(per_epoch, int) or per_epoch <= 0:
        raise InputError(
            f"Trainer: an epochs budget needs an objective with steps_per_epoch, "
            f"got {type(objective).__name__}"
        )
    steps = max(1, math.ceil(cfg.epochs * per_epoch))
    return replace(cfg, steps=steps if cfg.steps is None else min(steps, cfg.steps))
