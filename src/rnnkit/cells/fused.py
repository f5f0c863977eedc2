"""The sequence loops on the fused kernels: the fast path of `rnnkit.cells.sequence`.

Same contract and numbers as the NumPy reference loops there (tests hold them to it), with every
buffer allocated once per sequence. The input projection and the weight and input gradients are a
few large BLAS products outside the time loop; the time loop itself is compiled
(`rnnkit.kernels.loops`: per step its own recurrent product and one kernel call), the batch cut
into one chunk of rows per core. The cache is a handful of ``(T, B, ...)`` arrays rather than a
list of per-step tuples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from ..kernels import cells as K
from ..kernels import loops as KL
from ..kernels import step as KS
from ..kernels import sync
from ..kernels import tile as KT
from ..threads import in_parallel, row_chunks, side_by_side
from .base import Carry, CellSpec, input_projection

# A single sequence's inference (B=1, no tape) runs its time loop in one compiled call, each
# step's matrix-vector product and gates fused (`kernels.step.sequence`), and from PAIR_MACS
# multiply-adds per step on both cores, each computing half the hidden units and the two
# waiting for each other at every step (`sequence_pair`). Microseconds for T=100, one core /
# both / the batch loop (`python benchmarks/micro.py single`, 2026-11-24): LSTM 32 45 / 51 /
# 69; LSTM 48 88 / 65 / 100; LSTM 96 232 / 177 / 229; GRU 128 270 / 157 / 298; LSTM 128 378 /
# 222 / 398; LSTM 256 1625 / 783 / 1732; LSTM 512 6328 / 3201 / 6387. (Tests switch
# SINGLE_SEQUENCE off to run the batch loop at B=1.)
SINGLE_SEQUENCE = True
PAIR_MACS = 8_000
PANEL_STEPS = 32


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


def forward(cell, x, carry: Carry, w, mask, keep_cache: bool):
    """Fused `sequence_forward`."""
    T, B, _ = x.shape
    H = w.W_hh.shape[1]
    GH = cell.gates * H
    dt = x.dtype
    m = np.ones((T, B), dt) if mask is None else np.ascontiguousarray(mask[:, :, 0])
    if B == 1 and not keep_cache and SINGLE_SEQUENCE:
        return _forward_single(cell, carry, w, m[:, 0], x[:, 0])
    xi, b_hh = _project(cell, x, w)
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
    _forward_loops(cell, xi, w.W_hh, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache)
    last = T if keep_cache else T % 2
    final = (hs[last].copy(),) if cs is None else (hs[last].copy(), cs[last].copy())
    cache = FusedCache(x, hs, cs, acts, extra, m) if keep_cache else None
    return y, final, cache


def _project(cell, x, w) -> tuple[np.ndarray, np.ndarray]:
    """The input projection for every step, one product: ``xi`` (T, B, G*H), and the bias the
    loop adds to the hidden projection (`_biases`)."""
    b_x, b_hh = _biases(cell, w, x.dtype)
    return input_projection(x, w.W_ih, b_x), b_hh


def _biases(cell, w, dtype) -> tuple[np.ndarray | None, np.ndarray]:
    """The bias of the input projection (None: none) and of the hidden one. The LSTM and RNN
    add both biases to the same sums, so ``b_ih`` joins ``b_hh`` there (a pass over the
    projection saved); the GRU's reset gate multiplies ``b_hh`` alone, so its ``b_ih`` stays
    with the input projection."""
    b_hh = w.b_hh if w.b_hh is not None else np.zeros(w.W_hh.shape[0], dtype)
    if cell.name == "GRU":
        return w.b_ih, b_hh
    return None, (b_hh + w.b_ih if w.b_ih is not None else b_hh)


def step_forward(cell, xi, hh, b_hh, h_prev, c_prev, m, h, c, y, acts, extra) -> None:
    """One step's gate kernel for ``cell``, given ``xi`` and ``hh = h_prev W_hh^T`` (B, G*H):
    writes ``h`` (and the LSTM's ``c``), ``y`` and what the backward keeps (``acts``, ``extra``)."""
    if cell.name == "LSTM":
        K.lstm_forward(xi, hh, b_hh, h_prev, c_prev, m, h, c, y, acts, extra)
    elif cell.name == "GRU":
        K.gru_forward(xi, hh, b_hh, h_prev, m, h, y, acts, extra)
    else:
        K.rnn_forward(xi, hh, b_hh, h_prev, m, h, y, acts, cell.name == "RNN_RELU")


def _forward_loops(cell, xi, W_hh, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache: bool):
    """The time loop, compiled (`kernels.loops`), one chunk of the batch's rows per core."""
    W_hh = np.ascontiguousarray(W_hh)  # (G*H, H): the product reads its rows
    P = KT.pack(W_hh if xi.shape[1] >= KT.ROWS else W_hh[:0])  # its panels (`kernels.tile`)
    name = cell.name

    def run(rows: tuple[int, int]) -> None:
        if name == "LSTM":
            KL.lstm_forward_loop(
                xi, W_hh, P, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache, *rows
            )
        elif name == "GRU":
            KL.gru_forward_loop(xi, W_hh, P, b_hh, m, hs, y, acts, extra, hh, keep_cache, *rows)
        else:
            relu = name == "RNN_RELU"
            KL.rnn_forward_loop(xi, W_hh, P, b_hh, m, hs, y, acts, hh, keep_cache, relu, *rows)

    _by_rows(run, xi.shape[1])


def _by_rows(run: Callable[[tuple[int, int]], None], batch: int) -> None:
    """``run(rows)`` for each chunk of the batch's rows, the chunks side by side."""
    chunks = row_chunks(batch, KL.MIN_ROWS)
    in_parallel(lambda i: run(chunks[i]), len(chunks))


def _forward_single(cell, carry: Carry, w, m: np.ndarray, x: np.ndarray):
    """Inference of one sequence ``x`` (T, F), the time loop compiled: ``y`` (T, 1, H), the
    final carry."""
    (T, F), H, dt = x.shape, w.W_hh.shape[1], x.dtype
    W_hh = np.ascontiguousarray(w.W_hh)
    width = KT.panel_width(dt)
    pair = W_hh.shape[0] * H >= PAIR_MACS and side_by_side(2) and numba.get_num_threads() >= 2
    # The products read packed panels (`kernels.tile`) when whole panels cover each part's rows
    # of every gate and the sequence is long enough to pay for packing them (packing takes
    # what the panels save in about 15 steps: 22 us at an LSTM of 128, one core); the kernels
    # pack them, and then compute the input projection too (by `tile.tile4`, each core its
    # own columns), else it is one BLAS product here.
    whole = H % (2 * width if pair else width) == 0
    panels = W_hh.shape[0] // width if whole and T >= max(PANEL_STEPS, KT.ROWS) else 0
    P = np.empty((panels, H, width), dt)
    b_x, b_hh = _biases(cell, w, dt)
    if panels:
        xi = np.empty((T, W_hh.shape[0]), dt)
        x, W_ih = np.ascontiguousarray(x), np.ascontiguousarray(w.W_ih)
        b_x = np.zeros(W_hh.shape[0], dt) if b_x is None else b_x
        proj = (x, W_ih, np.empty((panels, F, width), dt), b_x)
    else:
        xi = np.ascontiguousarray(input_projection(x[:, None], w.W_ih, b_x)[:, 0])
        nothing = np.empty((0, F), dt)
        proj = (nothing, nothing, np.empty((0, F, width), dt), np.empty(0, dt))
    y = np.empty((T, H), dt)
    hb = np.empty((2, H), dt)  # the carry, in row 0 (the kernels alternate rows)
    hb[0] = carry[0][0]
    lstm = cell.name == "LSTM"
    cb = np.empty((2, H), dt)
    cb[0] = carry[1][0] if lstm else 0  # (the GRU and RNN ignore c)
    code = KS.CELL_CODES[cell.name]
    if pair:
        KS.sequence_pair(xi, proj, W_hh, P, b_hh, m, hb, cb, y, code, sync.flags(2))
    else:
        KS.sequence(xi, proj, W_hh, P, b_hh, m, hb, cb, y, code)
    h, c = hb[T % 2].copy(), cb[T % 2].copy()
    return y[:, None], ((h[None], c[None]) if lstm else (h[None],)), None


def _backward_loops(cell, W_hh, dhmat, dhpass, dy, dc, cache: FusedCache, dxi, dhh, dh_in):
    """The time loop backward, compiled (`kernels.loops`), one chunk of rows per core."""
    W_hhT = np.ascontiguousarray(W_hh.T)  # (H, G*H): the product reads its rows
    P = KT.pack_columns(W_hh if dy.shape[1] >= KT.ROWS else W_hh[:, :0])  # W_hh.T's panels
    m, acts, extra, hs, cs = cache.m, cache.acts, cache.extra, cache.hs, cache.cs
    name = cell.name

    def run(rows: tuple[int, int]) -> None:
        if name == "LSTM":
            KL.lstm_backward_loop(
                W_hhT, P, dhmat, dhpass, dy, dc, m, acts, extra, cs, dxi, dh_in, *rows
            )
        elif name == "GRU":
            KL.gru_backward_loop(
                W_hhT, P, dhmat, dhpass, dy, m, acts, extra, hs, dxi, dhh, dh_in, *rows
            )
        else:
            relu = name == "RNN_RELU"
            KL.rnn_backward_loop(W_hhT, P, dhmat, dhpass, dy, m, acts, dxi, dh_in, relu, *rows)

    _by_rows(run, dy.shape[1])


def backward(cell, dy, dcarry: Carry, cache: FusedCache, w, grads):
    """Fused `sequence_backward`: the same returns, the same accumulation into ``grads``."""
    x, hs = cache.x, cache.hs
    T, B, F = x.shape
    H = w.W_hh.shape[1]
    dt = x.dtype
    dy = np.ascontiguousarray(dy, dtype=dt)
    dxi = np.empty((T, B, cell.gates * H), dt)
    dhh = np.empty_like(dxi) if cell.separate_hidden_grad else dxi
    # (B, H): what reaches h_t through the later step (C order: the product writes its rows)
    dhmat = np.array(dcarry[0], dtype=dt, order="C")
    dhpass = np.zeros((B, H), dt)
    dh_in = np.empty((T, B, H), dt)
    dc = np.array(dcarry[1], dtype=dt, order="C") if cell.name == "LSTM" else None
    _backward_loops(cell, w.W_hh, dhmat, dhpass, dy, dc, cache, dxi, dhh, dh_in)
    dhmat += dhpass
    sq = np.empty(T * B, np.float64)
    K.sum_squares(dh_in.reshape(T * B, H), sq)
    dxi2 = dxi.reshape(T * B, -1)
    dhh2 = dhh.reshape(T * B, -1)
    grads.W_ih += dxi2.T @ x.reshape(T * B, F)
    grads.W_hh += dhh2.T @ hs[:T].reshape(T * B, H)
    db_ih = None
    if grads.b_ih is not None:
        db_ih = dxi2.sum(axis=0)
        grads.b_ih += db_ih
    if grads.b_hh is not None:  # the same sum when the two gradients are one array (LSTM, RNN)
        grads.b_hh += db_ih if dhh is dxi and db_ih is not None else dhh2.sum(axis=0)
    dx = (dxi2 @ w.W_ih).reshape(T, B, F)
    dcarry0 = (dhmat,) if dc is None else (dhmat, dc)
    return dx, dcarry0, sq.reshape(T, B)
