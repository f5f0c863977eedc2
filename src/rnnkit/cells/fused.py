"""The sequence loops on the fused kernels: the fast path of `rnnkit.cells.sequence`.

Same contract and numbers as the NumPy reference loops there (tests hold them to it), with every
buffer allocated once per sequence: per step, one BLAS product into a preallocated array and one
kernel call (`rnnkit.kernels.cells`), forward and backward. The cache is a handful of
``(T, B, ...)`` arrays rather than a list of per-step tuples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels import cells as K
from ..kernels import loops as KL
from ..kernels import step as KS
from .base import Carry, CellSpec

# a single sequence's inference (B=1, no tape) runs the streaming step's matrix-vector product
# and gates in one compiled loop (`kernels.step.sequence`) while the recurrent matrix has fewer
# multiply-adds than this: 1.3-1.7x faster than the batch loop below at B=1, 2.3x / 1.7x / 1.3x
# faster than the Python loop at LSTM hidden 64 / 128 / 256 (T=100, alternating processes)
SEQUENCE_MACS = 300_000

# below this many multiply-adds per step in the recurrent product (B x G*H x H), the whole time
# loop of a batch runs compiled with its own product on one core (`kernels.loops`), forward and
# backward. Measured, T=100, training / inference against the Python loop on 2-thread BLAS:
# LSTM H64 B1 1.8x training, B4 1.2-1.3x / 1.3-1.7x; H128 B1 1.2-1.3x training, B2 2.0x / 1.8x,
# B3 1.9x / 2.1x; RNN H128 B4 1.2-1.5x. Above it BLAS on two cores wins: H64 B12 0.9-1.4x,
# H128 B8 0.6-0.9x, H64 B32 0.7x
COMPILED_LOOP_MACS = 200_000


@dataclass
class FusedCache:
    """What the fused backward needs: opaque to everyone else."""

    x: np.ndarray  # (T, B, F)
    hs: np.ndarray  # (T+1, B, H): hs[t] is the hidden state entering step t
    cs: np.ndarray | None  # (T+1, B, H): the LSTM's cell state, likewise
    acts: np.ndarray  # (T, B, G*H): gate activations (RNN: the activation itself)
    extra: np.ndarray | None  # (T, B, H): LSTM tanh(c), GRU hn
    m: np.ndarray  # (T, B): 1 while a sequence runs


def supports(cell: CellSpec, x: np.ndarray, W_hh: object) -> bool:
    """The fused path runs float32/float64 arrays of the four built-in cells."""
    return (
        cell.name in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
        and x.dtype in (np.float32, np.float64)
        and type(W_hh) is np.ndarray
        and W_hh.dtype == x.dtype
    )


def forward(cell, x, carry: Carry, w, mask, keep_cache: bool, xi: np.ndarray):
    """Fused `sequence_forward` given the input projection ``xi`` (T, B, G*H)."""
    T, B, _ = x.shape
    H = w.W_hh.shape[1]
    GH = cell.gates * H
    dt = x.dtype
    b_hh = w.b_hh if w.b_hh is not None else np.zeros(GH, dt)
    m = np.ones((T, B), dt) if mask is None else np.ascontiguousarray(mask[:, :, 0])
    if B == 1 and not keep_cache and GH * H < SEQUENCE_MACS:
        return _forward_single(cell, carry, w, m[:, 0], xi[:, 0], b_hh)
    n_keep = T if keep_cache else 1
    hs = np.empty((T + 1 if keep_cache else 2, B, H), dt)
    hs[0] = carry[0]
    lstm = cell.name == "LSTM"
    cs = None
    if lstm:
        cs = np.empty_like(hs)
        cs[0] = carry[1]
    acts = np.empty((n_keep, B, GH), dt)
    extra = np.empty((n_keep, B, H), dt) if cell.name in ("LSTM", "GRU") else None
    y = np.empty((T, B, H), dt)
    hh = np.empty((B, GH), dt)
    run = _forward_compiled if B * GH * H < COMPILED_LOOP_MACS else _forward_python
    run(cell, xi, w.W_hh, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache)
    last = T if keep_cache else T % 2
    final = (hs[last].copy(),) if cs is None else (hs[last].copy(), cs[last].copy())
    cache = FusedCache(x, hs, cs, acts, extra, m) if keep_cache else None
    return y, final, cache


def step_forward(cell, xi, hh, b_hh, h_prev, c_prev, m, h, c, y, acts, extra) -> None:
    """One step's gate kernel for ``cell``, given ``xi`` and ``hh = h_prev W_hh^T`` (B, G*H):
    writes ``h`` (and the LSTM's ``c``), ``y`` and what the backward keeps (``acts``, ``extra``)."""
    if cell.name == "LSTM":
        K.lstm_forward(xi, hh, b_hh, h_prev, c_prev, m, h, c, y, acts, extra)
    elif cell.name == "GRU":
        K.gru_forward(xi, hh, b_hh, h_prev, m, h, y, acts, extra)
    else:
        K.rnn_forward(xi, hh, b_hh, h_prev, m, h, y, acts, cell.name == "RNN_RELU")


def _forward_python(cell, xi, W_hh, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache: bool):
    """The time loop in Python: per step one BLAS product into ``hh`` and one kernel call."""
    W_hhT = W_hh.T
    for t in range(xi.shape[0]):
        cur, nxt = (t, t + 1) if keep_cache else (t % 2, 1 - t % 2)
        k = t if keep_cache else 0
        np.matmul(hs[cur], W_hhT, out=hh)  # (B, G*H)
        step_forward(
            cell, xi[t], hh, b_hh, hs[cur], _row(cs, cur), m[t], hs[nxt], _row(cs, nxt), y[t],
            acts[k], _row(extra, k),
        )  # fmt: skip


def _row(a: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if a is None else a[i]


def _forward_compiled(cell, xi, W_hh, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache: bool):
    """The same loop as one compiled call with its own product (`kernels.loops`)."""
    W_hhT = np.ascontiguousarray(W_hh.T)  # (H, G*H): the product reads its rows
    if cell.name == "LSTM":
        KL.lstm_forward_loop(xi, W_hhT, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache)
    elif cell.name == "GRU":
        KL.gru_forward_loop(xi, W_hhT, b_hh, m, hs, y, acts, extra, hh, keep_cache)
    else:
        relu = cell.name == "RNN_RELU"
        KL.rnn_forward_loop(xi, W_hhT, b_hh, m, hs, y, acts, hh, keep_cache, relu)


def _forward_single(cell, carry: Carry, w, m: np.ndarray, xi: np.ndarray, b_hh: np.ndarray):
    """Inference of one sequence, the time loop compiled: ``y`` (T, 1, H), the final carry."""
    T, H = xi.shape[0], w.W_hh.shape[1]
    W_hh = np.ascontiguousarray(w.W_hh)
    y = np.empty((T, H), xi.dtype)
    h = np.array(carry[0][0], dtype=xi.dtype)  # (H,): copies, the kernels update them in place
    xi = np.ascontiguousarray(xi)
    lstm = cell.name == "LSTM"
    c = np.array(carry[1][0], dtype=xi.dtype) if lstm else h  # (the GRU and RNN ignore c)
    mode = {"LSTM": KS.LSTM, "GRU": KS.GRU, "RNN_TANH": KS.RNN_TANH, "RNN_RELU": KS.RNN_RELU}
    KS.sequence(xi, W_hh, b_hh, m, h, c, y, mode[cell.name])
    return y[:, None], ((h[None], c[None]) if lstm else (h[None],)), None


def _backward_python(cell, W_hh, dhmat, dhpass, dy, dc, cache: FusedCache, dxi, dhh, dh_in):
    """The time loop in Python, last step first: one kernel call and one BLAS product each."""
    m, acts, extra, hs, cs = cache.m, cache.acts, cache.extra, cache.hs, cache.cs
    for t in range(dy.shape[0] - 1, -1, -1):
        if cell.name == "LSTM":
            assert cs is not None and extra is not None
            K.lstm_backward(
                dhmat, dhpass, dy[t], dc, m[t], acts[t], extra[t], cs[t], dxi[t], dh_in[t]
            )
        elif cell.name == "GRU":
            assert extra is not None
            K.gru_backward(
                dhmat, dhpass, dy[t], m[t], acts[t], extra[t], hs[t], dxi[t], dhh[t], dh_in[t]
            )
        else:
            relu = cell.name == "RNN_RELU"
            K.rnn_backward(dhmat, dhpass, dy[t], m[t], acts[t], dxi[t], dh_in[t], relu)
        np.matmul(dhh[t], W_hh, out=dhmat)  # (B, H): reaches h_{t-1} through W_hh


def _backward_compiled(cell, W_hh, dhmat, dhpass, dy, dc, cache: FusedCache, dxi, dhh, dh_in):
    """The same loop as one compiled call with its own product (`kernels.loops`)."""
    W_hh = np.ascontiguousarray(W_hh)
    m, acts, extra, hs, cs = cache.m, cache.acts, cache.extra, cache.hs, cache.cs
    if cell.name == "LSTM":
        KL.lstm_backward_loop(W_hh, dhmat, dhpass, dy, dc, m, acts, extra, cs, dxi, dh_in)
    elif cell.name == "GRU":
        KL.gru_backward_loop(W_hh, dhmat, dhpass, dy, m, acts, extra, hs, dxi, dhh, dh_in)
    else:
        KL.rnn_backward_loop(W_hh, dhmat, dhpass, dy, m, acts, dxi, dh_in, cell.name == "RNN_RELU")


def backward(cell, dy, dcarry: Carry, cache: FusedCache, w, grads):
    """Fused `sequence_backward`: the same returns, the same accumulation into ``grads``."""
    x, hs = cache.x, cache.hs
    T, B, F = x.shape
    H = w.W_hh.shape[1]
    dt = x.dtype
    dy = np.ascontiguousarray(dy, dtype=dt)
    dxi = np.empty((T, B, cell.gates * H), dt)
    dhh = np.empty_like(dxi) if cell.separate_hidden_grad else dxi
    dhmat = np.array(dcarry[0], dtype=dt)  # (B, H): what reaches h_t through the later step
    dhpass = np.zeros((B, H), dt)
    dh_in = np.empty((T, B, H), dt)
    dc = np.array(dcarry[1], dtype=dt) if cell.name == "LSTM" else None
    GH = cell.gates * H
    run = _backward_compiled if B * GH * H < COMPILED_LOOP_MACS else _backward_python
    run(cell, w.W_hh, dhmat, dhpass, dy, dc, cache, dxi, dhh, dh_in)
    dhmat += dhpass
    sq = np.empty(T * B, np.float64)
    K.sum_squares(dh_in.reshape(T * B, H), sq)
    dxi2 = dxi.reshape(T * B, -1)
    dhh2 = dhh.reshape(T * B, -1)
    grads.W_ih += dxi2.T @ x.reshape(T * B, F)
    grads.W_hh += dhh2.T @ hs[:T].reshape(T * B, H)
    if grads.b_ih is not None:
        grads.b_ih += dxi2.sum(axis=0)
    if grads.b_hh is not None:
        grads.b_hh += dhh2.sum(axis=0)
    dx = (dxi2 @ w.W_ih).reshape(T, B, F)
    dcarry0 = (dhmat,) if dc is None else (dhmat, dc)
    return dx, dcarry0, sq.reshape(T, B)
