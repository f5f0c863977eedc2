"""glibc's malloc kept from returning the sequence buffers to the system after every step.

A training step allocates a few arrays of ``(T, B, G*H)`` numbers (13 MB each for an LSTM of
256 at T=100, B=32) and frees them when it ends. By default glibc serves a block above its mmap
threshold with fresh pages from the kernel and hands them back on free; the threshold rises as
such blocks are freed, and the top of the heap is handed back once more than twice the
threshold is free there. Which of these happens each step depends on what the process allocated
before: after an LSTM of 64 had trained in the same process, each training step of an LSTM of
256 took 3800-4500 page faults and 12-19 ms of kernel time, 75-77 ms a step instead of 63-65
(`python benchmarks/micro.py malloc`, with ``RNNKIT_MALLOC=system`` for the first). So
when rnnkit is imported it fixes both settings (``mallopt``): blocks up to 32 MB (glibc's
largest threshold) come from the heap, and the heap keeps up to 512 MB free for the next step
instead of handing it back.

The price is that a process keeps up to 512 MB it has freed (resident, though reused by any
later allocation). ``RNNKIT_MALLOC=system`` leaves malloc as it is (``rnnkit``, the default,
tunes it), and so does setting glibc's own ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``. Other C libraries (musl, macOS, Windows) are
left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import warnings

MMAP_THRESHOLD = 32 << 20  # bytes: glibc's largest (a larger value is ignored)
TRIM_THRESHOLD = 512 << 20  # bytes of free heap kept for the next step
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _tune() -> bool:
    choice = os.environ.get("RNNKIT_MALLOC", "").strip().lower()
    if choice not in ("", "rnnkit", "system"):
        warnings.warn(
            f"RNNKIT_MALLOC: expected 'rnnkit' (the default) or 'system', got {choice!r}; "
            "leaving malloc as it is",
            stacklevel=3,
        )
    if choice != "" and choice != "rnnkit":
        return False
    if any(key in os.environ for key in _GLIBC_SETTINGS):
        return False  # the user tuned glibc's malloc: theirs to keep
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return bool(ok and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


TUNED = _tune()  # whether rnnkit set malloc's thresholds in this process
