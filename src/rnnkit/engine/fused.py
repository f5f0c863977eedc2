"""The sequence loops on the fused kernels: the fast paths of `rnnkit.engine.sequence`.

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

import numpy as np

from ..cells.base import Carry, input_projection
from ..kernels import cells as K
from ..kernels import loops as KL
from ..kernels import step as KS
from ..kernels import sync
from ..kernels import tile as KT
from ..threads import in_parallel, row_chunks
from .plan import Plan


@dataclass
class FusedCache:
    """What the fused backward needs: opaque to everyone else."""

    x: np.ndarray  # (T, B, F)
    hs: np.ndarray  # (T+1, B, H): hs[t] is the hidden state entering step t
    cs: np.ndarray | None  # (T+1, B, H): the LSTM's cell state, likewise
    acts: np.ndarray  # (T, B, G*H): gate activations (RNN: the activation itself)
    extra: np.ndarray | None  # (T, B, H): LSTM tanh(c), GRU hn
    m: np.ndarray  # (T, B): 1 while a sequence runs


def forward(cell, x, carry: Carry, w, mask, keep_cache: bool):
    """Fused `sequence_forward` of a batch (the planner's ``batch`` path)."""
    T, B, _ = x.shape
    H = w.W_hh.shape[1]
    GH = cell.gates * H
    dt = x.dtype
    m = np.ones((T, B), dt) if mask is None else np.ascontiguousarray(mask[:, :, 0])
    xi, b_hh = _project(cell, x, w)
    n_keep = T if keep_cache else 1
    hs = np.empty((T + 1 if keep_cache else 2, B, H), dt)
    hs[0] = carry[0]
    cs = None
    if cell.has_cell_state:
        cs = np.empty_like(hs)
        cs[0] = carry[1]
    acts = np.empty((n_keep, B, GH), dt)
    extra = np.empty((n_keep, B, H), dt) if cell.kernels.keeps_extra else None
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
    if not cell.kernels.joins_biases:
        return w.b_ih, b_hh
    return None, (b_hh + w.b_ih if w.b_ih is not None else b_hh)


def _forward_loops(cell, xi, W_hh, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache: bool):
    """The time loop, compiled (`kernels.loops`), one chunk of the batch's rows per core."""
    W_hh = np.ascontiguousarray(W_hh)  # (G*H, H): the product reads its rows
    P = KT.pack(W_hh if xi.shape[1] >= KT.ROWS else W_hh[:0])  # its panels (`kernels.tile`)
    loop = cell.kernels.forward_loop

    def run(rows: tuple[int, int]) -> None:
        loop(xi, W_hh, P, b_hh, m, hs, cs, y, acts, extra, hh, keep_cache, *rows)

    _by_rows(run, xi.shape[1])


def _by_rows(run: Callable[[tuple[int, int]], None], batch: int) -> None:
    """``run(rows)`` for each chunk of the batch's rows, the chunks side by side."""
    chunks = row_chunks(batch, KL.MIN_ROWS)
    in_parallel(lambda i: run(chunks[i]), len(chunks))


def forward_single(cell, carry: Carry, w, m: np.ndarray, x: np.ndarray, plan: Plan):
    """Inference of one sequence ``x`` (T, F), the time loop compiled (the planner's ``single``
    and ``single-pair``): ``y`` (T, 1, H), the final carry."""
    (T, F), H, dt = x.shape, w.W_hh.shape[1], x.dtype
    W_hh = np.ascontiguousarray(w.W_hh)
    width = KT.panel_width(dt)
    pair = plan.path == "single-pair"
    # With ``plan.panels`` the products read packed panels (`kernels.tile`), which the kernels
    # pack, and then compute the input projection too (by `tile.tile4`, each core its own
    # columns); else it is one BLAS product here.
    panels = W_hh.shape[0] // width if plan.panels else 0
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
    lstm = cell.has_cell_state
    cb = np.empty((2, H), dt)
    cb[0] = carry[1][0] if lstm else 0  # (the GRU and RNN ignore c)
    code = cell.kernels.code
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
    loop = cell.kernels.backward_loop

    def run(rows: tuple[int, int]) -> None:
        loop(W_hhT, P, dhmat, dhpass, dy, dc, m, acts, extra, hs, cs, dxi, dhh, dh_in, *rows)

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
    dc = np.array(dcarry[1], dtype=dt, order="C") if cell.has_cell_state else None
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
