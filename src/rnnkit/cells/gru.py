r"""The GRU cell, in PyTorch's variant: gate order r, z, n, reset applied after W_hn h.

    [xr, xz, xn] = W_ih x + b_ih          # (B, 3H), computed for all steps before the loop
    [hr, hz, hn] = W_hh h_prev + b_hh     # (B, 3H)
    r = \sigma(xr + hr)     z = \sigma(xz + hz)
    n = tanh(xn + r * hn)
    h = (1 - z) * n + z * h_prev

Carry: ``(h,)``. Backward:

    dn = dh (1 - z)     dz = dh (h_prev - n)     dan = dn (1 - n^2)
    dr = dan * hn       dar = dr r (1 - r)       daz = dz z (1 - z)
    dxi = [dar, daz, dan]          dhh = [dar, daz, dan * r]
    dh_prev = dh * z + dhh W_hh
"""

from __future__ import annotations

import numpy as np

from ..kernels import cells as kc
from ..kernels import loops as kl
from ..kernels import step as ks
from .base import CellKernels, CellSpec, sigmoid


def step_forward(xi, carry, W_hh, b_hh):
    (h_prev,) = carry
    hh = h_prev @ W_hh.T  # (B, 3H)
    if b_hh is not None:
        hh += b_hh
    H = h_prev.shape[1]
    r = sigmoid(xi[:, :H] + hh[:, :H])
    z = sigmoid(xi[:, H : 2 * H] + hh[:, H : 2 * H])
    hn = hh[:, 2 * H :]
    n = np.tanh(xi[:, 2 * H :] + r * hn)
    h = (1.0 - z) * n + z * h_prev
    return (h,), (h_prev, r, z, n, hn)


def step_backward(dcarry, cache, W_hh):
    (dh,) = dcarry
    h_prev, r, z, n, hn = cache
    H = h_prev.shape[1]
    dan = dh * (1.0 - z) * (1.0 - n * n)  # h = (1-z) n + ..., through tanh of n
    dxi = np.empty(h_prev.shape[:1] + (3 * H,), dtype=h_prev.dtype)  # (B, 3H)
    dxi[:, :H] = dan * hn * r * (1.0 - r)  # n = tanh(xn + r hn), through sigmoid of r
    dxi[:, H : 2 * H] = dh * (h_prev - n) * z * (1.0 - z)  # h interpolates n and h_prev by z
    dxi[:, 2 * H :] = dan
    dhh = dxi.copy()
    dhh[:, 2 * H :] *= r  # the reset gate scales the hidden part of the candidate
    dh_prev = dh * z + dhh @ W_hh  # direct path through z plus the path through the gates
    return dxi, dhh, (dh_prev,)


# -- the compiled kernels, in the signatures every cell shares (`CellKernels`) ----------------
def _forward_loop(xi, W_hh, P, b_hh, m, hs, cs, y, acts, extra, hh, keep, i0, i1):
    kl.gru_forward_loop(xi, W_hh, P, b_hh, m, hs, y, acts, extra, hh, keep, i0, i1)


def _backward_loop(
    W_hhT, P, dhmat, dhpass, dy, dc, m, acts, extra, hs, cs, dxi, dhh, dh_in, i0, i1
):
    kl.gru_backward_loop(W_hhT, P, dhmat, dhpass, dy, m, acts, extra, hs, dxi, dhh, dh_in, i0, i1)


def _rows(xi, hh, b_hh, h_prev, c_prev, m, h, c, y, acts, extra):
    kc.gru_forward(xi, hh, b_hh, h_prev, m, h, y, acts, extra)


KERNELS = CellKernels(
    code=ks.GRU,
    forward_loop=_forward_loop,
    backward_loop=_backward_loop,
    rows=_rows,
    step=ks.gru_step,
    keeps_extra=True,  # hn, which the reset gate multiplied
    joins_biases=False,  # the reset gate multiplies b_hn alone
)
GRU = CellSpec("GRU", 3, 1, step_forward, step_backward, KERNELS, separate_hidden_grad=True)
