r"""Fused kernels: one time step's gate arithmetic for a batch, forward and backward.

Nothing but arrays in and out: every kernel writes into buffers its caller allocated once for
the whole sequence, so the time loop makes no temporaries. The matrix products stay outside
(one ``h_prev W_hh^T`` per step forward, one ``da W_hh`` per step backward, done by BLAS); a
kernel adds the hidden projection and its bias to the precomputed input projection and applies
the cell's equations (`rnnkit.cells.lstm` and friends hold them and the NumPy reference these
kernels are tested against).

Conventions shared by all kernels, for ``B`` sequences and hidden size ``H``:

* ``xi`` (B, G*H): the input projection ``x_t W_ih^T`` (plus ``b_ih``, or with ``b_ih`` folded
  into ``b_hh`` where the cell adds the two to the same sums: `rnnkit.engine.fused`); ``hh``
  (B, G*H): ``h_prev W_hh^T`` without its bias, which comes separately as ``b_hh`` (G*H,)
  (zeros for ``bias=False``).
* ``m`` (B,): 1 while a sequence runs, 0 past its end; there the carry passes through, the
  output is 0 and so is every gradient of the step.
* Backward, the gradient reaching ``h_t`` is ``dhmat + dhpass + dy_t``: the product ``da W_hh``
  of the later step, the part that bypassed it (the GRU's ``z`` path, masked steps), and the
  output's own gradient. Each backward kernel overwrites ``dhpass`` for the step before; past a
  sequence's end the later steps' gradient passes through and ``dy_t`` (of a zero output) does not.
* ``dh_in`` (B, H) receives the masked gradient reaching ``h_t``, whose squared norm per
  sequence is the vanishing-gradient diagnostic (`sum_squares`).

The gate arithmetic itself is `kernels.gates`, shared with the step kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gates import ONE, ZERO, gru_unit, lstm_unit, rnn_unit
from .gates import fast_tanh as fast_tanh  # (their home was here: still importable from here)
from .gates import sigmoid as sigmoid


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def sum_squares(v, out):
    """``out[b] = sum_j v[b, j]^2`` in float64."""
    for b in range(v.shape[0]):
        s = 0.0
        for j in range(v.shape[1]):
            s += np.float64(v[b, j]) * np.float64(v[b, j])
        out[b] = s


# error_model="numpy": no Python division check, which would stop the loops vectorizing;
# fastmath "contract" only: the rational tanh's polynomials become fused multiply-adds (the LSTM
# gates 1.2x faster, a few ulp from before; NaN, infinity and the order of sums are untouched)
KERNEL = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(inline="always", error_model="numpy")
def _hold(h_prev, h, y):
    """A masked step (one row): the carry passes through and the output is 0."""
    for j in range(h.shape[0]):
        h[j] = h_prev[j]
        y[j] = 0.0


@njit(inline="always", error_model="numpy")
def _pass_back(dhmat, dhpass, dh_in, da):
    """A masked step backward (one row): the later steps' gradient passes to the step before,
    the step itself (its gate gradients ``da``) gets none."""
    for j in range(dhpass.shape[0]):
        dhpass[j] = dhmat[j] + dhpass[j]
        dh_in[j] = 0.0
    da[:] = 0.0


@njit(inline="always", error_model="numpy")
def _gather_dh(dhmat, dhpass, dy, dh_in):
    """``dh_in = (dhmat + dhpass) + dy``: everything that reaches h_t; ``dhpass`` is used up."""
    for j in range(dh_in.shape[0]):
        dh_in[j] = (dhmat[j] + dhpass[j]) + dy[j]
        dhpass[j] = 0.0


# Each kernel works row by row (one sequence of the batch) in short loops over the hidden
# units, each touching a few arrays: loops of that shape the compiler vectorizes.


# -- LSTM: gates i, f, g, o ------------------------------------------------------------------
@KERNEL
def lstm_forward(xi, hh, b_hh, h_prev, c_prev, m, h, c, y, gates, tanh_c):
    """Writes h, c, y (B, H); gates (B, 4H) = [i, f, g, o]; tanh_c (B, H) = tanh(c)."""
    B, H = h_prev.shape
    bi, bf, bg, bo = b_hh[:H], b_hh[H : 2 * H], b_hh[2 * H : 3 * H], b_hh[3 * H :]
    for b in range(B):
        x, a, gr = xi[b], hh[b], gates[b]
        xa, xb, xc, xd = x[:H], x[H : 2 * H], x[2 * H : 3 * H], x[3 * H :]
        ha, hb, hc, hd = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        i, f, g, o = gr[:H], gr[H : 2 * H], gr[2 * H : 3 * H], gr[3 * H :]
        cp, cr, tc, hr, yr = c_prev[b], c[b], tanh_c[b], h[b], y[b]
        for j in range(H):
            ij, fj, gj, oj, cj, tcj, hj = lstm_unit(
                xa[j] + (ha[j] + bi[j]),
                xb[j] + (hb[j] + bf[j]),
                xc[j] + (hc[j] + bg[j]),
                xd[j] + (hd[j] + bo[j]),
                cp[j],
            )
            i[j], f[j], g[j], o[j], tc[j] = ij, fj, gj, oj, tcj  # kept for the backward
            cr[j], hr[j] = cj, hj
        for j in range(H):  # (a loop of its own: with y the loop above had too many arrays
            yr[j] = hr[j]  # for LLVM's overlap checks, and stayed scalar)
        if m[b] == 0:
            cr[:] = cp
            _hold(h_prev[b], hr, yr)


@KERNEL
def lstm_backward(dhmat, dhpass, dy, dc, m, gates, tanh_c, c_prev, da, dh_in):
    """Writes da (B, 4H); updates dc and dhpass (B, H) to the step before; dh_in (B, H)."""
    B, H = dc.shape
    for b in range(B):
        if m[b] == 0:  # past the sequence's end: dc passes through unchanged
            _pass_back(dhmat[b], dhpass[b], dh_in[b], da[b])
            continue
        dh, gr, tc, cp, d, dcr = dh_in[b], gates[b], tanh_c[b], c_prev[b], da[b], dc[b]
        i, f, g, o = gr[:H], gr[H : 2 * H], gr[2 * H : 3 * H], gr[3 * H :]
        _gather_dh(dhmat[b], dhpass[b], dy[b], dh)
        for j in range(H):
            dcr[j] = dcr[j] + dh[j] * o[j] * (ONE - tc[j] * tc[j])  # h = o tanh(c): through tanh
        for j in range(H):
            d[j] = dcr[j] * g[j] * i[j] * (ONE - i[j])  # c = ... + i g, through the sigmoid of i
        for j in range(H):
            d[H + j] = dcr[j] * cp[j] * f[j] * (ONE - f[j])  # c = f c_prev + ...
        for j in range(H):
            d[2 * H + j] = dcr[j] * i[j] * (ONE - g[j] * g[j])  # c = ... + i g, through tanh of g
        for j in range(H):
            d[3 * H + j] = dh[j] * tc[j] * o[j] * (ONE - o[j])  # h = o tanh(c), through o
        for j in range(H):
            dcr[j] = dcr[j] * f[j]  # the cell state's linear path to c_prev


# -- GRU: gates r, z, n, reset applied after W_hn h ------------------------------------------
@KERNEL
def gru_forward(xi, hh, b_hh, h_prev, m, h, y, gates, hn):
    """Writes h, y (B, H); gates (B, 3H) = [r, z, n]; hn (B, H) = h_prev W_hn^T + b_hn."""
    B, H = h_prev.shape
    br, bz, bn = b_hh[:H], b_hh[H : 2 * H], b_hh[2 * H :]
    for b in range(B):
        x, a, gr, hnr, hp, hr, yr = xi[b], hh[b], gates[b], hn[b], h_prev[b], h[b], y[b]
        xr, xz, xn = x[:H], x[H : 2 * H], x[2 * H :]
        ar, az, an = a[:H], a[H : 2 * H], a[2 * H :]
        r, z, n = gr[:H], gr[H : 2 * H], gr[2 * H :]
        for j in range(H):
            hnj = an[j] + bn[j]  # W_hn h_prev + b_hn, which the reset gate scales
            rj, zj, nj, hj = gru_unit(xr[j], xz[j], xn[j], ar[j] + br[j], az[j] + bz[j], hnj, hp[j])
            r[j], z[j], n[j], hnr[j] = rj, zj, nj, hnj  # kept for the backward
            hr[j], yr[j] = hj, hj
        if m[b] == 0:
            _hold(hp, hr, yr)


@KERNEL
def gru_backward(dhmat, dhpass, dy, m, gates, hn, h_prev, dxi, dhh, dh_in):
    """Writes dxi, dhh (B, 3H); updates dhpass (B, H) to the step before; dh_in (B, H)."""
    B, H = h_prev.shape
    for b in range(B):
        if m[b] == 0:
            _pass_back(dhmat[b], dhpass[b], dh_in[b], dxi[b])
            dhh[b, :] = 0.0
            continue
        dh, gr, hnr, hp, dx, dr = dh_in[b], gates[b], hn[b], h_prev[b], dxi[b], dhh[b]
        r, z, n = gr[:H], gr[H : 2 * H], gr[2 * H :]
        _gather_dh(dhmat[b], dhpass[b], dy[b], dh)
        for j in range(H):
            dx[2 * H + j] = dh[j] * (ONE - z[j]) * (ONE - n[j] * n[j])  # h = (1-z) n: tanh of n
        for j in range(H):
            dx[j] = dx[2 * H + j] * hnr[j] * r[j] * (ONE - r[j])  # n = tanh(x_n + r hn): r
        for j in range(H):
            dx[H + j] = dh[j] * (hp[j] - n[j]) * z[j] * (ONE - z[j])  # h mixes n, h_prev by z
        for j in range(2 * H):
            dr[j] = dx[j]
        for j in range(H):
            dr[2 * H + j] = dx[2 * H + j] * r[j]  # the reset gate scales W_hn h + b_hn
        for j in range(H):
            dhpass[b, j] = dh[j] * z[j]  # the direct path through z


# -- Elman RNN: tanh or relu -----------------------------------------------------------------
@KERNEL
def rnn_forward(xi, hh, b_hh, h_prev, m, h, y, act, relu):
    """Writes h, y (B, H) and act (B, H) = tanh(a) or relu(a), kept for the backward."""
    B, H = h_prev.shape
    for b in range(B):
        x, a, ar, hr, yr = xi[b], hh[b], act[b], h[b], y[b]
        if relu:  # two loops, each with its activation fixed: no branch inside
            for j in range(H):
                hj = rnn_unit(x[j] + (a[j] + b_hh[j]), True)
                ar[j], hr[j], yr[j] = hj, hj, hj
        else:
            for j in range(H):
                hj = rnn_unit(x[j] + (a[j] + b_hh[j]), False)
                ar[j], hr[j], yr[j] = hj, hj, hj
        if m[b] == 0:
            _hold(h_prev[b], hr, yr)


@KERNEL
def rnn_backward(dhmat, dhpass, dy, m, act, da, dh_in, relu):
    """Writes da (B, H), the gradient at the pre-activation, and dh_in (B, H); ``act`` is the
    forward's tanh(a) or relu(a)."""
    B, H = act.shape
    for b in range(B):
        if m[b] == 0:
            _pass_back(dhmat[b], dhpass[b], dh_in[b], da[b])
            continue
        dh, ar, d = dh_in[b], act[b], da[b]
        _gather_dh(dhmat[b], dhpass[b], dy[b], dh)
        if relu:
            for j in range(H):
                d[j] = dh[j] if ar[j] > 0 else ZERO * dh[j]  # relu passes where it was active
        else:
            for j in range(H):
                d[j] = dh[j] * (ONE - ar[j] * ar[j])  # backprop through tanh
