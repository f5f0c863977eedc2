"""Loading a script that is not a package module (the benchmarks, a module meant to be loaded
by path) as the tests need it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_by_path(path: Path, name: str | None = None) -> ModuleType:
    """The module in the file ``path``, executed afresh under ``name`` (its stem by default)."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py``, with ``benchmarks/`` on the path for the modules it imports."""
    folder = str(ROOT / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return load_by_path(ROOT / "benchmarks" / f"{name}.py")
