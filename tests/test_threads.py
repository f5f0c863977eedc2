"""rnnkit's own threads: the batch split into chunks, nested jobs, OpenBLAS told not to spin
(by the environment, or by `rnnkit.tune_process` in time)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from rnnkit import threads as rt
from rnnkit import tuning
from rnnkit.errors import InputError


@pytest.mark.parametrize("rows", [1, 3, 4, 5, 8, 9, 32, 33])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_row_chunks_cover_the_batch(rows, n_threads, tuned):
    tuned(threads=n_threads)
    chunks = rt.row_chunks(rows)
    assert chunks[0][0] == 0 and chunks[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert all(i0 % 4 == 0 and i1 - i0 >= 4 for i0, i1 in chunks) or len(chunks) == 1
    assert len(chunks) == max(1, min(n_threads, rows // 4))


def test_in_parallel_runs_on_two_threads_and_nests_without_deadlock(tuned):
    tuned(threads=2)
    seen: list[tuple[int, int, int]] = []

    def inner(i: int, outer: int) -> int:
        seen.append((outer, i, threading.get_ident()))
        return 10 * outer + i

    def outer(j: int) -> list[int]:
        assert rt.row_chunks(32) == [(0, 32)]  # the cores are taken: one chunk
        return rt.in_parallel(lambda i: inner(i, j), 2)  # runs in turn on this thread

    assert rt.in_parallel(outer, 2) == [[0, 1], [10, 11]]
    threads_of = {o: {t for oo, _, t in seen if oo == o} for o in (0, 1)}
    assert all(len(t) == 1 for t in threads_of.values())  # nested jobs stayed on their thread
    assert threads_of[0] != threads_of[1]  # the two outer jobs ran on two threads


def _timeout_in_child(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


SHOW = "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), rnnkit.threads.blas_spin_free())"


def test_timeout_set_before_numpy_tells_openblas_not_to_spin():
    # from the environment, as the README says: OpenBLAS reads it when NumPy loads it
    assert _timeout_in_child("import os, rnnkit; " + SHOW, OPENBLAS_THREAD_TIMEOUT="4") == "4 True"
    # NumPy not loaded yet (`import rnnkit` loads it, so that is simulated): set in time
    before_numpy = "import os, sys, rnnkit; sys.modules.pop('numpy'); "
    set_it = "rnnkit.threads.set_blas_timeout(); "
    assert _timeout_in_child(before_numpy + set_it + SHOW) == "4 True"


def test_import_sets_nothing_and_tune_process_sets_it_too_late_for_this_process():
    assert _timeout_in_child("import os, rnnkit; " + SHOW) == "None False"
    # NumPy has loaded OpenBLAS, which read its environment then: for child processes only
    tuned = "import os, rnnkit; t = rnnkit.tune_process(); print(t.blas_timeout, t.blas_spin_free)"
    assert _timeout_in_child(tuned) == "4 False"
    # the user's value is kept
    mine = "import os, rnnkit; print(rnnkit.tune_process().blas_timeout)"
    assert _timeout_in_child(mine, OPENBLAS_THREAD_TIMEOUT="28") == "28"


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_bad_thread_count_is_a_one_line_error(value, monkeypatch):
    monkeypatch.setenv("RNNKIT_NUM_THREADS", value)
    monkeypatch.setattr(tuning, "_CURRENT", None)  # read on first use, not at import
    with pytest.raises(InputError, match=r"^RNNKIT_NUM_THREADS: expected a whole number"):
        rt.row_chunks(32)
    monkeypatch.setenv("RNNKIT_NUM_THREADS", "3")
    monkeypatch.setattr(tuning, "_CURRENT", None)
    assert rt.thread_count() == 3
