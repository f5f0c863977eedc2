r"""The LSTM cell, in PyTorch's gate order i, f, g, o.

    [a_i, a_f, a_g, a_o] = W_ih x + b_ih + W_hh h_prev + b_hh      # (B, 4H)
    i = \sigma(a_i)    f = \sigma(a_f)    g = tanh(a_g)    o = \sigma(a_o)
    c = f * c_prev + i * g
    h = o * tanh(c)

Carry: ``(h, c)``. Backward, given dh and the gradient dc arriving from the next step:

    dc      = dc + dh * o * (1 - tanh(c)^2)
    do = dh * tanh(c)   di = dc * g   dg = dc * i   df = dc * c_prev
    dc_prev = dc * f
    da      = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]
    dh_prev = da W_hh
"""

from __future__ import annotations

import numpy as np

from ..kernels import cells as kc
from ..kernels import loops as kl
from ..kernels import step as ks
from .base import CellKernels, CellSpec, sigmoid


def step_forward(xi, carry, W_hh, b_hh):
    h_prev, c_prev = carry
    a = xi + h_prev @ W_hh.T  # (B, 4H)
    if b_hh is not None:
        a += b_hh
    H = h_prev.shape[1]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    g = np.tanh(a[:, 2 * H : 3 * H])
    o = sigmoid(a[:, 3 * H :])
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return (h, c), (c_prev, i, f, g, o, tanh_c)


def step_backward(dcarry, cache, W_hh):
    dh, dc = dcarry
    c_prev, i, f, g, o, tanh_c = cache
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # h = o tanh(c): backprop through tanh(c)
    da = np.empty(i.shape[:1] + (4 * i.shape[1],), dtype=i.dtype)  # (B, 4H)
    H = i.shape[1]
    da[:, :H] = dc * g * i * (1.0 - i)  # c = ... + i g, through the sigmoid of i
    da[:, H : 2 * H] = dc * c_prev * f * (1.0 - f)  # c = f c_prev + ..., through sigmoid
    da[:, 2 * H : 3 * H] = dc * i * (1.0 - g * g)  # c = ... + i g, through tanh of g
    da[:, 3 * H :] = dh * tanh_c * o * (1.0 - o)  # h = o tanh(c), through sigmoid of o
    dc_prev = dc * f  # the cell state's linear path: why LSTM gradients survive long spans
    return da, da, (da @ W_hh, dc_prev)


# -- the compiled kernels, in the signatures every cell shares (`CellKernels`) ----------------
def _forward_loop(xi, W_hh, P, b_hh, m, hs, cs, y, acts, extra, hh, keep, i0, i1):
    kl.lstm_forward_loop(xi, W_hh, P, b_hh, m, hs, cs, y, acts, extra, hh, keep, i0, i1)


def _backward_loop(
    W_hhT, P, dhmat, dhpass, dy, dc, m, acts, extra, hs, cs, dxi, dhh, dh_in, i0, i1
):
    kl.lstm_backward_loop(W_hhT, P, dhmat, dhpass, dy, dc, m, acts, extra, cs, dxi, dh_in, i0, i1)


KERNELS = CellKernels(
    code=ks.LSTM,
    forward_loop=_forward_loop,
    backward_loop=_backward_loop,
    rows=kc.lstm_forward,
    step=ks.lstm_step,
    keeps_extra=True,  # tanh(c)
    joins_biases=True,
)
LSTM = CellSpec("LSTM", 4, 2, step_forward, step_backward, KERNELS)
