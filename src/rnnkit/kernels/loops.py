r"""Whole sequence loops, compiled: the time loop without Python in it, for rows of the batch.

The sequences of a batch are independent inside a layer, so `rnnkit.engine.fused` cuts the batch
into one chunk of rows per core (`rnnkit.threads`) and each core runs a whole loop below for its
rows ``[i0, i1)``: no synchronisation between steps, and no Python inside the loop. Each step is
the recurrent product ``h_{t-1} W_hh^T`` (forward) or ``da_t W_hh`` (backward) by `_dot`, then
the same step kernel as every other path (`rnnkit.kernels.cells`).

`_dot` is written for these products: a few rows times a weight that stays the same for the
whole sequence. The weight is packed once per sequence into panels of 16 (float32) or 8
(float64) of its rows (`kernels.tile.pack`: ``W_hh`` (G*H, H) forward, its transpose backward), and
each block of four rows of ``a`` times one panel is one register-blocked tile (`tile.tile4`);
what the tiles leave over reads the weight as stored (``W_hh`` and its transpose, contiguous),
every output a dot product of two contiguous rows. OpenBLAS is built for large products: at 16-32
rows it packs the weight on every call and gains little from a second thread (measurements in
docs/DESIGN-NOTES.md).
"""

from __future__ import annotations

from numba import njit

from .cells import (
    ZERO,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from .step import matvec_rows
from .tile import ROWS, VECTOR_BYTES, tile4

# reassoc (and nsz) let the sums of `_dot` be vectorized; NaN and inf still propagate
FAST = {"contract", "reassoc", "nsz"}
LOOP = njit(cache=True, nogil=True, error_model="numpy", fastmath=FAST, boundscheck=False)

# `_dot` works four rows at a time: chunks of the batch start at multiples of this
MIN_ROWS = 4


@njit(inline="always", error_model="numpy", fastmath=FAST, boundscheck=False)
def _dot(a, w, P, out):
    """``out = a @ w.T`` for ``a`` (B, K) and ``w`` (N, K), both with contiguous rows; ``P`` is
    ``tile.pack(w)``. Blocks of four rows by whole panels are `tile4` tiles, each panel used for
    every block of rows while it is in L1 (when 4 does not divide B, the last block overlaps the
    one before and writes the same numbers again); the last ``N % W`` columns of those rows come
    from `_dot_block`. One row: `step.matvec_rows`; two or three: `_dot_pairs`."""
    B, N = a.shape[0], w.shape[0]
    width = 2 * VECTOR_BYTES // a.itemsize
    if P.shape[1] != a.shape[1] or P.shape[2] != width or P.shape[0] > N // width:
        raise ValueError("_dot: the packed weight does not match (tile.pack of w expected)")
    if B == 1:  # four rows of w at a time, as the streaming step's product
        matvec_rows(w, None, a[0], None, out[0], 0, N)
        return
    if B < ROWS:
        _dot_pairs(a, w, out)
        return
    blocks = (B + ROWS - 1) // ROWS
    for p in range(P.shape[0]):
        for j in range(blocks):
            tile4(a, min(j * ROWS, B - ROWS), P, p, out)
    for j in range(blocks):
        _dot_block(a, w, out, min(j * ROWS, B - ROWS), P.shape[0] * P.shape[2], N)


@njit(inline="always", error_model="numpy", fastmath=FAST, boundscheck=False)
def _dot_block(a, w, out, b, n0, n1):
    """``out[b:b+4, n0:n1] = a[b:b+4] @ w[n0:n1].T`` straight from ``w``: each output a dot
    product of two contiguous rows, four rows of ``a`` by two rows of ``w`` at a time keeping
    eight sums in registers."""
    K = a.shape[1]
    a0, a1, a2, a3 = a[b], a[b + 1], a[b + 2], a[b + 3]
    for n in range(n0, n1, 2):
        m = min(n + 1, n1 - 1)  # an odd last row is done twice over
        w0, w1 = w[n], w[m]
        s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = ZERO
        for k in range(K):
            y0, y1 = w0[k], w1[k]
            x = a0[k]
            s00 += x * y0
            s01 += x * y1
            x = a1[k]
            s10 += x * y0
            s11 += x * y1
            x = a2[k]
            s20 += x * y0
            s21 += x * y1
            x = a3[k]
            s30 += x * y0
            s31 += x * y1
        out[b, n], out[b, m] = s00, s01
        out[b + 1, n], out[b + 1, m] = s10, s11
        out[b + 2, n], out[b + 2, m] = s20, s21
        out[b + 3, n], out[b + 3, m] = s30, s31


@njit(inline="always", error_model="numpy", fastmath=FAST, boundscheck=False)
def _dot_pairs(a, w, out):
    """``out = a @ w.T`` for a few rows: two rows of ``w`` at a time, used by every row of ``a``
    while they are in L1 (one row at a time would read all of ``w`` once per row)."""
    B, K = a.shape
    N = w.shape[0]
    for n in range(0, N, 2):
        m = min(n + 1, N - 1)  # an odd last row is done twice over
        w0, w1 = w[n], w[m]
        for b in range(B):
            x = a[b]
            s0 = s1 = ZERO
            for k in range(K):
                s0 += x[k] * w0[k]
                s1 += x[k] * w1[k]
            out[b, n], out[b, m] = s0, s1


# -- forward: the buffers of `fused.forward`; keep=False reuses two rows of hs (and cs) and one
# of acts/extra, as the inference loop there does. Each loop runs rows [i0, i1) of the batch,
# indexing ``a[t, i0:i1]`` (which stays C-contiguous, so the kernels vectorize) ----------------
@LOOP
def lstm_forward_loop(xi, W_hh, P, b_hh, m, hs, cs, y, acts, extra, hh, keep, i0, i1):
    for t in range(xi.shape[0]):
        cur, nxt, k = (t, t + 1, t) if keep else (t % 2, 1 - t % 2, 0)
        h_prev, c_prev, a = hs[cur, i0:i1], cs[cur, i0:i1], hh[i0:i1]
        _dot(h_prev, W_hh, P, a)
        lstm_forward(
            xi[t, i0:i1], a, b_hh, h_prev, c_prev, m[t, i0:i1], hs[nxt, i0:i1], cs[nxt, i0:i1],
            y[t, i0:i1], acts[k, i0:i1], extra[k, i0:i1],
        )  # fmt: skip


@LOOP
def gru_forward_loop(xi, W_hh, P, b_hh, m, hs, y, acts, extra, hh, keep, i0, i1):
    for t in range(xi.shape[0]):
        cur, nxt, k = (t, t + 1, t) if keep else (t % 2, 1 - t % 2, 0)
        h_prev, a = hs[cur, i0:i1], hh[i0:i1]
        _dot(h_prev, W_hh, P, a)
        gru_forward(
            xi[t, i0:i1], a, b_hh, h_prev, m[t, i0:i1], hs[nxt, i0:i1], y[t, i0:i1],
            acts[k, i0:i1], extra[k, i0:i1],
        )  # fmt: skip


@LOOP
def rnn_forward_loop(xi, W_hh, P, b_hh, m, hs, y, acts, hh, keep, relu, i0, i1):
    for t in range(xi.shape[0]):
        cur, nxt, k = (t, t + 1, t) if keep else (t % 2, 1 - t % 2, 0)
        h_prev, a = hs[cur, i0:i1], hh[i0:i1]
        _dot(h_prev, W_hh, P, a)
        rnn_forward(
            xi[t, i0:i1], a, b_hh, h_prev, m[t, i0:i1], hs[nxt, i0:i1], y[t, i0:i1],
            acts[k, i0:i1], relu,
        )  # fmt: skip


# -- backward: the buffers of `fused.backward`; W_hhT is W_hh transposed, contiguous ----------
@LOOP
def lstm_backward_loop(W_hhT, P, dhmat, dhpass, dy, dc, m, acts, extra, cs, dxi, dh_in, i0, i1):
    dhm, dhp, dcr = dhmat[i0:i1], dhpass[i0:i1], dc[i0:i1]
    for t in range(dy.shape[0] - 1, -1, -1):
        da = dxi[t, i0:i1]
        lstm_backward(
            dhm, dhp, dy[t, i0:i1], dcr, m[t, i0:i1], acts[t, i0:i1], extra[t, i0:i1],
            cs[t, i0:i1], da, dh_in[t, i0:i1],
        )  # fmt: skip
        _dot(da, W_hhT, P, dhm)


@LOOP
def gru_backward_loop(W_hhT, P, dhmat, dhpass, dy, m, acts, extra, hs, dxi, dhh, dh_in, i0, i1):
    dhm, dhp = dhmat[i0:i1], dhpass[i0:i1]
    for t in range(dy.shape[0] - 1, -1, -1):
        dh = dhh[t, i0:i1]
        gru_backward(
            dhm, dhp, dy[t, i0:i1], m[t, i0:i1], acts[t, i0:i1], extra[t, i0:i1],
            hs[t, i0:i1], dxi[t, i0:i1], dh, dh_in[t, i0:i1],
        )  # fmt: skip
        _dot(dh, W_hhT, P, dhm)


@LOOP
def rnn_backward_loop(W_hhT, P, dhmat, dhpass, dy, m, acts, dxi, dh_in, relu, i0, i1):
    dhm, dhp = dhmat[i0:i1], dhpass[i0:i1]
    for t in range(dy.shape[0] - 1, -1, -1):
        da = dxi[t, i0:i1]
        rnn_backward(dhm, dhp, dy[t, i0:i1], m[t, i0:i1], acts[t, i0:i1], da, dh_in[t, i0:i1], relu)
        _dot(da, W_hhT, P, dhm)
