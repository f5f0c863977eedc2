"""glibc's malloc kept from returning the sequence buffers to the system after every step.

A training step allocates a few arrays of ``(T, B, G*H)`` numbers (13 MB each for an LSTM of
256 at T=100, B=32) and frees them when it ends. By default glibc serves a block above its mmap
threshold with fresh pages from the kernel and hands them back on free; the threshold rises as
such blocks are freed, and the top of the heap is handed back once more than twice the
threshold is free there. Which of these happens each step depends on what the process allocated
before: after an LSTM of 64 had trained in the same process, each training step of an LSTM of
256 took 3800-4500 page faults and 12-19 ms of kernel time, 75-77 ms a step instead of 63-65
(`python benchmarks/micro.py malloc`, with ``RNNKIT_MALLOC=system`` for the first). So
`tune` (called by `rnnkit.tune_process`, which the ``rnnkit`` command calls first) fixes both
settings (``mallopt``): blocks up to 32 MB (glibc's largest threshold) come from the heap, and
the heap keeps up to 512 MB free for the next step instead of handing it back. Importing rnnkit
does not: malloc belongs to the whole process, and a library imported into someone else's
program leaves it as that program chose.

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


TUNED = False  # whether rnnkit set malloc's thresholds in this process (`tune`)
NOTE = "not asked: rnnkit.tune_process() was not called"  # what `tune` did, or why not
_DONE = False


def tune(stacklevel: int = 2) -> bool:
    """Sets glibc malloc's mmap and trim thresholds (see the module's docstring) unless
    ``RNNKIT_MALLOC=system``, glibc's own variables, or another C library say otherwise; returns
    `TUNED` and leaves the reason in `NOTE`. Only the first call acts: settings made by then
    are kept. A warning about ``RNNKIT_MALLOC`` points at the frame ``stacklevel`` counts from
    here, as `warnings.warn` does (2: whoever called `tune`)."""
    global TUNED, NOTE, _DONE
    if not _DONE:
        TUNED, NOTE = _tune(stacklevel + 1)
        _DONE = True
    return TUNED


def _tune(stacklevel: int) -> tuple[bool, str]:
    choice = os.environ.get("RNNKIT_MALLOC", "").strip().lower()
    if choice not in ("", "rnnkit", "system"):
        warnings.warn(
            f"RNNKIT_MALLOC: expected 'rnnkit' (the default) or 'system', got {choice!r}; "
            "leaving malloc as it is",
            stacklevel=stacklevel,
        )
    if choice != "" and choice != "rnnkit":
        return False, f"left alone: RNNKIT_MALLOC={choice}"
    mine = [key for key in _GLIBC_SETTINGS if key in os.environ]
    if mine:
        return False, f"left alone: the user's {', '.join(mine)}"  # theirs to keep
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False, "left alone: not glibc's malloc"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False, "left alone: the C library could not be loaded"
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    if not (ok and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return False, "mallopt refused the thresholds"
    mmap_mb, trim_mb = MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20
    return True, f"mmap threshold {mmap_mb} MB, trim threshold {trim_mb} MB"
