r"""Whole sequence loops, compiled: for small layers, the time loop without Python in it.

A fused sequence loop in Python (`rnnkit.cells.fused`) costs, per step, a BLAS call and a
kernel call through Python: a few microseconds that dominate when the step itself is small
(a single sequence or a few, hidden up to about 256). Here the whole loop is one compiled
call: the recurrent product ``h_{t-1} W_hh^T`` (forward) and ``da_t W_hh`` (backward) is a
plain loop (`_matmul`: rows of the weight scaled and added, vectorized across the output, one
core, no BLAS and so no second thread pool), and each step calls the same step kernels as the
Python loop (`rnnkit.kernels.cells`), so the gate arithmetic is the same code.

`rnnkit.cells.fused` picks these loops below `COMPILED_LOOP_MACS` multiply-adds per step
(batch x gates x hidden x hidden), where they measured faster than BLAS on two cores (tiny
batches: 1.2-2.3x); at batch 32 BLAS wins even at hidden 64.
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

LOOP = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _matmul(a, w, out):
    """``out = a @ w`` for a small ``a`` (B, K) and a C-contiguous ``w`` (K, N): four rows of
    ``a`` at a time, so each row of ``w`` is loaded once for four outputs."""
    B, K = a.shape
    N = w.shape[1]
    b = 0
    while b + 4 <= B:
        o0, o1, o2, o3 = out[b], out[b + 1], out[b + 2], out[b + 3]
        for n in range(N):
            o0[n] = ZERO
            o1[n] = ZERO
            o2[n] = ZERO
            o3[n] = ZERO
        for k in range(K):
            a0, a1, a2, a3 = a[b, k], a[b + 1, k], a[b + 2, k], a[b + 3, k]
            wk = w[k]
            for n in range(N):
                wn = wk[n]
                o0[n] += a0 * wn
                o1[n] += a1 * wn
                o2[n] += a2 * wn
                o3[n] += a3 * wn
        b += 4
    while b < B:
        o = out[b]
        for n in range(N):
            o[n] = ZERO
        for k in range(K):
            ak = a[b, k]
            wk = w[k]
            for n in range(N):
                o[n] += ak * wk[n]
        b += 1


# -- forward: the buffers of `fused.forward`; keep=False reuses two rows of hs (and cs) and one
# of acts/extra, as the inference loop there does ---------------------------------------------
@LOOP
def lstm_forward_loop(xi, W_hhT, b_hh, m, hs, cs, y, acts, extra, hh, keep):
    for t in range(xi.shape[0]):
        cur, nxt, k = (t, t + 1, t) if keep else (t % 2, 1 - t % 2, 0)
        _matmul(hs[cur], W_hhT, hh)
        lstm_forward(
            xi[t], hh, b_hh, hs[cur], cs[cur], m[t], hs[nxt], cs[nxt], y[t], acts[k], extra[k]
        )


@LOOP
def gru_forward_loop(xi, W_hhT, b_hh, m, hs, y, acts, extra, hh, keep):
    for t in range(xi.shape[0]):
        cur, nxt, k = (t, t + 1, t) if keep else (t % 2, 1 - t % 2, 0)
        _matmul(hs[cur], W_hhT, hh)
        gru_forward(xi[t], hh, b_hh, hs[cur], m[t], hs[nxt], y[t], acts[k], extra[k])


@LOOP
def rnn_forward_loop(xi, W_hhT, b_hh, m, hs, y, acts, hh, keep, relu):
    for t in range(xi.shape[0]):
        cur, nxt, k = (t, t + 1, t) if keep else (t % 2, 1 - t % 2, 0)
        _matmul(hs[cur], W_hhT, hh)
        rnn_forward(xi[t], hh, b_hh, hs[cur], m[t], hs[nxt], y[t], acts[k], relu)


# -- backward: the buffers of `fused.backward` ------------------------------------------------
@LOOP
def lstm_backward_loop(W_hh, dhmat, dhpass, dy, dc, m, acts, extra, cs, dxi, dh_in):
    for t in range(dy.shape[0] - 1, -1, -1):
        lstm_backward(dhmat, dhpass, dy[t], dc, m[t], acts[t], extra[t], cs[t], dxi[t], dh_in[t])
        _matmul(dxi[t], W_hh, dhmat)


@LOOP
def gru_backward_loop(W_hh, dhmat, dhpass, dy, m, acts, extra, hs, dxi, dhh, dh_in):
    for t in range(dy.shape[0] - 1, -1, -1):
        gru_backward(dhmat, dhpass, dy[t], m[t], acts[t], extra[t], hs[t], dxi[t], dhh[t], dh_in[t])
        _matmul(dhh[t], W_hh, dhmat)


@LOOP
def rnn_backward_loop(W_hh, dhmat, dhpass, dy, m, acts, dxi, dh_in, relu):
    for t in range(dy.shape[0] - 1, -1, -1):
        rnn_backward(dhmat, dhpass, dy[t], m[t], acts[t], dxi[t], dh_in[t], relu)
        _matmul(dxi[t], W_hh, dhmat)
