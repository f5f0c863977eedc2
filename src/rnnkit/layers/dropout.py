"""`Dropout`: inverted dropout, per element or one mask per sequence ("variational").

    m ~ Bernoulli(1 - p) / (1 - p)        y = m * x        dx = m * dy

Standard dropout draws ``m`` for every element. Variational dropout (Gal and Ghahramani, 2016)
draws one mask ``(1, B, F)`` per sequence and uses it at every step of a ``(T, B, F)`` input, so
a recurrent layer's inputs (or outputs) lose the same features all along a sequence. Dividing
by ``1 - p`` keeps the expected value: ``E[y] = x``.

``forward_train`` drops while the module is in training mode (the default; ``eval()`` turns it
off, ``train()`` on, and both reach every child of a container); inference ``module(x)`` never
drops. Masks come from the module's own generator, seeded by ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from .checks import check_finite, flag, like_input, probability, seed_value
from .module import Module


@dataclass(frozen=True)
class DropoutConfig:
    p: float = 0.5
    variational: bool = False


class Dropout(Module):
    """``Dropout(p, variational=False, seed=None)``; shapes are kept."""

    config_class = DropoutConfig

    def __init__(self, p: float = 0.5, variational: bool = False, seed: int | None = None) -> None:
        super().__init__()
        self.p = probability("Dropout", "p", p)
        self.variational = flag("Dropout", "variational", variational)
        self.rng = np.random.default_rng(seed_value("Dropout", seed))
        self.training = True  # forward_train drops until eval()

    @property
    def config(self) -> DropoutConfig:
        return DropoutConfig(self.p, self.variational)

    def _prepare(self, x) -> np.ndarray:
        x = like_input("Dropout", "input", x)
        if self.variational and x.ndim != 3:
            raise ShapeError(
                f"Dropout: variational dropout expects input of shape (T, B, F), got "
                f"{tuple(x.shape)}"
            )
        return x

    def mask(self, shape: tuple, dtype) -> np.ndarray:
        """A scaled mask: ``(1, B, F)`` for variational dropout, else ``shape``."""
        keep = 1.0 - self.p
        draw = (1, *shape[1:]) if self.variational else shape
        assert self.rng is not None
        return (self.rng.random(draw) < keep).astype(dtype) / dtype.type(keep)

    def __call__(self, x) -> np.ndarray:
        """Inference: the identity."""
        return self._prepare(x)

    def forward_train(self, x):
        """``y, backward``: ``y = m * x`` in training mode, ``x`` after ``eval()``."""
        x = self._prepare(x)
        check_finite("Dropout", "input", x)
        if not self.training or self.p == 0:
            return x, lambda dy: like_input("Dropout", "dy", dy).astype(x.dtype, copy=False)
        m = self.mask(x.shape, x.dtype)  # (T, B, F) or (1, B, F): broadcast over steps
        y = x * m

        def backward(dy):
            dy = like_input("Dropout", "dy", dy).astype(x.dtype, copy=False)
            if dy.shape != y.shape:
                raise ShapeError(f"Dropout: expected dy of shape {y.shape}, got {tuple(dy.shape)}")
            return dy * m  # the same mask lets the gradient through

        return y, backward
