r"""One step of one stream (batch 1), fused: both matrix-vector products and the gate arithmetic
in a single call, straight from the weights as stored (float32/float64, int8 with one scale per
row, or bfloat16 bits).

Each kernel runs one layer of a stack: it reads the layer's input (``x`` (F,) or the layer
below's new state) and its carry, writes the new carry into one fresh array for the whole step
and, at the top layer, the output into ``y``. The first layer's kernel returns False when ``x``
holds NaN or infinity (then the outputs are not to be used; the general path reports it).
Scratch ``xw`` (2, G*H) receives ``W_ih x + b_ih`` and ``W_hh h + b_hh``.

The weight kind is chosen when the kernel is compiled, from the weight array's dtype: int8
multiplies each row's dot product by its scale (``s`` (N,)); uint16 holds bfloat16 bits, widened
to float32 as they are read; float arrays are used as they are (``s`` is ignored).

Large layers (the planner's `split_macs` and `split_bytes`, `rnnkit.tuning`) with float
or int8 weights call `split_step` instead, which shares the rows of both products between the
cores (numba's parallel loop); a parallel region costs about 1.5 us, so small layers do not.
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import njit, prange, types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import overload

from . import int8, sync
from .gates import ZERO, gru_unit, lstm_unit, rnn_unit
from .tile import PANELS, ROWS, panel1, panels1, tile4


def widen(v):  # the Python body is never used: see the overload below
    return v


@overload(widen, inline="always")
def _widen(v):
    """A weight as the arithmetic reads it: int8 to float32, float as it is."""
    if v == types.int8:
        return lambda v: np.float32(v)
    return lambda v: v


def scaled(W, acc, s, n):  # the Python body is never used: see the overload below
    return acc


@overload(scaled, inline="always")
def _scaled(W, acc, s, n):
    """Row ``n``'s dot product times its scale (int8), or as it is (float)."""
    if W.dtype == types.int8:
        return lambda W, acc, s, n: acc * s[n]
    return lambda W, acc, s, n: acc


def plus_bias(acc, bias, n):  # the Python body is never used: see the overload below
    return acc


@overload(plus_bias, inline="always")
def _plus_bias(acc, bias, n):
    """``acc + bias[n]``, or ``acc`` when there is no bias (None)."""
    if isinstance(bias, types.NoneType):
        return lambda acc, bias, n: acc
    return lambda acc, bias, n: acc + bias[n]


@njit(inline="always", error_model="numpy")
def matvec_rows(W, s, x, bias, out, n0, n1):
    """``out[n] = W[n] . x + bias[n]`` for rows ``n0 <= n < n1`` of float or int8 weights
    (int8: times the row's scale; ``bias`` None: none), four rows at a time so that each load
    of ``x`` serves four rows (against one row at a time: float32 1.3x at hidden 64, about even
    at 128-256, 1.2-1.6x at 512; int8 1.15-1.55x; `benchmarks/micro.py matvec`)."""
    K = W.shape[1]
    n = n0
    while n + 4 <= n1:
        w0, w1, w2, w3 = W[n], W[n + 1], W[n + 2], W[n + 3]
        s0 = s1 = s2 = s3 = ZERO  # widened to float64 for float64 weights (not 0 * x[0]:
        for k in range(K):  # an infinite x[0] would make every row NaN)
            xk = x[k]
            s0 += widen(w0[k]) * xk
            s1 += widen(w1[k]) * xk
            s2 += widen(w2[k]) * xk
            s3 += widen(w3[k]) * xk
        out[n] = plus_bias(scaled(W, s0, s, n), bias, n)
        out[n + 1] = plus_bias(scaled(W, s1, s, n + 1), bias, n + 1)
        out[n + 2] = plus_bias(scaled(W, s2, s, n + 2), bias, n + 2)
        out[n + 3] = plus_bias(scaled(W, s3, s, n + 3), bias, n + 3)
        n += 4
    while n < n1:
        acc = ZERO
        for k in range(K):
            acc += widen(W[n, k]) * x[k]
        out[n] = plus_bias(scaled(W, acc, s, n), bias, n)
        n += 1


@njit(inline="always", error_model="numpy")
def pack_panels(W, P, p0, p1):
    """Panels ``p0 <= p < p1`` of ``P = tile.pack(W)``, written in place: a compiled loop packs
    a part of the weight on the thread that will read it."""
    width = P.shape[2]
    for p in range(p0, p1):
        panel, rows = P[p], W[p * width : (p + 1) * width]
        for k in range(W.shape[1]):  # the panel written in order; its rows stay in L1
            for j in range(width):
                panel[k, j] = rows[j, k]


@njit(inline="always", error_model="numpy")
def _add(out, b):
    """``out += b``, elementwise (both 1-D, indexed from 0: the loop vectorizes)."""
    for n in range(out.shape[0]):
        out[n] += b[n]


@njit(inline="always", error_model="numpy")
def matvec_panels(P, x, bias, out, p0, p1):
    """``out[n] = W[n] . x + bias[n]`` for the rows of panels ``p0 <= p < p1`` of ``P =
    tile.pack(W)``, float weights: `PANELS` panels at a time (`tile.panels1`), then one."""
    p = p0
    while p + PANELS <= p1:
        panels1(x, P, p, out)
        p += PANELS
    while p < p1:
        panel1(x, P, p, out)
        p += 1
    width = P.shape[2]
    _add(out[p0 * width : p1 * width], bias[p0 * width : p1 * width])


@njit(inline="always", error_model="numpy")
def project_panels(proj, xi, p0, p1):
    """The input projection of a sequence for the rows of panels ``p0 <= p < p1``: ``xi[:,
    those rows] = x @ W_ih[those rows].T + b_x``, where ``proj = (x (T, F), W_ih, P_ih, b_x)``
    and ``P_ih`` receives ``tile.pack(W_ih)``'s panels first; four steps at a time by
    `tile.tile4` (the last block overlaps the one before when 4 does not divide T >= 4)."""
    x, W_ih, P_ih, b_x = proj
    pack_panels(W_ih, P_ih, p0, p1)
    T, width = x.shape[0], P_ih.shape[2]
    for p in range(p0, p1):
        for i in range(0, T, ROWS):
            tile4(x, min(i, T - ROWS), P_ih, p, xi)
    for t in range(T):
        _add(xi[t, p0 * width : p1 * width], b_x[p0 * width : p1 * width])


def prepare(W, x):  # the Python body is never used: see the overload below
    raise NotImplementedError


@overload(prepare, inline="always")
def _prepare(W, x):
    """What `rows_of` reads for input ``x``: for int8 weights ``x`` quantised to int16 and its
    scale (`kernels.int8.quantize_input`; scale -1: widen instead), once per vector, shared by
    every row; for float weights nothing."""
    if W.dtype == types.int8:

        def impl_int8(W, x):
            xq = np.empty(x.shape[0], np.int16)
            return xq, int8.quantize_input(x, xq)

        return impl_int8
    return lambda W, x: None


def rows_of(W, s, x, xp, bias, out, n0, n1):  # the Python body is never used: see below
    raise NotImplementedError


@overload(rows_of, inline="always")
def _rows_of(W, s, x, xp, bias, out, n0, n1):
    """``out[n] = W[n] . x + bias[n]`` for rows ``n0 <= n < n1``: int8 weights in integers
    (`kernels.int8`, given ``xp = prepare(W, x)``) unless the input could not be quantised,
    float weights by `matvec_rows`."""
    if W.dtype == types.int8:

        def impl_int8(W, s, x, xp, bias, out, n0, n1):
            xq, xs = xp
            if xs < 0:  # NaN or infinity in x, or rows too long: widen the weights
                matvec_rows(W, s, x, bias, out, n0, n1)
            else:
                int8.rows(W, s, xq, xs, out, n0, n1)
                for n in range(n0, n1):
                    out[n] = plus_bias(out[n], bias, n)

        return impl_int8
    return lambda W, s, x, xp, bias, out, n0, n1: matvec_rows(W, s, x, bias, out, n0, n1)


def matvec(W, s, x, bias, out):  # the Python body is never used: see the overload below
    raise NotImplementedError


@overload(matvec)
def _matvec(W, s, x, bias, out):
    """``out = W x + bias``: float, int8 (row scales ``s``) or bfloat16 bits (uint16)."""
    if W.dtype == types.uint16:

        def impl_bf16(W, s, x, bias, out):
            bits = np.empty(W.shape[1], dtype=np.uint32)
            row = bits.view(np.float32)
            for n in range(W.shape[0]):
                for k in range(W.shape[1]):
                    bits[k] = np.uint32(W[n, k]) << np.uint32(16)  # bfloat16: the top half
                acc = np.float32(0.0)
                for k in range(W.shape[1]):
                    acc += row[k] * x[k]
                out[n] = acc + bias[n]

        return impl_bf16
    return lambda W, s, x, bias, out: rows_of(W, s, x, prepare(W, x), bias, out, 0, W.shape[0])


# fast math without assuming finite values: the NaN check below must survive
FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
STEP = njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")


@njit(inline="always", error_model="numpy")
def _finite(x):
    total = ZERO * x[0]
    for k in range(x.shape[0]):
        total += ZERO * x[k]
    return total == 0  # NaN or infinity anywhere makes the sum NaN


# -- the gate arithmetic (`kernels.gates`), given xi = W_ih x + b_ih and hh = W_hh h + b_hh ------
# for the hidden units j0 <= j < j1 (all of them but in `sequence_part`)
LSTM, GRU, RNN_TANH, RNN_RELU = 0, 1, 2, 3  # the cell, for `_gates` (`CellKernels.code`)


# Each helper works on views that start at unit ``j0`` and indexes them from 0: so LLVM knows
# the indices are not negative and vectorizes the loop (a loop over ``range(j0, j1)`` indexing
# ``xi[H + j]`` stayed scalar: 1.25 us against 0.21 for 64 LSTM units; `micro.py gates`).
# Nothing is kept for a backward: the step kernels only infer.
@njit(inline="always", error_model="numpy")
def _lstm_gates(xi, hh, c, h_out, c_out, j0, j1):
    H = c.shape[0]
    xa, xb, xc, xd = xi[j0:j1], xi[H + j0 : H + j1], xi[2 * H + j0 : 2 * H + j1], xi[3 * H + j0 :]
    ha, hb, hc, hd = hh[j0:j1], hh[H + j0 : H + j1], hh[2 * H + j0 : 2 * H + j1], hh[3 * H + j0 :]
    cp, hn, cn = c[j0:j1], h_out[j0:j1], c_out[j0:j1]
    for j in range(j1 - j0):
        _, _, _, _, cn[j], _, hn[j] = lstm_unit(
            xa[j] + ha[j], xb[j] + hb[j], xc[j] + hc[j], xd[j] + hd[j], cp[j]
        )


@njit(inline="always", error_model="numpy")
def _gru_gates(xi, hh, h, h_out, j0, j1):
    H = h.shape[0]
    xr, xz, xn = xi[j0:j1], xi[H + j0 : H + j1], xi[2 * H + j0 :]
    hr, hz, hn_ = hh[j0:j1], hh[H + j0 : H + j1], hh[2 * H + j0 :]
    hp, hn = h[j0:j1], h_out[j0:j1]
    for j in range(j1 - j0):
        _, _, _, hn[j] = gru_unit(xr[j], xz[j], xn[j], hr[j], hz[j], hn_[j], hp[j])


@njit(inline="always", error_model="numpy")
def _rnn_gates(xi, hh, h_out, relu, j0, j1):
    xa, ha, hn = xi[j0:j1], hh[j0:j1], h_out[j0:j1]
    for j in range(j1 - j0):
        hn[j] = rnn_unit(xa[j] + ha[j], relu)


@njit(inline="always", error_model="numpy")
def _gates(mode, xi, hh, h, c, h_out, c_out, j0, j1):
    """The gates of the cell ``mode``: ``h`` is the carry (the GRU reads it), ``c`` and
    ``c_out`` the LSTM's cell state (others ignore them)."""
    if mode == LSTM:
        _lstm_gates(xi, hh, c, h_out, c_out, j0, j1)
    elif mode == GRU:
        _gru_gates(xi, hh, h, h_out, j0, j1)
    else:
        _rnn_gates(xi, hh, h_out, mode == RNN_RELU, j0, j1)


# -- one call per layer and step: the products and the gates ---------------------------------
# Layer ``k`` of a stack of ``L``: its input is ``x`` (k == 0) or the layer below's new hidden
# state; it reads its carry ``h[k, 0]`` (and ``c[k, 0]``) and writes into ``new`` (one array per
# step, (S*L, 1, H) for S state parts): the new hidden state at ``new[k, 0]``, the LSTM's cell
# state at ``new[L + k, 0]``; the top layer also copies its hidden state into ``y`` (H,), an
# array of its own so that the outputs a caller keeps hold nothing else. Scratch ``xw``
# (2, G*H) receives the products. Few arguments and no views made in Python: each one costs
# the caller about 0.1-0.3 us, a good part of a small layer's step.
@njit(inline="always", error_model="numpy")
def _layer_input(x, new, k):
    return x if k == 0 else new[k - 1, 0]


@njit(inline="always", error_model="numpy")
def _top_output(new, k, L, y):
    if k == L - 1:
        y[:] = new[k, 0]


@STEP
def lstm_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw):
    if k == 0 and not _finite(x):
        return False
    L = h.shape[0]
    matvec(W_ih, s_ih, _layer_input(x, new, k), b_ih, xw[0])
    matvec(W_hh, s_hh, h[k, 0], b_hh, xw[1])
    _lstm_gates(xw[0], xw[1], c[k, 0], new[k, 0], new[L + k, 0], 0, h.shape[2])
    _top_output(new, k, L, y)
    return True


@STEP
def gru_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw):  # (c: unused)
    if k == 0 and not _finite(x):
        return False
    matvec(W_ih, s_ih, _layer_input(x, new, k), b_ih, xw[0])
    matvec(W_hh, s_hh, h[k, 0], b_hh, xw[1])
    _gru_gates(xw[0], xw[1], h[k, 0], new[k, 0], 0, h.shape[2])
    _top_output(new, k, h.shape[0], y)
    return True


@njit(inline="always", error_model="numpy")
def _rnn_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, new, y, k, xw, relu):
    if k == 0 and not _finite(x):
        return False
    matvec(W_ih, s_ih, _layer_input(x, new, k), b_ih, xw[0])
    matvec(W_hh, s_hh, h[k, 0], b_hh, xw[1])
    _rnn_gates(xw[0], xw[1], new[k, 0], relu, 0, h.shape[2])
    _top_output(new, k, h.shape[0], y)
    return True


@STEP
def rnn_tanh_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw):  # (c: unused)
    return _rnn_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, new, y, k, xw, False)


@STEP
def rnn_relu_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw):  # (c: unused)
    return _rnn_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, new, y, k, xw, True)


# -- large layers: both products split between the cores, then the gates ------------------------


# only the explicit prange runs in parallel: left to itself, numba makes a parallel region (about
# 1.5 us) of every array expression too, such as `y[:] = ...` in `_top_output`. (numba takes
# these options as a dict, which it empties as it reads; its type hints allow only a bool.)
PRANGE_ONLY = dict.fromkeys(
    ("comprehension", "reduction", "inplace_binop", "setitem", "numpy", "stencil", "fusion"), False
)


@njit(  # type: ignore[call-overload]
    cache=True, nogil=True, fastmath=FAST, error_model="numpy", parallel={**PRANGE_ONLY}
)
def split_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw, mode):
    """A layer's `lstm_step`, `gru_step` or `rnn_*_step` (``mode``; ``c`` is read by the LSTM)
    with the rows of both products shared between the threads (float or int8 weights), then the
    gates on one: one call, as a call with 14 arrays costs about 1 us and the parallel region
    itself about 1.5 us. Returns False when the first layer's ``x`` holds NaN or infinity."""
    if k == 0 and not _finite(x):
        return False
    inp = _layer_input(x, new, k)
    hk = h[k, 0]
    p_ih, p_hh = prepare(W_ih, inp), prepare(W_hh, hk)
    N = W_ih.shape[0]
    blocks = (N + 15) // 16  # of sixteen rows, per product
    for j in prange(2 * blocks):  # in two halves: each core keeps its matrix in its own cache
        if j < blocks:
            rows_of(W_ih, s_ih, inp, p_ih, b_ih, xw[0], 16 * j, min(16 * j + 16, N))
        else:
            i = j - blocks
            rows_of(W_hh, s_hh, hk, p_hh, b_hh, xw[1], 16 * i, min(16 * i + 16, N))
    L = h.shape[0]
    _gates(mode, xw[0], xw[1], hk, c[k, 0], new[k, 0], new[L + k, 0], 0, h.shape[2])
    _top_output(new, k, L, y)
    return True


def _quiet_inlined_variables(dispatcher):
    """``dispatcher`` whose compilations ignore numba's warning about the variables of `prepare`
    and `rows_of`, and only that warning, only while it compiles.

    numba's pedantic check on its own IR flags those variables once they are inlined into the
    parallel loop of `split_step` (the compiled code and its results are right; moving them out
    of line costs the split step 1.08-1.15x). The warning comes from the compilation of a new
    signature, inside the call that needs it, so the filter wraps the dispatcher's ``compile``
    (which the call goes through for a signature it has not seen, and which loads the cache):
    calls of compiled signatures are untouched, and the process's filters are left as they were.
    """
    compile_signature = dispatcher.compile

    def compile(sig):
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                # numba bolds the text with ANSI codes when colorama is installed
                message=r"(\x1b\[[0-9;]*m)*variable '_(prepare|rows_of)__locals__",
                category=NumbaIRAssumptionWarning,
            )
            return compile_signature(sig)

    dispatcher.compile = compile
    return dispatcher


split_step = _quiet_inlined_variables(split_step)


# -- a whole sequence of one stream, inference only: the time loop compiled too ------------------


@STEP
def sequence(xi, proj, W_hh, P, b_hh, m, hb, cb, y, mode):
    """Given the input projection of every step ``xi`` (T, G*H) (one BLAS product before the
    loop, or computed here first: see ``proj`` below), each step is one matrix-vector product
    and the gates, with no Python between steps.
    ``m`` (T,) is 1 while the sequence runs; past its end the carry holds and the output is 0.
    ``hb`` and ``cb`` (2, H) hold the initial carry (``h``, and the LSTM's ``c``; other cells
    ignore ``cb``) in row 0 and receive the final one in row ``T % 2``: the steps alternate
    between the two rows, so that no step writes what it reads (and the gates' loops
    vectorize); ``y`` (T, H) receives the outputs. ``P`` (G*H // W, H, W), when it has any
    panels, receives ``tile.pack(W_hh)`` first and the products read it (`matvec_panels`);
    with none (``W`` must not divide G*H), they read ``W_hh``'s rows. When ``proj``'s
    ``P_ih`` has panels too, the kernel computes ``xi`` itself first (`project_panels`)."""
    hh = np.empty(W_hh.shape[0], W_hh.dtype)
    if proj[2].shape[0] > 0:
        project_panels(proj, xi, 0, proj[2].shape[0])
    pack_panels(W_hh, P, 0, P.shape[0])
    for t in range(xi.shape[0]):
        _sequence_step(xi, W_hh, P, b_hh, m, hb, cb, y, mode, hh, t, 0, hb.shape[1])


@njit(inline="always", error_model="numpy", fastmath=FAST)
def _sequence_step(xi, W_hh, P, b_hh, m, hb, cb, y, mode, hh, t, j0, j1):
    """Step ``t`` of `sequence` for the hidden units ``j0 <= j < j1``: their rows of each
    gate's block of ``W_hh`` into ``hh`` (from the panels ``P`` when there are any: then the
    panel width divides ``j0``, ``j1`` and H), then their gates."""
    H = hb.shape[1]
    h, h_next, c, c_next = hb[t % 2], hb[1 - t % 2], cb[t % 2], cb[1 - t % 2]
    if m[t] == 0:  # past the sequence's end: the carry holds, the output is 0
        for j in range(j0, j1):
            y[t, j] = 0
            h_next[j] = h[j]
            c_next[j] = c[j]
    else:
        width = P.shape[2]
        for g in range(W_hh.shape[0] // H):  # float weights: no scales
            if P.shape[0] > 0:
                matvec_panels(P, h, b_hh, hh, (g * H + j0) // width, (g * H + j1) // width)
            else:
                matvec_rows(W_hh, None, h, b_hh, hh, g * H + j0, g * H + j1)
        _gates(mode, xi[t], hh, h, c, h_next, c_next, j0, j1)
        y[t, j0:j1] = h_next[j0:j1]


@njit(  # type: ignore[call-overload]
    cache=True, nogil=True, fastmath=FAST, error_model="numpy", parallel={**PRANGE_ONLY}
)
def sequence_pair(xi, proj, W_hh, P, b_hh, m, hb, cb, y, mode, flags):
    """`sequence` on two of numba's threads (a parallel loop of two iterations, one per
    thread, that wait for each other at the end of every step: `sequence_part`); the caller
    makes sure that numba has at least two threads, or the one would wait forever. ``proj``,
    ``P``, ``hb`` and ``cb`` as for `sequence` (with panels, their width divides H / 2),
    ``flags`` as for `sequence_part`."""
    for part in prange(2):
        sequence_part(xi, proj, W_hh, P, b_hh, m, hb, cb, y, mode, part, flags)


@njit(inline="always", error_model="numpy", fastmath=FAST)
def sequence_part(xi, proj, W_hh, P, b_hh, m, hb, cb, y, mode, part, flags):
    """`sequence` on two threads at once, each calling this with its ``part`` (0 or 1) and the
    same arrays: part p computes the hidden units ``[p*H//2, (p+1)*H//2)`` of every step, its
    rows of each gate's block of ``W_hh`` (half the weight each, so each core keeps its half
    in its own cache), and the two wait for each other at the end of every step (`sync`;
    ``flags`` from ``sync.flags(2)``, zeroed). Each step reads one row of ``hb`` and writes the
    other, so no part writes what the other may still be reading. Each part packs its own
    panels of ``P`` (and of ``proj``'s ``P_ih``, computing its own columns of ``xi``)."""
    H = hb.shape[1]
    j0, j1 = part * H // 2, (part + 1) * H // 2
    other = 1 - part
    hh = np.empty(W_hh.shape[0], W_hh.dtype)  # this part writes and reads only its own rows
    width = P.shape[2]
    for g in range(W_hh.shape[0] // H):  # this part's rows of each gate
        p0, p1 = (g * H + j0) // width, (g * H + j1) // width
        if proj[2].shape[0] > 0:
            project_panels(proj, xi, p0, p1)
        if P.shape[0] > 0:
            pack_panels(W_hh, P, p0, p1)
    for t in range(xi.shape[0]):
        _sequence_step(xi, W_hh, P, b_hh, m, hb, cb, y, mode, hh, t, j0, j1)
        sync.publish(flags, part, t + 1)
        sync.wait_for(flags, other, t + 1)
