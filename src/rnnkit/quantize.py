"""Quantized weights for inference: int8 with one scale per output row, or bfloat16.

    small = rnnkit.quantize(model, "int8")   # a copy; the float model is untouched
    rnnkit.Stream(small).step(x)

Every matrix of the recurrent layers and linear heads is stored compactly (embedding tables
stay float32); biases stay float32. int8 keeps ``W ~= q * s`` with ``s = max|row| / 127``, a
quarter of the float32 bytes; bfloat16 keeps the top 16 bits of each float32 (rounded to
nearest even), half the bytes. The products run from the compact form (`kernels.quant`) for
small batches and from a dequantized temporary for large ones. An int8 product rounds its input
to int16 (steps of ``max|x| / 32767``; coarser for rows of over 516 numbers, so that no int32
sum overflows) and sums in integers (`kernels.int8`); large batches round
their input the same way before BLAS, so every path computes the same function. A quantized
model is for inference: it has no gradients and is not saved (save the float model and quantize
on load).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .errors import InputError
from .layers import Embedding
from .layers.module import Module
from .tuning import current

KINDS = ("int8", "bfloat16")


class QuantizedMatrix:
    """A weight matrix ``W`` of shape (N, K) in compact storage; ``x @ W.T`` works as for
    an array (numpy defers to this class), and so does `dequantize`."""

    __array_ufunc__ = None  # make numpy hand `x @ W.T` to __rmatmul__ below

    def __init__(self, w: np.ndarray, kind: str) -> None:
        w = np.asarray(w, dtype=np.float32)
        self.kind, self.shape, self.dtype = kind, w.shape, np.dtype(np.float32)
        if kind == "int8":
            peak = np.abs(w).max(axis=1)
            self.scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)  # (N,)
            q = np.clip(np.rint(w / self.scale[:, None]), -127, 127).astype(np.int8)
            self.q = np.ascontiguousarray(q)  # the kernels read rows as contiguous
        elif kind == "bfloat16":
            bits = w.view(np.uint32).astype(np.uint64)
            rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
            self.q = rounded.astype(np.uint16)
        else:
            raise InputError(f"quantize: kind must be one of {KINDS}, got {kind!r}")

    @property
    def nbytes(self) -> int:
        return int(self.q.nbytes + (self.scale.nbytes if self.kind == "int8" else 0))

    def dequantize(self, dtype: Any = np.float32) -> np.ndarray:
        if self.kind == "int8":
            return self.q.astype(dtype) * self.scale[:, None].astype(dtype)
        return (self.q.astype(np.uint32) << 16).view(np.float32)

    @property
    def T(self) -> _Transposed:
        return _Transposed(self)

    def _compute_dtype(self, dtype: Any) -> np.dtype:
        """The dtype a product with an input of ``dtype`` computes in: int8 quantises a float64
        input from float64, as the streaming step of a float64 model; all else is float32."""
        wide = self.kind == "int8" and np.dtype(dtype) == np.float64
        return np.dtype(np.float64 if wide else np.float32)

    def widened(self, dtype: Any) -> Widened:
        """This matrix widened once, for many large products (``x @ widened.T``), each giving
        the numbers `matmul_t` gives (a quantized sequence's recurrent products)."""
        return Widened(self, self._compute_dtype(dtype))

    def matmul_t(self, x: np.ndarray) -> np.ndarray:
        """``x @ W.T`` for ``x`` of shape (..., K): up to `Tuning.quant_small_batch` rows from
        the compact weights, else on the weights widened for this product."""
        from .kernels.quant import matmul_t_bf16, matmul_t_int8

        lead = x.shape[:-1]
        dtype = self._compute_dtype(np.asarray(x).dtype)
        x2 = np.ascontiguousarray(x, dtype=dtype).reshape(-1, self.shape[1])
        if x2.shape[0] > current().quant_small_batch:
            return Widened(self, dtype).matmul_t(x2).reshape(*lead, self.shape[0])
        out = np.empty((x2.shape[0], self.shape[0]), dtype=dtype)
        if self.kind == "int8":
            matmul_t_int8(x2, self.q, self.scale, out)
        else:
            matmul_t_bf16(x2, self.q, out)
        return out.reshape(*lead, self.shape[0])


def on_int16_grid(x: np.ndarray) -> np.ndarray:
    """Each row of ``x`` (B, K) rounded as the int8 kernel quantises its input
    (`rnnkit.kernels.int8.quantize_input`), back in float: ``rint(x / xs) * xs``. Rows with
    NaN or infinity or a largest number so small that ``1 / xs`` overflows, and rows too long
    for int16 inputs, stay as they are (the kernel widens the weights for them)."""
    from .kernels.int8 import input_range

    qmax = input_range(x.shape[1])
    if qmax == 0:
        return x
    wide = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        peak = np.abs(wide).max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", over="ignore"):
        ok = np.isfinite(peak) & (peak > 0) & np.isfinite(qmax / peak)  # as the kernel
    peak = np.where(ok, peak, 1.0)
    grid = np.rint(np.where(ok, wide, 0.0) * (qmax / peak)) * (peak / qmax)  # as the kernel
    return np.where(ok, grid, x).astype(x.dtype)


class Widened:
    """A `QuantizedMatrix` widened to ``dtype`` once; ``x @ widened.T`` computes what
    ``x @ m.T`` does (int8: the input on the int16 grid first), with BLAS."""

    __array_ufunc__ = None

    def __init__(self, m: QuantizedMatrix, dtype: Any) -> None:
        self.m, self.dtype = m, np.dtype(dtype)
        self.W = m.dequantize(self.dtype)  # (N, K)

    @property
    def T(self) -> Widened:
        return self

    def matmul_t(self, x: np.ndarray) -> np.ndarray:
        x2 = np.ascontiguousarray(x, dtype=self.dtype)
        if self.m.kind == "int8":  # the same numbers as the kernel, to round-off
            x2 = on_int16_grid(x2.reshape(-1, x2.shape[-1])).reshape(x2.shape)
        return x2 @ self.W.T

    def __rmatmul__(self, x: np.ndarray) -> np.ndarray:
        return self.matmul_t(x)


class _Transposed:
    __array_ufunc__ = None

    def __init__(self, m: QuantizedMatrix) -> None:
        self.m = m

    def __rmatmul__(self, x: np.ndarray) -> np.ndarray:
        return self.m.matmul_t(x)


def quantize(model: Module, kind: str = "int8") -> Module:
    """A copy of ``model`` whose weight matrices are stored as ``kind`` (int8 or bfloat16)."""
    if not isinstance(model, Module):
        raise InputError(
            f"quantize: expected an rnnkit model (a Module), got {type(model).__name__}"
        )
    if not isinstance(kind, str) or kind not in KINDS:
        raise InputError(f"quantize: kind must be one of {KINDS}, got {kind!r}")
    small = copy.deepcopy(model)

    def convert(module: Module) -> None:
        if not isinstance(module, Embedding):
            for key, value in list(module.params.items()):
                if isinstance(value, np.ndarray) and value.ndim == 2:
                    module.params[key] = QuantizedMatrix(value, kind)  # type: ignore[assignment]
        module.grads = {}
        for child in module.children.values():
            convert(child)

    convert(small)
    small.quantized = kind  # type: ignore[attr-defined]
    return small


def weight_bytes(model: Module) -> int:
    """Bytes of every parameter as stored (compact matrices counted compactly)."""
    total = 0
    seen: set[int] = set()

    def walk(module: Module) -> None:
        nonlocal total
        for value in module.params.values():
            if id(value) not in seen:
                seen.add(id(value))
                total += int(value.nbytes)
        for child in module.children.values():
            walk(child)

    walk(model)
    return total


def is_quantized(model: Any) -> bool:
    return getattr(model, "quantized", None) is not None
