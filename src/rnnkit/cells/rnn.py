r"""The Elman RNN cell.

    h = \phi(W_ih x + b_ih + W_hh h_prev + b_hh),   \phi = tanh or relu

Carry: ``(h,)``. One gate block (G = 1). Backward, with ``a`` the pre-activation:

    da      = dh * \phi'(a)          tanh: 1 - h^2;  relu: [h > 0]
    dh_prev = da W_hh
"""

from __future__ import annotations

import numpy as np

from ..kernels import cells as kc
from ..kernels import loops as kl
from ..kernels import step as ks
from .base import CellKernels, CellSpec


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


# -- the compiled kernels, in the signatures every cell shares (`CellKernels`) ----------------
def _kernels(relu: bool) -> CellKernels:
    def forward_loop(xi, W_hh, P, b_hh, m, hs, cs, y, acts, extra, hh, keep, i0, i1):
        kl.rnn_forward_loop(xi, W_hh, P, b_hh, m, hs, y, acts, hh, keep, relu, i0, i1)

    def backward_loop(
        W_hhT, P, dhmat, dhpass, dy, dc, m, acts, extra, hs, cs, dxi, dhh, dh_in, i0, i1
    ):
        kl.rnn_backward_loop(W_hhT, P, dhmat, dhpass, dy, m, acts, dxi, dh_in, relu, i0, i1)

    def rows(xi, hh, b_hh, h_prev, c_prev, m, h, c, y, acts, extra):
        kc.rnn_forward(xi, hh, b_hh, h_prev, m, h, y, acts, relu)

    return CellKernels(
        code=ks.RNN_RELU if relu else ks.RNN_TANH,
        forward_loop=forward_loop,
        backward_loop=backward_loop,
        rows=rows,
        step=ks.rnn_relu_step if relu else ks.rnn_tanh_step,
        keeps_extra=False,  # the activation is all the backward needs
        joins_biases=True,
    )


RNN_TANH = CellSpec("RNN_TANH", 1, 1, step_forward_tanh, step_backward_tanh, _kernels(False))
RNN_RELU = CellSpec("RNN_RELU", 1, 1, step_forward_relu, step_backward_relu, _kernels(True))
