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

from .base import CellSpec, sigmoid


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


GRU = CellSpec("GRU", 3, 1, step_forward, step_backward, separate_hidden_grad=True)
