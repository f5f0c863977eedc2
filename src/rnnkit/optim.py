"""Optimizers and global-norm gradient clipping (learning-rate schedules: `schedules`).

Every optimizer reproduces the matching ``torch.optim`` class (its single-tensor update, same
defaults). ``params`` is a Module-like object (``named_parameters()`` and ``named_grads()``
returning dicts with the same keys) or a tuple ``(params, grads)`` of two such dicts. ``step()``
reads the current gradients and updates the parameter arrays in place, so every reference to
them stays valid. ``lr`` is a plain attribute that a schedule may change between steps.

Symbols in the docstrings: ``theta`` parameter, ``g`` gradient, ``t`` step count from 1,
``lr`` learning rate, ``lambda`` weight decay, ``mu`` momentum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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
]


class HasParameters(Protocol):
    """What an optimizer needs from a model (`rnnkit.layers.module.Module` has it)."""

    def named_parameters(self) -> dict[str, np.ndarray]: ...

    def named_grads(self) -> dict[str, np.ndarray]: ...


Params = HasParameters | tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


def _check(owner: str, arg: str, value: Any, ok: Callable[[float], bool], expected: str) -> None:
    """One-line error naming the component, the argument, what was expected and what came,
    when ``value`` is not a real number or ``ok(value)`` is false."""
    number = isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, (bool, np.bool_)) or not number:
        raise InputError(f"{owner}: expected {arg} a number {expected}, got {value!r:.60}")
    if not ok(value):
        raise InputError(f"{owner}: expected {arg} {expected}, got {value!r}")


class Optimizer:
    """Base class: parameter bookkeeping and state dicts.

    A subclass names its per-parameter buffers in ``_buffer_names()`` (stored as
    ``"<buffer>.<key>"`` in ``self.buffers``) and implements ``_update(key, theta, g)``, called
    once per parameter with ``self.t`` already counting the current step.
    """

    def __init__(self, params: Params, lr: float) -> None:
        name = type(self).__name__
        if isinstance(params, tuple) and len(params) == 2:
            self._source: Any = None
            self._params, self._grads = params
        elif hasattr(params, "named_parameters") and hasattr(params, "named_grads"):
            self._source = params
        else:
            raise InputError(
                f"{name}: expected a module with named_parameters()/named_grads() or a "
                f"(params, grads) tuple, got {type(params).__name__}"
            )
        _check(name, "lr", lr, lambda v: v >= 0, ">= 0")
        self.lr = float(lr)
        self.t = 0  # steps taken so far
        p, g = self.parameters(), self.gradients()
        unpaired = sorted(set(p) ^ set(g))
        if unpaired:
            raise ShapeError(f"{name}: key {unpaired[0]!r} is in only one of params and grads")
        for key, theta in p.items():
            if g[key].shape != theta.shape:
                raise ShapeError(
                    f"{name}: expected gradient {key!r} of shape {theta.shape}, got {g[key].shape}"
                )
        self.buffers = {
            f"{b}.{key}": np.zeros_like(theta)
            for b in self._buffer_names()
            for key, theta in p.items()
        }

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

    def state_dict(self) -> dict[str, Any]:
        """``{"optimizer": name, "step": int, "lr": float, "buffers": {key: array copy}}``."""
        buffers = {k: v.copy() for k, v in self.buffers.items()}
        return {"optimizer": type(self).__name__, "step": self.t, "lr": self.lr, "buffers": buffers}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` exactly; raises `CheckpointError` on any mismatch."""
        name = type(self).__name__
        if state.get("optimizer") != name:
            raise CheckpointError(
                f"{name}: expected a {name} state, got {state.get('optimizer')!r}"
            )
        buffers = state["buffers"]
        unpaired = sorted(set(self.buffers) ^ set(buffers))
        if unpaired:
            which = "missing" if unpaired[0] in self.buffers else "unexpected"
            raise CheckpointError(f"{name}: {which} buffer {unpaired[0]!r}")
        for key, dst in self.buffers.items():
            if np.shape(buffers[key]) != dst.shape:
                shape = np.shape(buffers[key])
                raise CheckpointError(
                    f"{name}: buffer {key!r} expected shape {dst.shape}, got {shape}"
                )
        for key, dst in self.buffers.items():
            dst[...] = buffers[key]
        self.t, self.lr = int(state["step"]), float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (``torch.optim.SGD``)::

    g <- g + lambda * theta
    b <- g  (t = 1),   b <- mu * b + (1 - dampening) * g  (t > 1)     (momentum_buffer)
    g <- g + mu * b  (nesterov),   g <- b  (otherwise; only when mu != 0)
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
        name = type(self).__name__
        _check(name, "momentum", momentum, lambda v: v >= 0, ">= 0")
        _check(name, "weight_decay", weight_decay, lambda v: v >= 0, ">= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise InputError(f"{name}: nesterov requires momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov, self.weight_decay = bool(nesterov), float(weight_decay)
        super().__init__(params, lr)

    def _buffer_names(self) -> list[str]:
        return ["momentum_buffer"] if self.momentum != 0 else []

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * theta
        if self.momentum != 0:
            b = self.buffers[f"momentum_buffer.{key}"]
            if self.t == 1:
                b[...] = g  # the buffer starts at the first gradient, undamped
            else:
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        theta -= self.lr * g


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (``torch.optim.Adam``)::

    g <- g + lambda * theta
    m <- beta1 * m + (1 - beta1) * g                 (exp_avg)
    v <- beta2 * v + (1 - beta2) * g^2               (exp_avg_sq)
    theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _decoupled = False  # AdamW: decay theta directly instead of adding lambda * theta to g

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        name = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise InputError(f"{name}: expected betas a pair of numbers, got {betas!r:.60}")
        _check(name, "betas[0]", betas[0], lambda v: 0 <= v < 1, "in [0, 1)")
        _check(name, "betas[1]", betas[1], lambda v: 0 <= v < 1, "in [0, 1)")
        _check(name, "eps", eps, lambda v: v > 0, "> 0")
        _check(name, "weight_decay", weight_decay, lambda v: v >= 0, ">= 0")
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        super().__init__(params, lr)

    def _buffer_names(self) -> list[str]:
        return ["exp_avg", "exp_avg_sq"]

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            if self._decoupled:
                theta *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * theta
        m, v = self.buffers[f"exp_avg.{key}"], self.buffers[f"exp_avg_sq.{key}"]
        m += (1 - self.beta1) * (g - m)  # = beta1 * m + (1 - beta1) * g, as torch.lerp_
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        step_size = self.lr / (1 - self.beta1**self.t)  # bias correction of m folded into lr
        denom = np.sqrt(v) / (1 - self.beta2**self.t) ** 0.5 + self.eps
        theta += -step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``)::

    theta <- theta * (1 - lr * lambda), then the Adam update without lambda in g
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
    s <- alpha * s + (1 - alpha) * g^2                   (square_avg)
    a <- alpha * a + (1 - alpha) * g    (centered)       (grad_avg)
    d <- sqrt(s - a^2) + eps  (centered),   sqrt(s) + eps  (otherwise)
    b <- mu * b + g / d,  theta <- theta - lr * b  (mu > 0)    (momentum_buffer)
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
        name = type(self).__name__
        _check(name, "alpha", alpha, lambda v: 0 <= v < 1, "in [0, 1)")
        _check(name, "eps", eps, lambda v: v > 0, "> 0")
        _check(name, "momentum", momentum, lambda v: v >= 0, ">= 0")
        _check(name, "weight_decay", weight_decay, lambda v: v >= 0, ">= 0")
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)
        self.centered, self.weight_decay = bool(centered), float(weight_decay)
        super().__init__(params, lr)

    def _buffer_names(self) -> list[str]:
        names = ["square_avg"]
        names += ["grad_avg"] if self.centered else []
        names += ["momentum_buffer"] if self.momentum > 0 else []
        return names

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * theta
        s = self.buffers[f"square_avg.{key}"]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        if self.centered:
            a = self.buffers[f"grad_avg.{key}"]
            a += (1 - self.alpha) * (g - a)
            d = np.sqrt(s - a * a)  # running variance instead of the raw second moment
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
    s <- s + g^2          (sum, starting at initial_accumulator_value)
    theta <- theta - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)
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
        name, init = type(self).__name__, initial_accumulator_value
        _check(name, "lr_decay", lr_decay, lambda v: v >= 0, ">= 0")
        _check(name, "weight_decay", weight_decay, lambda v: v >= 0, ">= 0")
        _check(name, "initial_accumulator_value", init, lambda v: v >= 0, ">= 0")
        _check(name, "eps", eps, lambda v: v > 0, "> 0")
        self.lr_decay, self.weight_decay, self.eps = (
            float(lr_decay),
            float(weight_decay),
            float(eps),
        )
        super().__init__(params, lr)
        for key in self.parameters():
            self.buffers[f"sum.{key}"].fill(init)

    def _buffer_names(self) -> list[str]:
        return ["sum"]

    def _update(self, key: str, theta: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * theta
        clr = self.lr / (1 + (self.t - 1) * self.lr_decay)
        s = self.buffers[f"sum.{key}"]
        s += g * g
        theta += -clr * (g / (np.sqrt(s) + self.eps))


def clip_grad_norm(grads: HasParameters | Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so that their global L2 norm is at most ``max_norm``.

    ``norm = sqrt(sum of g^2 over every gradient element)``, in float64. When
    ``c = max_norm / (norm + 1e-6) < 1`` every gradient is multiplied by ``c``, as
    ``torch.nn.utils.clip_grad_norm_`` does. Returns the norm before clipping. A non-finite
    norm is returned as is and nothing is scaled (the training loop treats it as divergence).
    """
    _check("clip_grad_norm", "max_norm", max_norm, lambda v: v > 0, "> 0")
    arrays = grads.named_grads() if hasattr(grads, "named_grads") else grads
    if not isinstance(arrays, Mapping) or not all(
        isinstance(g, np.ndarray) and g.dtype.kind == "f" for g in arrays.values()
    ):
        raise InputError(
            "clip_grad_norm: expected a module or a dict of float gradient arrays, got "
            f"{type(grads).__name__}"
        )
    norm = math.sqrt(math.fsum(np.sum(np.square(g, dtype=np.float64)) for g in arrays.values()))
    coef = float(max_norm) / (norm + 1e-6)
    if math.isfinite(norm) and coef < 1.0:
        for g in arrays.values():
            g *= coef
    return norm
