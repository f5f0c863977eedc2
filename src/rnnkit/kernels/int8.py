r"""int8 weights times an int16 input, in integers: the product of a quantized model's step.

An int8 model keeps ``W ~= q * s`` (`rnnkit.quantize`: one scale per row). Widening every
weight to float before a float multiply-add costs more than loading it, so the product runs in
integers instead: the input vector ``x`` (the layer's input, or its hidden state) is quantised
once per call to int16, ``x ~= xq * xs`` with ``xs = max|x| / qmax``, each row's dot product
``sum_k q[n, k] * xq[k]`` is exact in int32, and ``out[n] = (that sum) * s[n] * xs``.

The int16 rounding moves an output by at most ``xs / 2 * sum_k |W[n, k]|``; the int8 weights
themselves move it by up to ``s[n] / 2 * sum_k |x[k]|``, with a grid about 258 times coarser
(``qmax`` 32767 against 127). ``qmax`` is smaller for rows of over 516 numbers, so that no int32
sum can overflow; rows of over 4129 numbers (``qmax`` under 4095) and inputs with NaN or
infinity are left to the float path, which widens the weights.

`dot4` is the inner loop, written as LLVM vector code (numba does not vectorize an int32 sum
of int8 by int16 products from a scalar loop): sixteen int8 weights of each of four rows times
sixteen numbers of ``xq``, the products summed in pairs into eight int32 lanes, which LLVM
turns into one ``vpmaddwd`` per row on AVX2 (and into plain vector code elsewhere). Against
the float-widening product (`kernels.step.matvec_rows`), both products of an LSTM step, one
core: 1.3x at hidden 64, 1.4-1.5x at 128-512 (`python benchmarks/micro.py int8`)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # int16 numbers of ``xq`` per step of `dot4`
INT32_MAX = 2**31 - 1
WEIGHT_MAX = 127  # |q| <= 127 (`rnnkit.quantize` clips to [-127, 127])


def _hadd(builder, a, b):
    """Pairwise sums of two <8 x i32> within each 128-bit half, as ``vphaddd``."""
    lo = ir.Constant(ir.VectorType(ir.IntType(32), 8), [0, 2, 8, 10, 4, 6, 12, 14])
    hi = ir.Constant(ir.VectorType(ir.IntType(32), 8), [1, 3, 9, 11, 5, 7, 13, 15])
    return builder.add(builder.shuffle_vector(a, b, lo), builder.shuffle_vector(a, b, hi))


def _vector_at(builder, ptr, k, vec):
    """A pointer to the vector ``vec`` that starts at element ``k`` of ``ptr``."""
    return builder.bitcast(builder.gep(ptr, [k]), vec.as_pointer())


@intrinsic
def dot4(typingctx, q, n, xq, blocks):
    """``(sum_k q[n+r, k] * xq[k] for r in 0..3)`` over ``k < 16 * blocks``, int32; ``q`` (N, K)
    int8 with contiguous rows, ``xq`` (K,) contiguous int16."""
    if not (
        isinstance(q, types.Array)
        and isinstance(xq, types.Array)
        and q.dtype == types.int8
        and xq.dtype == types.int16
        and q.ndim == 2
        and xq.ndim == 1
        and q.layout == "C"
        and xq.layout == "C"
        and isinstance(n, types.Integer)
        and isinstance(blocks, types.Integer)
    ):
        return None
    sig = types.UniTuple(types.int32, 4)(q, n, xq, blocks)

    def codegen(context, builder, signature, args):
        q_t, n_t, x_t, b_t = signature.args
        qv = context.make_array(q_t)(context, builder, args[0])
        xv = context.make_array(x_t)(context, builder, args[2])
        intp = context.get_value_type(types.intp)
        n_val = context.cast(builder, args[1], n_t, types.intp)
        count = context.cast(builder, args[3], b_t, types.intp)
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        w_vec, x_vec = ir.VectorType(i8, LANES), ir.VectorType(i16, LANES)
        wide, acc_vec = ir.VectorType(i32, LANES), ir.VectorType(i32, LANES // 2)
        row_bytes = cgutils.unpack_tuple(builder, qv.strides)[0]
        first = builder.add(builder.ptrtoint(qv.data, intp), builder.mul(n_val, row_bytes))
        rows = [
            builder.inttoptr(
                builder.add(first, builder.mul(ir.Constant(intp, r), row_bytes)), i8.as_pointer()
            )
            for r in range(4)
        ]
        even = ir.Constant(acc_vec, list(range(0, LANES, 2)))
        odd = ir.Constant(acc_vec, list(range(1, LANES, 2)))
        accs = [cgutils.alloca_once_value(builder, ir.Constant(acc_vec, [0] * 8)) for _ in rows]
        with cgutils.for_range(builder, count) as loop:
            k = builder.mul(loop.index, ir.Constant(intp, LANES))
            xk = builder.load(_vector_at(builder, xv.data, k, x_vec), align=2)
            x32 = builder.sext(xk, wide)
            for row, acc in zip(rows, accs, strict=True):
                w = builder.load(_vector_at(builder, row, k, w_vec), align=1)
                prod = builder.mul(builder.sext(w, wide), x32)  # |q * xq| < 2^22
                pairs = builder.add(
                    builder.shuffle_vector(prod, prod, even),
                    builder.shuffle_vector(prod, prod, odd),
                )
                builder.store(builder.add(builder.load(acc), pairs), acc)
        a = [builder.load(acc) for acc in accs]
        s = _hadd(builder, _hadd(builder, a[0], a[1]), _hadd(builder, a[2], a[3]))
        sums = [
            builder.add(
                builder.extract_element(s, ir.Constant(i32, r)),
                builder.extract_element(s, ir.Constant(i32, r + 4)),
            )
            for r in range(4)
        ]
        return context.make_tuple(builder, signature.return_type, sums)

    return sig, codegen


@njit(inline="always", error_model="numpy")
def input_range(K):
    """The largest ``|xq|`` for rows of ``K`` numbers: 32767, less from 517 numbers on so that
    no int32 sum can overflow, and 0 (no int16 input: widen instead) once that would leave
    fewer than 12 bits (over 4129 numbers)."""
    qmax = min(32767, INT32_MAX // (WEIGHT_MAX * max(K, 1)))
    return qmax if qmax >= 4095 else 0


@njit(inline="always", error_model="numpy")
def quantize_input(x, xq):
    """``xq = rint(x / xs)`` (int16) and return ``xs`` (float64): 0 for an all-zero ``x``; -1
    (``xq`` unused) when ``x`` holds NaN or infinity, which integers cannot carry, when its
    largest number is so small (float64, under about 1e-304) that ``1 / xs`` overflows, or when
    the rows are too long for 12 bits of input (over 4129 numbers): then callers widen."""
    K = x.shape[0]
    qmax = input_range(K)
    if qmax == 0:
        return -1.0
    peak = 0.0
    bad = 0.0
    for k in range(K):
        v = np.float64(x[k])
        peak = max(peak, abs(v))
        bad += v * 0.0  # NaN once any v is NaN or infinite
    if bad != 0.0:
        return -1.0
    if peak == 0.0:
        xq[:] = 0
        return 0.0
    inv = qmax / peak
    if not inv < np.inf:  # a peak under about 1e-304 (float64): the scale overflows
        return -1.0
    for k in range(K):
        xq[k] = np.int16(np.rint(x[k] * inv))
    return peak / qmax


@njit(inline="always", error_model="numpy")
def _tail(q, n, xq, k0, acc):
    """``acc + sum_{k >= k0} q[n, k] * xq[k]`` in int32."""
    for k in range(k0, q.shape[1]):
        acc += np.int32(q[n, k]) * np.int32(xq[k])
    return acc


@njit(inline="always", error_model="numpy")
def rows(q, s, xq, xs, out, n0, n1):
    """``out[n] = (sum_k q[n, k] * xq[k]) * (s[n] * xs)`` for ``n0 <= n < n1``: four rows at a
    time by `dot4` (a last partial four overlaps the one before and writes the same numbers
    again), the ``K % 16`` last columns in scalar int32."""
    K = q.shape[1]
    blocks = K // LANES
    k0 = blocks * LANES
    count = n1 - n0
    if count < 4:
        for n in range(n0, n1):
            out[n] = np.float64(_tail(q, n, xq, 0, np.int32(0))) * (s[n] * xs)
        return
    for j in range(0, count, 4):
        n = n0 + min(j, count - 4)
        a0, a1, a2, a3 = dot4(q, n, xq, blocks)
        if k0 < K:
            a0 = _tail(q, n, xq, k0, a0)
            a1 = _tail(q, n + 1, xq, k0, a1)
            a2 = _tail(q, n + 2, xq, k0, a2)
            a3 = _tail(q, n + 3, xq, k0, a3)
        out[n] = np.float64(a0) * (s[n] * xs)
        out[n + 1] = np.float64(a1) * (s[n + 1] * xs)
        out[n + 2] = np.float64(a2) * (s[n + 2] * xs)
        out[n + 3] = np.float64(a3) * (s[n + 3] * xs)
