"""Two threads in step with each other, inside compiled loops: atomic flags as numba intrinsics.

A loop that runs on two cores at once, each core doing its half of every step, has to wait at
the end of each step until the other half is done: a numba parallel region per step costs
about 1.5 us, and a lock or a condition variable puts a thread to sleep for longer. Instead
each thread publishes how many steps it has finished in an ``int64`` array it shares with the
other (`publish`, an atomic store with release ordering: what it wrote before is visible to a
thread that reads the count) and spins on the other's count (`wait_for`, atomic loads with
acquire ordering, which the compiler may not hoist out of the loop). numba has no atomics of
its own, so these are written as LLVM IR with llvmlite, as `kernels.tile` is.

Counts live ``SLOT`` numbers apart, on cache lines of their own. Spinning costs a core while it
waits, so only loops whose two halves take about the same time and run on two free cores use
them (`rnnkit.engine.fused`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

SLOT = 16  # int64s between two threads' counts: 128 bytes, two cache lines


def flags(threads: int) -> np.ndarray:
    """Zeroed counts for ``threads`` threads: thread ``i`` owns ``flags[i * SLOT]``."""
    return np.zeros(threads * SLOT, np.int64)


def _slot_ptr(context, builder, ary_t, ary, i, i_t):
    view = context.make_array(ary_t)(context, builder, ary)
    index = context.cast(builder, i, i_t, types.intp)
    return builder.gep(view.data, [index])


def _int64_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype == types.int64 and a.ndim == 1


@intrinsic
def load_acquire(typingctx, a, i):
    """``a[i]`` read atomically, with acquire ordering (``a`` int64, 1-D; no bounds check)."""
    if not (_int64_array(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _slot_ptr(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(a, i), codegen


@intrinsic
def store_release(typingctx, a, i, v):
    """``a[i] = v`` written atomically, with release ordering (``a`` int64, 1-D, writable)."""
    if not (_int64_array(a) and a.mutable and isinstance(i, types.Integer)):
        return None
    if not isinstance(v, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ptr = _slot_ptr(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(a, i, v), codegen


@njit(inline="always")
def publish(flags, me, done):
    """Thread ``me`` has finished ``done`` steps: everything it wrote before is now visible."""
    store_release(flags, me * SLOT, done)


@njit(inline="always")
def wait_for(flags, other, done):
    """Spin until thread ``other`` has finished ``done`` steps."""
    while load_acquire(flags, other * SLOT) < done:
        pass
