"""Matrix products straight from compact weights: ``out = x W^T`` with W stored as int8 (one
scale per row) or as bfloat16 (the top 16 bits of a float32). For streaming batches: the weights
are read once, in their compact form, with no float copy made; int8 in integer arithmetic, as
the streaming step (`kernels.int8`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .step import prepare, rows_of


@njit(cache=True, error_model="numpy")
def matmul_t_int8(x, q, scale, out):  # x (B, K) float, q (N, K) i8, scale (N,) f32, out (B, N)
    """Row by row, the streaming step's int8 product (`kernels.int8`: the input quantised to
    int16, the sums in integers), so that a batch and a stream give the same numbers."""
    for b in range(x.shape[0]):
        rows_of(q, scale, x[b], prepare(q, x[b]), None, out[b], 0, q.shape[0])


@njit(cache=True, fastmath=True, error_model="numpy")
def matmul_t_bf16(x, q, out):  # x (B, K) f32, q (N, K) u16 (bfloat16 bits), out (B, N)
    B, K = x.shape
    N = q.shape[0]
    bits = np.empty(K, dtype=np.uint32)
    row = bits.view(np.float32)
    for n in range(N):
        for k in range(K):
            bits[k] = np.uint32(q[n, k]) << 16  # bfloat16 is a float32 with the low half cut
        for b in range(B):
            acc = np.float32(0.0)
            for k in range(K):
                acc += x[b, k] * row[k]
            out[b, n] = acc
