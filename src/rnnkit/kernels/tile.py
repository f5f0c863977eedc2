r"""A register-blocked product tile, written as LLVM vector code: the core of the time loops'
recurrent product.

``tile4(a, i, P, p, out)`` computes ``out[i:i+4, p*W:(p+1)*W] = a[i:i+4] @ panel p`` where the
weight is *packed* (`pack`): panel ``p`` holds rows ``p*W .. p*W+W-1`` of the weight (N, K)
transposed, ``P[p, k, :] = w[p*W:(p+1)*W, k]``, so each step of ``k`` reads ``W`` contiguous
numbers (two vectors) and multiplies them by one broadcast number of each of the four rows of
``a``: eight vector sums that stay in registers, two vector loads and four broadcasts per eight
fused multiply-adds. ``W`` is two vectors of 256 bits: 16 float32 or 8 float64.

numba does not produce this code from scalar loops (a 4 x 16 block of scalar sums came out
unvectorized; `docs/DESIGN-NOTES.md`), so the tile is written with llvmlite's IR builder as a
numba intrinsic: it is inlined into the compiled loops that call it, and LLVM turns the vector
types into the machine's instructions (AVX2 and FMA here; on a machine without them the same
vectors are split into narrower ones, still correct). Against the product it replaced (four rows
of ``a`` by two rows of the weight, sums along K: `loops._dot_block`), one core: 1.24-1.88x at 4
and 16 rows, hidden 64-512, forward and backward (`python benchmarks/micro.py tile`).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

ROWS = 4  # rows of ``a`` per tile
VECTOR_BYTES = 32  # 256-bit vectors; a panel is two of them wide


def panel_width(dtype: np.dtype) -> int:
    """Numbers per panel row: 16 for float32, 8 for float64."""
    return 2 * VECTOR_BYTES // np.dtype(dtype).itemsize


def pack(w: np.ndarray) -> np.ndarray:
    """The whole panels of ``w`` (N, K): ``P`` (N // W, K, W) with ``P[p, k, j] = w[p*W + j, k]``.
    The last ``N % W`` rows are not in it (the loops take them from ``w``)."""
    width = panel_width(w.dtype)
    n_panels, K = w.shape[0] // width, w.shape[1]
    return np.ascontiguousarray(
        w[: n_panels * width].reshape(n_panels, width, K).transpose(0, 2, 1)
    )


def pack_columns(w: np.ndarray) -> np.ndarray:
    """`pack` of ``w.T`` without making ``w.T`` first: ``P[p, k, j] = w[k, p*W + j]``."""
    width = panel_width(w.dtype)
    K, n_panels = w.shape[0], w.shape[1] // width
    return np.ascontiguousarray(
        w[:, : n_panels * width].reshape(K, n_panels, width).transpose(1, 0, 2)
    )


def _element_ptr(builder, ary, index0, index1=None):
    """Pointer to ``ary[index0, index1]`` (or ``ary[index0, 0, 0]``) of a C-order array struct."""
    strides = cgutils.unpack_tuple(builder, ary.strides)
    offset = builder.mul(index0, strides[0])
    if index1 is not None:
        offset = builder.add(offset, builder.mul(index1, strides[1]))
    base = builder.ptrtoint(ary.data, offset.type)
    return builder.inttoptr(builder.add(base, offset), ary.data.type)


def _float_operands(a, P, out, rows: int) -> bool:
    """Whether ``a`` (``rows`` dimensions), packed panels ``P`` and ``out`` (as many dimensions as
    ``a``) are arrays of one float dtype that the vector code can read and write: ``P``
    C-contiguous, ``out`` writable."""
    return (
        isinstance(a, types.Array)
        and isinstance(P, types.Array)
        and isinstance(out, types.Array)
        and a.dtype in (types.float32, types.float64)
        and P.dtype == a.dtype
        and out.dtype == a.dtype
        and a.ndim == rows
        and P.ndim == 3
        and out.ndim == rows
        and P.layout == "C"
        and out.layout == "C"
        and out.mutable
    )


def _vector_fma(context, builder, dtype):
    """The 256-bit vector type of ``dtype``, its pointer type, its lanes and LLVM's fused
    multiply-add on it."""
    lanes = VECTOR_BYTES // (4 if dtype == types.float32 else 8)
    vec = ir.VectorType(context.get_value_type(dtype), lanes)
    fma = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(vec, [vec, vec, vec]),
        f"llvm.fmuladd.v{lanes}{'f32' if dtype == types.float32 else 'f64'}",
    )
    return vec, vec.as_pointer(), lanes, fma


def _zero_sums(builder, vec, n: int) -> list:
    """``n`` vector sums in registers (stack slots that LLVM promotes), zeroed."""
    zeros = ir.Constant(vec, [0.0] * vec.count)
    return [cgutils.alloca_once_value(builder, zeros) for _ in range(n)]


def _broadcast(builder, vec, value):
    """``value`` in every lane of ``vec``."""
    lane0 = ir.Constant(ir.IntType(32), 0)
    one = builder.insert_element(ir.Constant(vec, None), value, lane0)
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vec.count), [0] * vec.count)
    return builder.shuffle_vector(one, ir.Constant(vec, None), mask)


@intrinsic
def tile4(typingctx, a, i, P, p, out):
    """``out[i:i+4, p*W:(p+1)*W] = a[i:i+4] @ P[p]`` (see the module docstring). ``a`` (M, K)
    and ``out`` need contiguous rows; ``P`` (panels, K, W) is C-contiguous; same float dtype."""
    if not (_float_operands(a, P, out, 2) and a.layout == "C"):  # contiguous rows
        return None
    sig = types.void(a, i, P, p, out)

    def codegen(context, builder, signature, args):
        a_t, i_t, P_t, p_t, out_t = signature.args
        av = context.make_array(a_t)(context, builder, args[0])
        Pv = context.make_array(P_t)(context, builder, args[2])
        ov = context.make_array(out_t)(context, builder, args[4])
        intp = context.get_value_type(types.intp)
        i_val = context.cast(builder, args[1], i_t, types.intp)
        p_val = context.cast(builder, args[3], p_t, types.intp)
        vec, vptr, lanes, fma = _vector_fma(context, builder, a_t.dtype)
        K = cgutils.unpack_tuple(builder, av.shape)[1]
        width = ir.Constant(intp, 2 * lanes)
        zero_idx = ir.Constant(intp, 0)
        rows = [
            _element_ptr(builder, av, builder.add(i_val, ir.Constant(intp, r)), zero_idx)
            for r in range(ROWS)
        ]
        panel = _element_ptr(builder, Pv, p_val)
        accs = _zero_sums(builder, vec, 2 * ROWS)
        with cgutils.for_range(builder, K) as loop:
            k = loop.index
            q = builder.gep(panel, [builder.mul(k, width)])
            w0 = builder.load(builder.bitcast(q, vptr), align=4)
            q1 = builder.gep(q, [ir.Constant(intp, lanes)])
            w1 = builder.load(builder.bitcast(q1, vptr), align=4)
            for r in range(ROWS):
                xv = _broadcast(builder, vec, builder.load(builder.gep(rows[r], [k])))
                for half, w in enumerate((w0, w1)):
                    acc = accs[2 * r + half]
                    builder.store(builder.call(fma, [xv, w, builder.load(acc)]), acc)
        col = builder.mul(p_val, width)
        for r in range(ROWS):
            dst = _element_ptr(builder, ov, builder.add(i_val, ir.Constant(intp, r)), col)
            for half in range(2):
                target = builder.gep(dst, [ir.Constant(intp, half * lanes)])
                value = builder.load(accs[2 * r + half])
                builder.store(value, builder.bitcast(target, vptr), align=4)
        return context.get_dummy_value()

    return sig, codegen


# -- one row: the matrix-vector product of a single sequence or stream ------------------------
PANELS = 4  # panels per `panels1` call: 8 vector sums in registers, 64 float32 outputs


def _panels_codegen(count: int):
    """Code for ``out[p*W:(p+count)*W] = x @ P[p:p+count]`` (`panels1` and `panel1`)."""

    def codegen(context, builder, signature, args):
        x_t, P_t, p_t, out_t = signature.args
        xv = context.make_array(x_t)(context, builder, args[0])
        Pv = context.make_array(P_t)(context, builder, args[1])
        ov = context.make_array(out_t)(context, builder, args[3])
        intp = context.get_value_type(types.intp)
        p_val = context.cast(builder, args[2], p_t, types.intp)
        vec, vptr, lanes, fma = _vector_fma(context, builder, x_t.dtype)
        K = cgutils.unpack_tuple(builder, Pv.shape)[1]
        width = ir.Constant(intp, 2 * lanes)
        panels = [
            _element_ptr(builder, Pv, builder.add(p_val, ir.Constant(intp, q)))
            for q in range(count)
        ]
        x_stride = cgutils.unpack_tuple(builder, xv.strides)[0]
        x_base = builder.ptrtoint(xv.data, intp)
        accs = _zero_sums(builder, vec, 2 * count)
        with cgutils.for_range(builder, K) as loop:
            k = loop.index
            x_ptr = builder.inttoptr(builder.add(x_base, builder.mul(k, x_stride)), xv.data.type)
            xk = _broadcast(builder, vec, builder.load(x_ptr))
            for q in range(count):
                row = builder.gep(panels[q], [builder.mul(k, width)])
                for half in range(2):
                    w_ptr = builder.gep(row, [ir.Constant(intp, half * lanes)])
                    w = builder.load(builder.bitcast(w_ptr, vptr), align=4)
                    acc = accs[2 * q + half]
                    builder.store(builder.call(fma, [xk, w, builder.load(acc)]), acc)
        first = builder.mul(p_val, width)
        for q in range(2 * count):
            dst = builder.gep(ov.data, [builder.add(first, ir.Constant(intp, q * lanes))])
            builder.store(builder.load(accs[q]), builder.bitcast(dst, vptr), align=4)
        return context.get_dummy_value()

    return codegen


def _panels_signature(x, P, p, out):
    if not (_float_operands(x, P, out, 1) and isinstance(p, types.Integer)):
        return None
    return types.void(x, P, p, out)


@intrinsic
def panels1(typingctx, x, P, p, out):
    """``out[p*W:(p+PANELS)*W] = P[p:p+PANELS] x``: `PANELS` panels of a packed weight
    (`pack`) times one vector ``x`` (K,), ``2 * PANELS`` vector sums in registers, one broadcast
    of ``x[k]`` and ``2 * PANELS`` vector loads per step of ``k``. Against dot products along
    the weight's rows four at a time (`kernels.step.matvec_rows`), which end in a horizontal
    sum per row, one core, an LSTM's ``W_hh`` (`python benchmarks/micro.py panels`, five runs;
    the noise moves the row-wise product most): 1.17-1.46x at hidden 64, 0.98-1.38x at 128,
    1.04-1.19x at 256 and 0.97-1.09x at 512, where the weight does not fit in the core's L2
    cache and both wait for memory. ``out`` contiguous."""
    sig = _panels_signature(x, P, p, out)
    return (sig, _panels_codegen(PANELS)) if sig is not None else None


@intrinsic
def panel1(typingctx, x, P, p, out):
    """`panels1` for one panel: ``out[p*W:(p+1)*W] = P[p] x``."""
    sig = _panels_signature(x, P, p, out)
    return (sig, _panels_codegen(1)) if sig is not None else None
