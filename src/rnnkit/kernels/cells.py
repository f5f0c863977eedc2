r"""Fused kernels: one time step's gate arithmetic for a batch, forward and backward.

Nothing but arrays in and out: every kernel writes into buffers its caller allocated once for
the whole sequence, so the time loop makes no temporaries. The matrix products stay outside
(one ``h_prev W_hh^T`` per step forward, one ``da W_hh`` per step backward, done by BLAS); a
kernel adds the hidden projection and its bias to the precomputed input projection and applies
the cell's equations (`rnnkit.cells.lstm` and friends hold them and the NumPy reference these
kernels are tested against).

Conventions shared by all kernels, for ``B`` sequences and hidden size ``H``:

* ``xi`` (B, G*H): the input projection ``x_t W_ih^T + b_ih``; ``hh`` (B, G*H): ``h_prev W_hh^T``
  without its bias, which comes separately as ``b_hh`` (G*H,) (zeros for ``bias=False``).
* ``m`` (B,): 1 while a sequence runs, 0 past its end; there the carry passes through, the
  output is 0 and so is every gradient of the step.
* Backward, the gradient reaching ``h_t`` is ``dhmat + dhpass + dy_t``: the product ``da W_hh``
  of the later step, the part that bypassed it (the GRU's ``z`` path, masked steps), and the
  output's own gradient. Each backward kernel overwrites ``dhpass`` for the step before; past a
  sequence's end the later steps' gradient passes through and ``dy_t`` (of a zero output) does not.
* ``dh_in`` (B, H) receives the masked gradient reaching ``h_t``, whose squared norm per
  sequence is the vanishing-gradient diagnostic (`sum_squares`).

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


@njit(inline="always")
def sigmoid(a):
    return HALF * (ONE + fast_tanh(HALF * a))  # the same form as the reference


@njit(cache=True, nogil=True, fastmath=True)
def sum_squares(v, out):
    """``out[b] = sum_j v[b, j]^2`` in float64."""
    for b in range(v.shape[0]):
        s = 0.0
        for j in range(v.shape[1]):
            s += np.float64(v[b, j]) * np.float64(v[b, j])
        out[b] = s


@njit(inline="always")
def _hold(m, b, h_prev, h, y):
    """A masked step: the carry passes through and the output is 0."""
    if m[b] == 0:
        for j in range(h.shape[1]):
            h[b, j] = h_prev[b, j]
            y[b, j] = 0.0


# -- LSTM: gates i, f, g, o ------------------------------------------------------------------
@njit(cache=True, nogil=True)
def lstm_forward(xi, hh, b_hh, h_prev, c_prev, m, h, c, y, gates, tanh_c):
    """Writes h, c, y (B, H); gates (B, 4H) = [i, f, g, o]; tanh_c (B, H) = tanh(c)."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            i = sigmoid(xi[b, j] + (hh[b, j] + b_hh[j]))
            f = sigmoid(xi[b, H + j] + (hh[b, H + j] + b_hh[H + j]))
            g = fast_tanh(xi[b, 2 * H + j] + (hh[b, 2 * H + j] + b_hh[2 * H + j]))
            o = sigmoid(xi[b, 3 * H + j] + (hh[b, 3 * H + j] + b_hh[3 * H + j]))
            c_new = f * c_prev[b, j] + i * g
            tc = fast_tanh(c_new)
            gates[b, j], gates[b, H + j], gates[b, 2 * H + j], gates[b, 3 * H + j] = i, f, g, o
            tanh_c[b, j] = tc
            c[b, j] = c_new
            h[b, j] = o * tc
            y[b, j] = o * tc
        if m[b] == 0:
            for j in range(H):
                c[b, j] = c_prev[b, j]
        _hold(m, b, h_prev, h, y)


@njit(cache=True, nogil=True)
def lstm_backward(dhmat, dhpass, dy, dc, m, gates, tanh_c, c_prev, da, dh_in):
    """Writes da (B, 4H); updates dc and dhpass (B, H) to the step before; dh_in (B, H)."""
    B, H = dc.shape
    for b in range(B):
        keep = m[b]
        for j in range(H):
            dh_later = dhmat[b, j] + dhpass[b, j]  # through the later step
            dh = keep * (dh_later + dy[b, j])
            i, f, g, o = gates[b, j], gates[b, H + j], gates[b, 2 * H + j], gates[b, 3 * H + j]
            tc = tanh_c[b, j]
            dc_t = keep * dc[b, j] + dh * o * (ONE - tc * tc)  # h = o tanh(c): through tanh(c)
            da[b, j] = dc_t * g * i * (ONE - i)  # c = ... + i g, through the sigmoid of i
            da[b, H + j] = dc_t * c_prev[b, j] * f * (ONE - f)  # c = f c_prev + ...
            da[b, 2 * H + j] = dc_t * i * (ONE - g * g)  # c = ... + i g, through tanh of g
            da[b, 3 * H + j] = dh * tc * o * (ONE - o)  # h = o tanh(c), through sigmoid of o
            dc[b, j] = dc_t * f + (ONE - keep) * dc[b, j]  # the cell state's linear path
            dhpass[b, j] = (ONE - keep) * dh_later
            dh_in[b, j] = dh


# -- GRU: gates r, z, n, reset applied after W_hn h ------------------------------------------
@njit(cache=True, nogil=True)
def gru_forward(xi, hh, b_hh, h_prev, m, h, y, gates, hn):
    """Writes h, y (B, H); gates (B, 3H) = [r, z, n]; hn (B, H) = h_prev W_hn^T + b_hn."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            r = sigmoid(xi[b, j] + (hh[b, j] + b_hh[j]))
            z = sigmoid(xi[b, H + j] + (hh[b, H + j] + b_hh[H + j]))
            hn_j = hh[b, 2 * H + j] + b_hh[2 * H + j]
            n = fast_tanh(xi[b, 2 * H + j] + r * hn_j)
            gates[b, j], gates[b, H + j], gates[b, 2 * H + j] = r, z, n
            hn[b, j] = hn_j
            h[b, j] = (ONE - z) * n + z * h_prev[b, j]
            y[b, j] = h[b, j]
        _hold(m, b, h_prev, h, y)


@njit(cache=True, nogil=True)
def gru_backward(dhmat, dhpass, dy, m, gates, hn, h_prev, dxi, dhh, dh_in):
    """Writes dxi, dhh (B, 3H); updates dhpass (B, H) to the step before; dh_in (B, H)."""
    B, H = h_prev.shape
    for b in range(B):
        keep = m[b]
        for j in range(H):
            dh_later = dhmat[b, j] + dhpass[b, j]  # through the later step
            dh = keep * (dh_later + dy[b, j])
            r, z, n = gates[b, j], gates[b, H + j], gates[b, 2 * H + j]
            dan = dh * (ONE - z) * (ONE - n * n)  # h = (1-z) n + ..., through tanh of n
            dar = dan * hn[b, j] * r * (ONE - r)  # n = tanh(xn + r hn), through sigmoid of r
            daz = dh * (h_prev[b, j] - n) * z * (ONE - z)  # h interpolates n and h_prev by z
            dxi[b, j], dxi[b, H + j], dxi[b, 2 * H + j] = dar, daz, dan
            dhh[b, j], dhh[b, H + j], dhh[b, 2 * H + j] = dar, daz, dan * r  # reset scales hn
            dhpass[b, j] = dh * z + (ONE - keep) * dh_later  # the direct path through z
            dh_in[b, j] = dh


# -- Elman RNN: tanh or relu -----------------------------------------------------------------
@njit(cache=True, nogil=True)
def rnn_tanh_forward(xi, hh, b_hh, h_prev, m, h, y, act):
    """Writes h, y (B, H) and act (B, H) = tanh(a), kept for the backward."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            act[b, j] = fast_tanh(xi[b, j] + (hh[b, j] + b_hh[j]))
            h[b, j] = act[b, j]
            y[b, j] = act[b, j]
        _hold(m, b, h_prev, h, y)


@njit(cache=True, nogil=True)
def rnn_relu_forward(xi, hh, b_hh, h_prev, m, h, y, act):
    """Writes h, y (B, H) and act (B, H) = relu(a), kept for the backward."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            act[b, j] = max(xi[b, j] + (hh[b, j] + b_hh[j]), ZERO)
            h[b, j] = act[b, j]
            y[b, j] = act[b, j]
        _hold(m, b, h_prev, h, y)


@njit(cache=True, nogil=True)
def rnn_tanh_backward(dhmat, dhpass, dy, m, act, da, dh_in):
    B, H = act.shape
    for b in range(B):
        keep = m[b]
        for j in range(H):
            dh_later = dhmat[b, j] + dhpass[b, j]  # through the later step
            dh = keep * (dh_later + dy[b, j])
            da[b, j] = dh * (ONE - act[b, j] * act[b, j])  # backprop through tanh
            dhpass[b, j] = (ONE - keep) * dh_later
            dh_in[b, j] = dh


@njit(cache=True, nogil=True)
def rnn_relu_backward(dhmat, dhpass, dy, m, act, da, dh_in):
    B, H = act.shape
    for b in range(B):
        keep = m[b]
        for j in range(H):
            dh_later = dhmat[b, j] + dhpass[b, j]  # through the later step
            dh = keep * (dh_later + dy[b, j])
            da[b, j] = dh if act[b, j] > 0 else ZERO * dh  # relu passes where it was active
            dhpass[b, j] = (ONE - keep) * dh_later
            dh_in[b, j] = dh
