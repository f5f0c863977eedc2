"""`LayerNorm`: normalisation over the last axis, PyTorch's names (``weight``, ``bias``).

    mu = mean(x)   var = mean((x - mu)^2)   r = 1 / sqrt(var + eps)
    xh = (x - mu) r                         y = xh * weight + bias

Backward, with ``g = dy * weight`` and means over the last axis (N features):

    dweight = sum(dy * xh)   dbias = sum(dy)       (over every leading axis)
    dx = r (g - mean(g) - xh mean(g * xh))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, ShapeError
from .checks import as_float_array, check_finite, flag, positive_int, resolve_dtype, show
from .module import Module


@dataclass(frozen=True)
class LayerNormConfig:
    normalized_shape: int
    eps: float = 1e-5
    elementwise_affine: bool = True
    dtype: str = "float32"


class LayerNorm(Module):
    """``LayerNorm(normalized_shape, eps=1e-5)``: ``(..., N)`` in and out."""

    config_class = LayerNormConfig

    def __init__(
        self,
        normalized_shape: int,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)) and len(normalized_shape) == 1:
            normalized_shape = normalized_shape[0]  # torch's (N,) form, last axis only
        self.normalized_shape = positive_int("LayerNorm", "normalized_shape", normalized_shape)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise InputError(f"LayerNorm: eps must be a positive number, got {show(eps)}")
        self.eps = float(eps)
        self.elementwise_affine = flag("LayerNorm", "elementwise_affine", elementwise_affine)
        self.dtype = resolve_dtype("LayerNorm", dtype)
        if self.elementwise_affine:
            self._add_param("weight", np.ones(self.normalized_shape, self.dtype))
            self._add_param("bias", np.zeros(self.normalized_shape, self.dtype))

    @property
    def config(self) -> LayerNormConfig:
        N = self.normalized_shape
        return LayerNormConfig(N, self.eps, self.elementwise_affine, self.dtype.name)

    def _prepare(self, x) -> np.ndarray:
        x = as_float_array("LayerNorm", "input", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.normalized_shape:
            raise ShapeError(
                f"LayerNorm: expected input of shape (..., {self.normalized_shape}), got "
                f"{tuple(x.shape)}"
            )
        return x

    def _forward(self, x: np.ndarray):
        mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        r = 1.0 / np.sqrt(var + self.eps)  # (..., 1)
        xh = (x - mu) * r  # (..., N)
        if not self.elementwise_affine:
            return xh, xh, r
        return xh * self.params["weight"] + self.params["bias"], xh, r

    def __call__(self, x) -> np.ndarray:
        return self._forward(self._prepare(x))[0]

    def forward_train(self, x):
        """``y, backward``; ``dx = backward(dy)``; weight and bias gradients accumulate."""
        x = self._prepare(x)
        check_finite("LayerNorm", "input", x)
        y, xh, r = self._forward(x)

        def backward(dy):
            dy = as_float_array("LayerNorm", "dy", dy, self.dtype)
            if dy.shape != y.shape:
                raise ShapeError(
                    f"LayerNorm: expected dy of shape {y.shape}, got {tuple(dy.shape)}"
                )
            N = self.normalized_shape
            if self.elementwise_affine:
                self.grads["weight"] += (dy * xh).reshape(-1, N).sum(axis=0)
                self.grads["bias"] += dy.reshape(-1, N).sum(axis=0)
                g = dy * self.params["weight"]  # gradient reaching xh
            else:
                g = dy
            # back through the centring and the scaling by r, which both depend on x
            mg = g.mean(axis=-1, keepdims=True)
            mgx = (g * xh).mean(axis=-1, keepdims=True)
            return r * (g - mg - xh * mgx)

        return y, backward
