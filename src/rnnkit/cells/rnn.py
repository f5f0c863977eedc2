r"""The Elman RNN cell.

    h = \phi(W_ih x + b_ih + W_hh h_prev + b_hh),   \phi = tanh or relu

Carry: ``(h,)``. One gate block (G = 1). Backward, with ``a`` the pre-activation:

    da      = dh * \phi'(a)          tanh: 1 - h^2;  relu: [h > 0]
    dh_prev = da W_hh
"""

from __future__ import annotations

import numpy as np

from .base import CellSpec


def _hidden_projection(h_prev: np.ndarray, W_hh: np.ndarray, b_hh: np.ndarray | None) -> np.ndarray:
    hh = h_prev @ W_hh.T  # (B, H)
    if b_hh is not None:
        hh += b_hh
    return hh


def step_forward_tanh(xi, carry, W_hh, b_hh):
    (h_prev,) = carry
    h = np.tanh(xi + _hidden_projection(h_prev, W_hh, b_hh))
    return (h,), (h,)


def step_backward_tanh(dcarry, cache, W_hh):
    (dh,) = dcarry
    (h,) = cache
    da = dh * (1.0 - h * h)  # backprop through tanh
    return da, da, (da @ W_hh,)


def step_forward_relu(xi, carry, W_hh, b_hh):
    (h_prev,) = carry
    h = np.maximum(xi + _hidden_projection(h_prev, W_hh, b_hh), 0.0)
    return (h,), (h,)


def step_backward_relu(dcarry, cache, W_hh):
    (dh,) = dcarry
    (h,) = cache
    da = dh * (h > 0)  # backprop through relu: passes where the unit was active
    return da, da, (da @ W_hh,)


RNN_TANH = CellSpec("RNN_TANH", 1, 1, step_forward_tanh, step_backward_tanh)
RNN_RELU = CellSpec("RNN_RELU", 1, 1, step_forward_relu, step_backward_relu)
