"""What a cell is to the sequence loop: its step forward and step backward, and its carry.

A cell's *carry* is a tuple of ``(B, H)`` arrays: ``(h,)`` for RNN and GRU, ``(h, c)`` for LSTM.
The input projection ``xi = x_t W_ih^T + b_ih`` is computed for all steps before the loop, so a
step receives ``xi`` of shape ``(B, G*H)`` where ``G`` is the cell's number of gate blocks.

``step_forward(xi, carry, W_hh, b_hh) -> (carry, cache)`` and
``step_backward(dcarry, cache, W_hh) -> (dxi, dhh, dcarry_prev)``, where ``dxi`` is the gradient
with respect to the input projection and ``dhh`` with respect to the hidden projection
``hh = h_prev W_hh^T + b_hh``. They are the same array except in the GRU, whose reset gate
multiplies the hidden projection of the candidate.

A cell also declares, in its own file, the compiled kernels that implement it (`CellKernels`):
the engine runs a cell through that declaration and never asks for a cell by name, so adding a
cell touches its own file and its kernels, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Carry = tuple[np.ndarray, ...]
StepForward = Callable[[np.ndarray, Carry, np.ndarray, "np.ndarray | None"], tuple[Carry, tuple]]
StepBackward = Callable[[Carry, tuple, np.ndarray], tuple[np.ndarray, np.ndarray, Carry]]


@dataclass(frozen=True)
class CellKernels:
    """The compiled kernels of one cell, each with one signature shared by every cell, so that
    the engine calls them without knowing which cell it runs (`rnnkit.engine`).

    ``forward_loop(xi, W_hh, P, b_hh, m, hs, cs, y, acts, extra, hh, keep, i0, i1)`` and
    ``backward_loop(W_hhT, P, dhmat, dhpass, dy, dc, m, acts, extra, hs, cs, dxi, dhh, dh_in,
    i0, i1)``: the batch time loops (`rnnkit.kernels.loops`); ``cs``/``dc`` are the LSTM's
    cell state, ``extra`` what a cell keeps beside its gates (LSTM ``tanh(c)``, GRU ``hn``),
    None where the cell has none. ``rows(xi, hh, b_hh, h_prev, c_prev, m, h, c, y, acts,
    extra)``: one step of a batch (`rnnkit.kernels.cells`). ``step(x, W_ih, s_ih, W_hh, s_hh,
    b_ih, b_hh, h, c, new, y, k, xw)``: one step of one stream (`rnnkit.kernels.step`).
    ``code``: the cell for the kernels that take it as a number (the single-sequence loops and
    the split stream step).
    """

    code: int
    forward_loop: Callable[..., None]
    backward_loop: Callable[..., None]
    rows: Callable[..., None]
    step: Callable[..., bool]
    keeps_extra: bool  # the forward keeps an (T, B, H) array beside the gates
    joins_biases: bool  # b_ih and b_hh add to the same sums (not the GRU's candidate)


@dataclass(frozen=True)
class CellSpec:
    """A cell type as the sequence loop and the layers see it."""

    name: str  # PyTorch's mode name: RNN_TANH, RNN_RELU, LSTM, GRU
    gates: int  # number of H-sized blocks in W_ih and W_hh
    carry_size: int  # 1 for (h,), 2 for (h, c)
    step_forward: StepForward
    step_backward: StepBackward
    kernels: CellKernels
    separate_hidden_grad: bool = False  # True when dhh differs from dxi (GRU)

    @property
    def has_cell_state(self) -> bool:
        """Whether the carry holds a cell state beside ``h`` (the LSTM's ``c``)."""
        return self.carry_size == 2

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
