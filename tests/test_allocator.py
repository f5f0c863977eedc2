"""rnnkit's malloc settings (`rnnkit.allocator`): a step's large buffers are reused, not
handed back to the system and faulted in again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

# two 13 MB arrays allocated and freed twenty times, as a training step's buffers are, after
# rnnkit.tune_process() (or after a plain import: {tune} False); prints whether malloc was tuned
# and the page faults of the twenty rounds
CYCLE = """
import resource, numpy as np, rnnkit
tuned = rnnkit.tune_process().malloc_tuned if {tune} else rnnkit.allocator.TUNED
def cycle():
    a = np.ones(13 << 18, np.float32); b = np.ones(13 << 18, np.float32)
    del a, b
cycle(); cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    cycle()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(tune: bool = True, **env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    clean.pop("RNNKIT_MALLOC", None)
    out = subprocess.run(
        [sys.executable, "-c", CYCLE.format(tune=tune)],
        env={**clean, **env},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    tuned, faults = out.stdout.split()
    return tuned == "True", int(faults)


GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_freed_step_buffers_are_reused_without_page_faults():
    tuned, faults = _run()
    system_tuned, system_faults = _run(RNNKIT_MALLOC="system")
    assert not system_tuned
    if GLIBC:
        assert tuned
        assert faults < 200  # 20 rounds of 26 MB: 130 000 pages if each round faulted them in
        assert system_faults > 5_000  # glibc's default hands them back: what rnnkit avoids
    else:  # other C libraries are left alone
        assert not tuned


def test_users_own_malloc_settings_are_kept():
    tuned, _ = _run(MALLOC_TRIM_THRESHOLD_="1000000")
    assert not tuned


def test_unknown_choice_warns_and_leaves_malloc_alone():
    out = subprocess.run(
        [sys.executable, "-c", "import rnnkit; print(rnnkit.tune_process().malloc_tuned)"],
        env={**os.environ, "RNNKIT_MALLOC": "jemalloc"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    assert out.stdout.strip() == "False"
    want = "RNNKIT_MALLOC: expected 'rnnkit' (the default) or 'system', got 'jemalloc'"
    assert want in out.stderr
    assert "<string>:1: UserWarning" in out.stderr  # it points at the call of tune_process
