"""Where `make bench` ran: the CPU, its instruction sets, the BLAS NumPy uses, the versions.

`bench.py` writes this as ``machine`` in bench.json and prints it above the table. The BLAS is
what threadpoolctl reports inside the rnnkit worker (`bench_worker.py`), so it is the library,
kernels and threads that rnnkit's timings ran on; the rest is read in the orchestrator.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# instruction sets that decide which kernels NumPy's BLAS, PyTorch, ONNX Runtime and numba's
# LLVM pick; listed when /proc/cpuinfo's flags (x86) or Features (Arm) have them
ISA = (
    "avx2",
    "fma",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "bf16",
)
# variables some machines set to pin OpenBLAS to an older kernel (or cache size) than the CPU's
# own; a user's machine does not have them, so the workers run without them unless --keep-env
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PACKAGES = ("numpy", "numba", "threadpoolctl", "torch", "onnxruntime")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo; empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _sysctl(name: str) -> str:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def cpu_model() -> str:
    """The CPU's name: /proc/cpuinfo's model name on Linux, sysctl's brand string on macOS,
    else what `platform` knows."""
    info = _cpuinfo()
    name = info.get("model name") or info.get("Model") or info.get("Hardware")
    if not name and platform.system() == "Darwin":
        name = _sysctl("machdep.cpu.brand_string")
    return name or platform.processor() or platform.machine() or "unknown"


def isa() -> list[str] | None:
    """Which of `ISA` the CPU has; None where the flags cannot be read (not Linux)."""
    info = _cpuinfo()
    flags = info.get("flags") or info.get("Features")
    if flags is None and platform.system() == "Darwin":
        keys = ("machdep.cpu.features", "machdep.cpu.leaf7_features")  # Intel Macs
        flags = " ".join(_sysctl(k) for k in keys).lower() or None
    if flags is None:
        return None
    have = set(flags.split())
    return [flag for flag in ISA if flag in have]


def blas() -> list[dict]:
    """threadpoolctl's view of the BLAS libraries loaded in this process: library, kernel
    architecture, threads and version. Call it in the worker, after NumPy has loaded its BLAS."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "architecture", "num_threads", "version", "threading_layer", "prefix")
    return [
        {k: lib.get(k) for k in keys} for lib in threadpool_info() if lib.get("user_api") == "blas"
    ]


def versions() -> dict[str, str | None]:
    """Python's and the installed packages' versions, read without importing them."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit(src: Path) -> str | None:
    """The commit (``+dirty`` if it has changes) of the checkout holding ``src``, if any."""
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def pinned_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Which of `OPENBLAS_PINS` are set (in ``environ``, default this process's), with values."""
    env = os.environ if environ is None else environ
    return {key: env[key] for key in OPENBLAS_PINS if key in env}


def describe(blas_libs: list[dict], keep_env: bool) -> dict:
    """The ``machine`` object of bench.json (``blas_libs`` from the rnnkit worker)."""
    pins = pinned_env()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "arch": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "cores": cores,
        "isa": isa(),
        "blas": blas_libs,
        **versions(),
        "env_cleared": [] if keep_env else sorted(pins),
        "env_kept": pins if keep_env else {},
    }


def header(machine: dict) -> list[str]:
    """Two lines for the top of the Markdown table: the machine, then the BLAS environment."""
    flags = machine.get("isa")
    isa_text = "flags unknown" if flags is None else " ".join(flags) or "none of " + "/".join(ISA)
    libs = machine.get("blas") or []
    blas_text = "; ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')} kernels,"
        f" {b.get('num_threads')} threads)"
        for b in libs
    )
    peers = ", ".join(f"{k} {machine[k]}" for k in PACKAGES if k != "threadpoolctl" and machine[k])
    if machine["env_cleared"]:
        env = (
            f"{', '.join(machine['env_cleared'])} cleared for the workers, as on a user's machine"
            " (--keep-env keeps them)"
        )
    elif machine["env_kept"]:
        pins = ", ".join(f"{k}={v}" for k, v in machine["env_kept"].items())
        env = f"{pins} kept (--keep-env): BLAS pinned as this machine's environment says"
    else:
        env = f"{' and '.join(OPENBLAS_PINS)} not set"
    return [
        f"Machine: {machine['cpu_model']} ({machine['arch']}, {machine['cores']} cores;"
        f" {isa_text}); Python {machine['python']}, {peers}.",
        f"BLAS in the rnnkit worker: {blas_text or 'none found by threadpoolctl'}; {env}.",
    ]
