"""Learning-rate schedules: each maps a 0-based step to a learning rate.

schedule = CosineLR(3e-3, total_steps=10_000, warmup_steps=200)
apply_schedule(optimizer, schedule, step)   # sets optimizer.lr
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .errors import InputError
from .optim import Optimizer, _check

__all__ = ["ConstantLR", "CosineLR", "StepLR", "WarmupLR", "apply_schedule"]


def _count(owner: str, arg: str, value: object, least: int) -> int:
    """A whole number of steps, at least ``least``; a one-line error otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{owner}: expected {arg} an integer >= {least}, got {value!r:.60}")
    if value < least:
        raise InputError(f"{owner}: expected {arg} an integer >= {least}, got {value}")
    return int(value)


class ConstantLR:
    """``lr(step) = lr``."""

    def __init__(self, lr: float) -> None:
        _check("ConstantLR", "lr", lr, lambda v: v >= 0, ">= 0")
        self.lr = float(lr)

    def __call__(self, step: int) -> float:
        _count("ConstantLR", "step", step, 0)
        return self.lr


class StepLR:
    """``lr(step) = lr * gamma ** (step // step_size)``."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        _check("StepLR", "lr", lr, lambda v: v >= 0, ">= 0")
        _count("StepLR", "step_size", step_size, 1)
        _check("StepLR", "gamma", gamma, lambda v: v >= 0, ">= 0")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def __call__(self, step: int) -> float:
        step = _count("StepLR", "step", step, 0)
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
        _check("CosineLR", "lr", lr, lambda v: v >= 0, ">= 0")
        _count("CosineLR", "warmup_steps", warmup_steps, 0)
        if total_steps is not None:
            _count("CosineLR", "total_steps", total_steps, 1)
            if not warmup_steps < total_steps:
                raise InputError(
                    f"CosineLR: expected warmup_steps in [0, total_steps={total_steps}), "
                    f"got {warmup_steps}"
                )
        _check("CosineLR", "min_lr", min_lr, lambda v: 0 <= v <= lr, f"in [0, lr={lr}]")
        self.lr, self.min_lr = float(lr), float(min_lr)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int, progress: float | None = None) -> float:
        step = _count("CosineLR", "step", step, 0)
        if progress is not None:
            _check("CosineLR", "progress", progress, lambda v: not math.isnan(v), "other than NaN")
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
        _check("WarmupLR", "lr", lr, lambda v: v >= 0, ">= 0")
        _count("WarmupLR", "warmup_steps", warmup_steps, 0)
        self.lr, self.warmup_steps = float(lr), int(warmup_steps)

    def __call__(self, step: int) -> float:
        step = _count("WarmupLR", "step", step, 0)
        if step >= self.warmup_steps:
            return self.lr
        return self.lr * step / self.warmup_steps


def apply_schedule(optimizer: Optimizer, schedule: Callable[[int], float], step: int) -> float:
    """Set ``optimizer.lr = schedule(step)`` and return that lr."""
    if not isinstance(optimizer, Optimizer):
        raise InputError(
            f"apply_schedule: expected an rnnkit optimizer, got {type(optimizer).__name__}"
        )
    if not callable(schedule):
        raise InputError(
            f"apply_schedule: expected a schedule (step -> lr), got {type(schedule).__name__}"
        )
    lr = schedule(step)
    _check("apply_schedule", "the schedule's lr", lr, lambda v: v >= 0, ">= 0")
    optimizer.lr = float(lr)
    return optimizer.lr
