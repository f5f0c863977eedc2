"""`tune_process`: the settings that belong to the whole process, made only when asked.

rnnkit runs fastest with two settings that are not its own to change behind a program's back:
OpenBLAS's idle threads sleeping at once instead of spinning (`rnnkit.threads`) and glibc's
malloc keeping the step's large buffers (`rnnkit.allocator`). ``import rnnkit`` makes neither;
the ``rnnkit`` command, the benchmarks and any program that wants them call `tune_process`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import allocator, threads


@dataclass(frozen=True)
class ProcessTuning:
    """What `tune_process` found and did.

    ``blas_timeout``: ``OPENBLAS_THREAD_TIMEOUT`` as the environment now has it (the processes
    this one starts read it); ``blas_spin_free``: whether this process's OpenBLAS has it, that is
    whether it was set before NumPy loaded OpenBLAS; ``malloc_tuned``: whether rnnkit set glibc
    malloc's thresholds; ``malloc``: the thresholds set, or why malloc was left alone.
    """

    blas_timeout: str | None
    blas_spin_free: bool
    malloc_tuned: bool
    malloc: str


_DONE: ProcessTuning | None = None


def tune_process() -> ProcessTuning:
    """Tunes this process for rnnkit, once; returns what was done (a second call returns the
    same answer and changes nothing).

    - Sets ``OPENBLAS_THREAD_TIMEOUT=4`` unless the environment has a value: OpenBLAS's idle
      threads then sleep at once instead of spinning for about 0.1 s after each product, taking
      a core from rnnkit's compiled time loop on a 2-core machine (LSTM steps at batch 8-32
      1.06-1.63x slower). OpenBLAS reads the variable only when NumPy loads it, and
      ``import rnnkit`` loads NumPy, so here it reaches only the processes this one starts. To
      have it in the current process, set it before Python starts
      (``OPENBLAS_THREAD_TIMEOUT=4 python train.py``) or in ``os.environ`` before the first
      ``import numpy`` or ``import rnnkit``; ``blas_spin_free`` in the answer tells whether
      this process has it.
    - Sets glibc malloc's mmap threshold to 32 MB and its trim threshold to 512 MB, so that a
      training step's large buffers are reused instead of handed back to the system and
      faulted in again at the next step (the price: up to 512 MB of freed memory stays with
      the process). ``RNNKIT_MALLOC=system``, or glibc's own ``MALLOC_MMAP_THRESHOLD_``,
      ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES`` in the environment, leave malloc as it
      is; so do other C libraries (`rnnkit.allocator`).
    """
    global _DONE
    if _DONE is None:
        malloc_tuned = allocator.tune(stacklevel=3)  # a warning points at our caller
        spin_free = threads.set_blas_timeout()
        _DONE = ProcessTuning(
            blas_timeout=os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
            blas_spin_free=spin_free,
            malloc_tuned=malloc_tuned,
            malloc=allocator.NOTE,
        )
    return _DONE
