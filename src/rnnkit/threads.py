"""rnnkit's own threads: one job per core, and BLAS kept out of their way.

The sequences of a batch are independent inside a layer: `in_parallel` runs such jobs side by
side, the first on the calling thread and the others on a small pool (the compiled loops and
BLAS release the GIL). A job that itself asks for jobs in parallel runs them one after the
other: the cores are taken. How many at most is `Tuning.threads` (`rnnkit.tuning`).

OpenBLAS keeps its idle threads spinning for about 0.1 s after each product (2^28 cycles), so
on a 2-core machine the product before a compiled time loop would take a core away from it for
the whole loop (measured: LSTM steps at batch 8-32 1.06-1.63x slower; docs/DESIGN-NOTES.md).
``OPENBLAS_THREAD_TIMEOUT=4`` makes idle threads sleep at once, but OpenBLAS reads it only when
NumPy loads it, and ``import rnnkit`` loads NumPy: so a program sets it in its environment
(the ``rnnkit`` command does, `rnnkit.tune_process`), and `blas_spin_free` tells whether this
process's OpenBLAS has it. Importing this module changes nothing: `set_blas_timeout` does.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .tuning import current

_R = TypeVar("_R")
_POOL: ThreadPoolExecutor | None = None
_LOCAL = threading.local()
_POOL_LOCK = threading.Lock()


def thread_count() -> int:
    """How many jobs run side by side at most: `Tuning.threads` (``RNNKIT_NUM_THREADS``, else
    ``NUMBA_NUM_THREADS``), else the cores this process may run on."""
    chosen = current().threads
    if chosen:
        return chosen
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def in_parallel(run: Callable[[int], _R], n: int) -> list[_R]:
    """``[run(0), ..., run(n-1)]``: ``run(0)`` on this thread, the others on the pool. Called
    from inside such a job, it runs them in turn on the caller's thread."""
    global _POOL
    if n == 1 or getattr(_LOCAL, "busy", False):
        return [run(i) for i in range(n)]
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(thread_count(), thread_name_prefix="rnnkit-worker")
    others = [_POOL.submit(_job, run, i) for i in range(1, n)]
    first = _job(run, 0)
    return [first, *(f.result() for f in others)]


def side_by_side(n: int) -> bool:
    """Whether this thread may put ``n`` cores to work at once: rnnkit may use ``n`` threads
    (`thread_count`) and the caller is not itself one of `in_parallel`'s jobs, whose cores are
    taken. Work whose parts wait for each other needs that (`kernels.step.sequence_pair`)."""
    return n > 1 and thread_count() >= n and not getattr(_LOCAL, "busy", False)


def _job(run: Callable[[int], _R], i: int) -> _R:
    _LOCAL.busy = True
    try:
        return run(i)
    finally:
        _LOCAL.busy = False


def row_chunks(rows: int, min_rows: int = 4) -> list[tuple[int, int]]:
    """``rows`` cut into one chunk ``[i0, i1)`` per core, each at least ``min_rows`` long and
    starting at a multiple of it (none when called from inside a parallel job)."""
    n = max(1, min(thread_count(), rows // min_rows))
    if getattr(_LOCAL, "busy", False):
        n = 1
    cuts = [(rows * p // n) // min_rows * min_rows for p in range(n)] + [rows]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


_TIMEOUT = "OPENBLAS_THREAD_TIMEOUT"
# set by `set_blas_timeout` after NumPy had loaded OpenBLAS: for child processes only
_SET_TOO_LATE = False


def blas_spin_free() -> bool:
    """Whether OpenBLAS's idle threads sleep at once, so that they leave the cores to rnnkit's
    threads: ``OPENBLAS_THREAD_TIMEOUT`` is in the environment and was not set by
    `set_blas_timeout` after NumPy had loaded OpenBLAS (a value the user set, rnnkit takes to
    have been there from the start: it cannot tell when it came)."""
    return _TIMEOUT in os.environ and not _SET_TOO_LATE


def set_blas_timeout() -> bool:
    """Sets ``OPENBLAS_THREAD_TIMEOUT=4`` unless the environment has a value already, and
    returns `blas_spin_free`. Set before NumPy is imported, it takes effect in this process;
    set after, only in the processes this one starts (OpenBLAS read its environment when NumPy
    loaded it). Called by `rnnkit.tune_process`; calling it again changes nothing."""
    global _SET_TOO_LATE
    if _TIMEOUT not in os.environ:
        os.environ[_TIMEOUT] = "4"
        _SET_TOO_LATE = "numpy" in sys.modules
    return blas_spin_free()
