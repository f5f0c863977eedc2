"""Central finite differences, the float64 oracle of every gradient test."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numeric_grad(f: Callable[[], float], arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every element of ``arr``,
    which is changed in place and restored: ``(f(arr + eps) - f(arr - eps)) / (2 eps)``."""
    grad = np.zeros_like(arr, dtype=np.float64)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        plus = f()
        arr[i] = old - eps
        minus = f()
        arr[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad
