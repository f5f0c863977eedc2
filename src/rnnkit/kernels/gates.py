r"""Each cell's gate arithmetic, written once: one hidden unit of one step, given its
pre-activations (the two products' entries for that unit, biases included).

Every compiled path runs a cell's equations through these functions: the batch kernels
(`kernels.cells`, which also keep the gates for the backward and apply the mask) and the
single-sequence, stream and split step kernels (`kernels.step`). Each caller loops over the
hidden units and calls the cell's function once per unit; ``inline="always"`` puts its body into
that loop, where it is compiled with the caller's fast-math flags and vectorized with the loop.
`rnnkit.cells.lstm` and friends hold the same equations in NumPy, the reference the tests
compare with.

The callers add the terms of each pre-activation in their own order (the batch kernels
``x + (hh + b_hh)``, the step kernels ``x + hh`` with the bias already in ``hh``); what happens
from the sums on is the same in every path.

float32 uses a rational tanh (Eigen's, a few ulp from the exact value) that the compiler can
vectorize; float64 uses the exact ``tanh`` so that parity with PyTorch stays at round-off.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload


def fast_tanh(a):  # the Python body is never used: see the overload below
    return np.tanh(a)


@overload(fast_tanh, inline="always")
def _fast_tanh(a):
    if a == types.float32:

        def tanh32(a):  # Eigen's generic_fast_tanh_float: clamp, then a 13/6 rational
            x = min(max(a, np.float32(-9.0)), np.float32(9.0))
            x2 = x * x
            p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
            p = x2 * p + np.float32(-8.60467152213735e-11)
            p = x2 * p + np.float32(5.12229709037114e-08)
            p = x2 * p + np.float32(1.48572235717979e-05)
            p = x2 * p + np.float32(6.37261928875436e-04)
            p = x2 * p + np.float32(4.89352455891786e-03)
            p = x * p
            q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
            q = x2 * q + np.float32(2.26843463243900e-03)
            q = x2 * q + np.float32(4.89352518554385e-03)
            return p / q

        return tanh32
    return lambda a: np.tanh(a)


# float32 constants: they keep float32 arithmetic in float32 and are exact in float64
ZERO, HALF, ONE = np.float32(0.0), np.float32(0.5), np.float32(1.0)


@njit(inline="always", error_model="numpy")
def sigmoid(a):
    return HALF * (ONE + fast_tanh(HALF * a))  # the same form as the reference


@njit(inline="always", error_model="numpy")
def lstm_unit(a_i, a_f, a_g, a_o, c_prev):
    """One unit of the LSTM, from the pre-activations ``a_*`` of its gates:
    ``i, f, o = sigmoid(a_i, a_f, a_o)``, ``g = tanh(a_g)``, ``c = f c_prev + i g``,
    ``h = o tanh(c)``. Returns ``(i, f, g, o, c, tanh_c, h)``: the gates and ``tanh(c)`` are
    what the backward reads."""
    i = sigmoid(a_i)
    f = sigmoid(a_f)
    g = fast_tanh(a_g)
    o = sigmoid(a_o)
    c = f * c_prev + i * g
    tanh_c = fast_tanh(c)
    return i, f, g, o, c, tanh_c, o * tanh_c


@njit(inline="always", error_model="numpy")
def gru_unit(xr, xz, xn, hr, hz, hn, h_prev):
    """One unit of the GRU, from its entries of the input projection ``x*`` and of the hidden
    one ``h*`` (``hn = W_hn h_prev + b_hn``, which the reset gate scales):
    ``r = sigmoid(xr + hr)``, ``z = sigmoid(xz + hz)``, ``n = tanh(xn + r hn)``,
    ``h = (1 - z) n + z h_prev``. Returns ``(r, z, n, h)``."""
    r = sigmoid(xr + hr)
    z = sigmoid(xz + hz)
    n = fast_tanh(xn + r * hn)
    return r, z, n, (ONE - z) * n + z * h_prev


@njit(inline="always", error_model="numpy")
def rnn_unit(a, relu):
    """One unit of the Elman RNN from its pre-activation: ``h = relu(a)`` or ``tanh(a)``."""
    return max(a, ZERO) if relu else fast_tanh(a)
