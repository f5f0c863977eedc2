"""Learning-rate schedules: each maps a 0-based step to a learning rate.

schedule = CosineLR(3e-3, total_steps=10_000, warmup_steps=200)
apply_schedule(optimizer, schedule, step)   # sets optimizer.lr
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import InputError
from .optim import _check

if TYPE_CHECKING:
    from .optim import Optimizer

__all__ = ["ConstantLR", "CosineLR", "StepLR", "WarmupLR", "apply_schedule"]


class ConstantLR:
    """``lr(step) = lr``."""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def __call__(self, step: int) -> float:
        return self.lr


class StepLR:
    """``lr(step) = lr * gamma ** (step // step_size)``."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        _check("StepLR", "step_size", step_size, step_size >= 1, ">= 1")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


class CosineLR:
    """Linear warm-up from 0, then cosine decay from ``lr`` to ``min_lr``, then ``min_lr``::

    lr(step) = lr * step / warmup_steps                              step < warmup_steps
    lr(step) = min_lr + (lr - min_lr) * (1 + cos(pi * q)) / 2        otherwise
               q = clip(progress, 0, 1), the share of the decay done; by default
               progress = (step - warmup_steps) / (total_steps - warmup_steps)

    A budget that is not a number of steps (`Trainer`'s minutes) passes ``progress`` itself:
    ``schedule(step, progress)``; ``total_steps`` may then be None.
    """

    def __init__(
        self,
        lr: float,
        total_steps: int | None = None,
        min_lr: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        if total_steps is None:
            ok, expected = warmup_steps >= 0, ">= 0"
        else:
            ok, expected = 0 <= warmup_steps < total_steps, f"in [0, total_steps={total_steps})"
        _check("CosineLR", "warmup_steps", warmup_steps, ok, expected)
        _check("CosineLR", "min_lr", min_lr, 0 <= min_lr <= lr, f"in [0, lr={lr}]")
        self.lr, self.min_lr = float(lr), float(min_lr)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int, progress: float | None = None) -> float:
        if step < self.warmup_steps:
            return self.lr * step / self.warmup_steps
        if progress is None:
            if self.total_steps is None:
                raise InputError("CosineLR: without total_steps, expected the progress too")
            progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        q = min(max(progress, 0.0), 1.0)
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * q)) / 2


class WarmupLR:
    """Linear warm-up from 0, then constant: ``lr(step) = lr * min(1, step / warmup_steps)``."""

    def __init__(self, lr: float, warmup_steps: int) -> None:
        _check("WarmupLR", "warmup_steps", warmup_steps, warmup_steps >= 0, ">= 0")
        self.lr, self.warmup_steps = float(lr), int(warmup_steps)

    def __call__(self, step: int) -> float:
        if step >= self.warmup_steps:
            return self.lr
        return self.lr * step / self.warmup_steps


def apply_schedule(optimizer: Optimizer, schedule: Callable[[int], float], step: int) -> float:
    """Set ``optimizer.lr = schedule(step)`` and return that lr."""
    optimizer.lr = float(schedule(step))
    return optimizer.lr
