"""``import rnnkit`` changes nothing outside the package; `rnnkit.tune_process` makes the
process-wide settings (OpenBLAS's thread timeout, glibc's malloc thresholds) when asked.

Each check runs in a fresh interpreter: these settings belong to the whole process, and the
test process has imported rnnkit long before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import test_allocator  # tests/ is on the path, as for `parity`

GLIBC = test_allocator.GLIBC
PROCESS_SETTINGS = ("OPENBLAS_THREAD_TIMEOUT", "RNNKIT_MALLOC", "MALLOC_", "GLIBC_TUNABLES")


def _child(code: str, **env: str) -> str:
    """``code``'s standard output, run by a fresh interpreter whose environment has none of
    the process settings rnnkit looks at, except ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PROCESS_SETTINGS)}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _third_party_imports() -> list[str]:
    """The libraries (top-level names outside the standard library) ``import rnnkit`` loads."""
    code = (
        "import sys, rnnkit; "
        "names = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names); "
        "print(' '.join(sorted(n for n in names if n not in ('rnnkit', '__main__'))))"
    )
    return _child(code).split()


# NumPy, numba and the others are loaded first: what they change when imported is theirs
IMPORT = """
import importlib, json, os, sys, warnings
for name in {libraries!r}:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
environ, filters = dict(os.environ), list(warnings.filters)
import rnnkit
print(json.dumps({{
    "environ_added_or_changed": sorted(k for k, v in os.environ.items() if environ.get(k) != v),
    "environ_removed": sorted(set(environ) - set(os.environ)),
    "filters_unchanged": warnings.filters == filters,
    "filters_added": [str(f) for f in warnings.filters if f not in filters],
    "malloc_tuned": rnnkit.allocator.TUNED,
    "blas_spin_free": rnnkit.threads.blas_spin_free(),
}}))
"""


def test_import_changes_no_environment_variable_warnings_filter_or_malloc_setting():
    got = json.loads(_child(IMPORT.format(libraries=_third_party_imports())))
    assert got["environ_added_or_changed"] == [] and got["environ_removed"] == []
    assert got["filters_unchanged"], got["filters_added"]
    assert got["malloc_tuned"] is False  # mallopt was not called
    assert got["blas_spin_free"] is False  # and OPENBLAS_THREAD_TIMEOUT was not set


def test_import_leaves_malloc_as_glibc_has_it():
    tuned, faults = test_allocator._run(tune=False)  # a plain import, the same two buffers
    assert not tuned
    if GLIBC:  # only glibc's malloc is ever tuned
        assert faults > 5_000  # glibc's own behaviour: 130 000 pages if all


TUNE = """
import json, os, rnnkit
first = rnnkit.tune_process()
again = rnnkit.tune_process()
print(json.dumps({
    "answer": {k: getattr(first, k) for k in first.__dataclass_fields__},
    "same_answer": again == first,
    "environ": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
    "allocator_tuned": rnnkit.allocator.TUNED,
}))
"""


def test_tune_process_sets_the_blas_timeout_and_malloc_thresholds_once():
    got = json.loads(_child(TUNE))
    answer = got["answer"]
    assert got["same_answer"]
    # set for the processes this one starts; this one's OpenBLAS was loaded by `import rnnkit`
    assert got["environ"] == answer["blas_timeout"] == "4"
    assert answer["blas_spin_free"] is False
    assert answer["malloc_tuned"] is got["allocator_tuned"] is GLIBC
    if GLIBC:
        assert answer["malloc"] == "mmap threshold 32 MB, trim threshold 512 MB"


def test_tune_process_keeps_the_users_settings():
    answer = json.loads(_child(TUNE, OPENBLAS_THREAD_TIMEOUT="28", RNNKIT_MALLOC="system"))
    assert answer["environ"] == answer["answer"]["blas_timeout"] == "28"
    assert answer["answer"]["blas_spin_free"] is True  # the user's, from the start
    assert answer["answer"]["malloc_tuned"] is False
    assert answer["answer"]["malloc"] == "left alone: RNNKIT_MALLOC=system"
    glibc_own = json.loads(_child(TUNE, MALLOC_TRIM_THRESHOLD_="1000000"))["answer"]
    assert glibc_own["malloc_tuned"] is False
    assert glibc_own["malloc"] == "left alone: the user's MALLOC_TRIM_THRESHOLD_"


def test_the_command_tunes_the_process_before_anything_else():
    code = (
        "import os, rnnkit, rnnkit.cli\n"
        "try:\n"
        "    rnnkit.cli.main(['--help'])\n"  # parsing ends the command: tuned before it
        "except SystemExit:\n"
        "    pass\n"
        "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), rnnkit.allocator.TUNED)"
    )
    assert _child(code).splitlines()[-1] == f"4 {GLIBC}"
