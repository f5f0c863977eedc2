"""Optimizers, global-norm gradient clipping and learning-rate schedules.

Every optimizer reproduces the update of the matching ``torch.optim`` class (its single-tensor
path, same defaults). ``params`` is a Module-like object (anything with ``named_parameters()``
and ``named_grads()`` returning dicts with the same keys) or a tuple ``(params, grads)`` of two
such dicts. ``step()`` reads the current gradients and updates the parameter arrays in place, so
every reference to them stays valid. ``lr`` is a plain attribute that a schedule may change
between steps (see `apply_schedule`).

Symbols in the docstrings: ``theta`` parameter, ``g`` gradient, ``t`` step count from 1,
``lr`` learning rate, ``lambda`` weight decay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from .errors import CheckpointError, InputError, ShapeError

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "clip_grad_norm",
    "ConstantLR",
    "StepLR",
    "CosineLR",
    "WarmupLR",
    "apply_schedule",
]


class HasParameters(Protocol):
    """What an optimizer needs from a model (`rnnkit.layers.module.Module` has it)."""

    def named_parameters(self) -> dict[str, np.ndarray]: ...

    def named_grads(self) -> dict[str, np.ndarray]: ...


Params = HasParameters | tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


def _lerp_(x: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``x <- x + weight * (end - x)`` in place, rounded as ``torch.lerp`` does."""
    if weight < 0.5:
        x += weight * (end - x)
    else:
        x[...] = end - (end - x) * (1 - weight)


class Optimizer:
    """Base class: parameter bookkeeping, hyperparameter checks, state dicts.

    Subclasses list their per-parameter buffer names in ``_buffer_names()`` and implement
    ``_update(key, theta, g)``, which is called once per parameter with ``self.t`` already
    counting the current step.
    """

    def __init__(self, params: Params, lr: float) -> None:
        name = type(self).__name__
        if isinstance(params, tuple):
            if len(params) != 2:
                raise InputError(f"{name}: expected params as (params, grads), got {len(params)}")
            self._source: Any = None
            self._params, self._grads = params
        elif hasattr(params, "named_parameters") and hasattr(params, "named_grads"):
            self._source = params
        else:
            raise InputError(
                f"{name}: expected a module with named_parameters()/named_grads() or a "
                f"(params, grads) tuple, got {type(params).__name__}"
            )
        self._check_nonneg("lr", lr)
        self.lr = float(lr)
        self.t = 0  # number of steps taken
        p, g = self.parameters(), self.gradients()
        if set(p) != set(g):
            diff = sorted(set(p) ^ set(g))
            raise ShapeError(f"{name}: parameters and gradients differ in key {diff[0]!r}")
        for key, theta in p.items():
            if g[key].shape != theta.shape:
                raise ShapeError(
                    f"{name}: expected gradient {key!r} of shape {theta.shape}, "
                    f"got {g[key].shape}"
                )
        self.buffers: dict[str, np.ndarray] = {
            f"{b}.{key}": np.zeros_like(theta) for b in self._buffer_names() for key, theta in p.items()
        }

    # -- hyperparameter checks (one-line errors naming the optimizer and argument) ----------
    def _check_nonneg(self, arg: str, value: float) -> None:
        if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
            raise InputError(f"{type(self).__name__}: expected {arg} >= 0, got {value!r}")

    def _check_positive(self, arg: str, value: float) -> None:
        if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
            raise InputError(f"{type(self).__name__}: expected {arg} > 0, got {value!r}")

    def _check_unit(self, arg: str, value: float) -> None:
        if not (isinstance(value, int | float) and 0 <= value < 1):
            raise InputError(f"{type(self).__name__}: expected {arg} in [0, 1), got {value!r}")

    # -- parameters -------------------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """Live parameter arrays, by key."""
        return self._params if self._source is None else self._source.named_parameters()

    def gradients(self) -> dict[str, np.ndarray]:
        """Live gradient arrays, by key (read afresh at every step)."""
        return self._grads if self._source is None else self._source.named_grads()

    def _buffer_names(self) -> list[str]:
        return []

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def step(self) -> None:
        """Apply one update to every parameter, in place, from the current gradients."""
        self.t += 1
        grads = self.gradients()
        for key, theta in self.parameters().items():
            self._update(key, theta, grads[key])

    # -- state dicts ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"optimizer", "step", "lr", "buffers"}``: scalars plus copies of the buffers."""
        return {
            "optimizer": type(self).__name__,
            "step": self.t,
            "lr": self.lr,
            "buffers": {k: v.copy() for k, v in self.buffers.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` exactly; raises `CheckpointError` on any mismatch."""
        name = type(self).__name__
        if state.get("optimizer") != name:
            raise CheckpointError(f"{name}: expected a {name} state, got {state.get('optimizer')!r}")
        buffers = state["buffers"]
        for key in set(self.buffers) ^ set(buffers):
            which = "missing" if key in self.buffers else "unexpected"
            raise CheckpointError(f"{name}: {which} buffer {key!r}")
        for key, dst in self.buffers.items():
            src = np.asarray(buffers[key])
            if src.shape != dst.shape:
                raise CheckpointError(
                    f"{name}: buffer {key!r} expected shape {dst.shape}, got {src.shape}"
                )
        for key, dst in self.buffers.items():
            dst[...] = buffers[key]
        self.t = int(state["step"])
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (``torch.optim.SGD``)::

        g <- g + lambda * theta
        b <- g  (t = 1),   b <- mu * b + (1 - dampening) * g  (t > 1)
        g <- g + mu * b  (nesterov)   or   g <- b  (otherwise; only if mu != 0)
        theta <- theta - lr * g
    """

    def __init__(
        self,
        params: Params,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov, self.weight_decay = bool(nesterov), float(weight_decay)
        self._check_nonneg("momentum", momentum)
        self._check_nonneg("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise InputError("SGD: nesterov requires momentum > 0 and dampening = 0")
        super().__init__(params, lr)

    def _buffer_names(self) -> list[str]:
        return ["momentum_buffer"] if self.momentum != 0 else []

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * theta
        if self.momentum != 0:
            b = self.buffers[f"momentum_buffer.{key}"]
            if self.t == 1:
                b[...] = g  # the first step starts the buffer at g, undamped
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        theta -= self.lr * g


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (``torch.optim.Adam``)::

        g <- g + lambda * theta
        m <- beta1 * m + (1 - beta1) * g             (exp_avg)
        v <- beta2 * v + (1 - beta2) * g^2           (exp_avg_sq)
        theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _decoupled = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        self._check_unit("betas[0]", betas[0])
        self._check_unit("betas[1]", betas[1])
        self._check_positive("eps", eps)
        self._check_nonneg("weight_decay", weight_decay)
        super().__init__(params, lr)

    def _buffer_names(self) -> list[str]:
        return ["exp_avg", "exp_avg_sq"]

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            if self._decoupled:
                theta *= 1 - self.lr * self.weight_decay  # AdamW: shrink theta directly
            else:
                g = g + self.weight_decay * theta  # Adam: L2 term in the gradient
        m = self.buffers[f"exp_avg.{key}"]
        v = self.buffers[f"exp_avg_sq.{key}"]
        _lerp_(m, g, 1 - self.beta1)
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        step_size = self.lr / (1 - self.beta1**self.t)
        denom = np.sqrt(v) / (1 - self.beta2**self.t) ** 0.5 + self.eps
        theta += -step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``)::

        theta <- theta * (1 - lr * lambda)
        then the Adam update above, without the L2 term in g
    """

    _decoupled = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop``)::

        g <- g + lambda * theta
        s <- alpha * s + (1 - alpha) * g^2                     (square_avg)
        a <- alpha * a + (1 - alpha) * g   (centered only)     (grad_avg)
        d <- sqrt(s - a^2) + eps  (centered)   or   sqrt(s) + eps
        b <- mu * b + g / d;  theta <- theta - lr * b   (mu > 0; momentum_buffer)
        theta <- theta - lr * g / d                     (mu = 0)
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        centered: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)
        self.centered, self.weight_decay = bool(centered), float(weight_decay)
        self._check_unit("alpha", alpha)
        self._check_positive("eps", eps)
        self._check_nonneg("momentum", momentum)
        self._check_nonneg("weight_decay", weight_decay)
        super().__init__(params, lr)

    def _buffer_names(self) -> list[str]:
        names = ["square_avg"]
        if self.centered:
            names.append("grad_avg")
        if self.momentum > 0:
            names.append("momentum_buffer")
        return names

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * theta
        s = self.buffers[f"square_avg.{key}"]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        if self.centered:
            a = self.buffers[f"grad_avg.{key}"]
            _lerp_(a, g, 1 - self.alpha)
            d = np.sqrt(s + -1 * a * a)  # variance estimate instead of the raw second moment
        else:
            d = np.sqrt(s)
        d += self.eps
        if self.momentum > 0:
            b = self.buffers[f"momentum_buffer.{key}"]
            b *= self.momentum
            b += g / d
            theta += -self.lr * b
        else:
            theta += -self.lr * (g / d)


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``)::

        g <- g + lambda * theta
        lr_t <- lr / (1 + (t - 1) * lr_decay)
        s <- s + g^2                 (sum, starts at initial_accumulator_value)
        theta <- theta - lr_t * g / (sqrt(s) + eps)
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        self.lr_decay, self.weight_decay = float(lr_decay), float(weight_decay)
        self.eps = float(eps)
        self._check_nonneg("lr_decay", lr_decay)
        self._check_nonneg("weight_decay", weight_decay)
        self._check_nonneg("initial_accumulator_value", initial_accumulator_value)
        self._check_positive("eps", eps)
        super().__init__(params, lr)
        for key in self.parameters():
            self.buffers[f"sum.{key}"].fill(initial_accumulator_value)

    def _buffer_names(self) -> list[str]:
        return ["sum"]

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * theta
        clr = self.lr / (1 + (self.t - 1) * self.lr_decay)
        s = self.buffers[f"sum.{key}"]
        s += g * g
        theta += -clr * (g / (np.sqrt(s) + self.eps))
