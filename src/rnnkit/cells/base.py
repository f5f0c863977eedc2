"""What a cell is to the sequence loop: its step forward and step backward, and its carry.

A cell's *carry* is a tuple of ``(B, H)`` arrays: ``(h,)`` for RNN and GRU, ``(h, c)`` for LSTM.
The input projection ``xi = x_t W_ih^T + b_ih`` is computed for all steps before the loop, so a
step receives ``xi`` of shape ``(B, G*H)`` where ``G`` is the cell's number of gate blocks.

``step_forward(xi, carry, W_hh, b_hh) -> (carry, cache)`` and
``step_backward(dcarry, cache, W_hh) -> (dxi, dhh, dcarry_prev)``, where ``dxi`` is the gradient
with respect to the input projection and ``dhh`` with respect to the hidden projection
``hh = h_prev W_hh^T + b_hh``. They are the same array except in the GRU, whose reset gate
multiplies the hidden projection of the candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Carry = tuple[np.ndarray, ...]
StepForward = Callable[[np.ndarray, Carry, np.ndarray, "np.ndarray | None"], tuple[Carry, tuple]]
StepBackward = Callable[[Carry, tuple, np.ndarray], tuple[np.ndarray, np.ndarray, Carry]]


@dataclass(frozen=True)
class CellSpec:
    """A cell type as the sequence loop and the layers see it."""

    name: str  # PyTorch's mode name: RNN_TANH, RNN_RELU, LSTM, GRU
    gates: int  # number of H-sized blocks in W_ih and W_hh
    carry_size: int  # 1 for (h,), 2 for (h, c)
    step_forward: StepForward
    step_backward: StepBackward
    separate_hidden_grad: bool = False  # True when dhh differs from dxi (GRU)

    def initial_carry(self, batch: int, hidden: int, dtype: np.dtype) -> Carry:
        return tuple(np.zeros((batch, hidden), dtype=dtype) for _ in range(self.carry_size))


def sigmoid(a: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large |a| (no overflow warning)."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def input_projection(x: np.ndarray, W_ih: np.ndarray, b_ih: np.ndarray | None) -> np.ndarray:
    """``x W_ih^T (+ b_ih)`` for every step at once, one product: ``(T, B, F) -> (T, B, G*H)``."""
    T, B, F = x.shape
    xi = x.reshape(T * B, F) @ W_ih.T
    if b_ih is not None:
        xi += b_ih
    return xi.reshape(T, B, -1)
