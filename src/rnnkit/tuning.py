"""Every threshold and switch of the engine, in one frozen object read once.

The planner (`rnnkit.engine.plan`) reads it, and `rnnkit.threads` its thread count. Each number
is where a path starts to pay on the machine it was measured on, with the command that measures
it; `docs/ENGINE.md` has the same table with the benchmark lines. Two environment variables reach
it (``RNNKIT_KERNELS``, ``RNNKIT_NUM_THREADS``); malloc is `rnnkit.tune_process`'s
(``RNNKIT_MALLOC``), outside the choice of path. A leaf module: it imports only `errors`, so
every layer of the package may read it.

Tests and experiments change it for a block, never by assigning module globals:

    with rnnkit.tuning.using(single_sequence=False):
        layer(x)   # B=1 inference through the batch loop
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import InputError


@dataclass(frozen=True)
class Tuning:
    """The engine's knobs. Defaults are this project's measurements (2-core x86-64, AVX2)."""

    kernels: str = field(
        default="fused",
        metadata={"env": "RNNKIT_KERNELS", "help": "fused: the compiled kernels; reference: "
                  "the NumPy step loops (the specification) for every sequence"},
    )  # fmt: skip
    single_sequence: bool = field(
        default=True,
        metadata={"help": "B=1 inference runs its time loop in one compiled call "
                  "(`python benchmarks/micro.py single`)"},
    )  # fmt: skip
    pair_macs: int = field(
        default=8_000,
        metadata={"help": "multiply-adds per step (G*H*H) from which one sequence's inference "
                  "runs on two cores that wait for each other every step (`micro.py single`: "
                  "LSTM 48 65 against 88 us)"},
    )  # fmt: skip
    panel_steps: int = field(
        default=32,
        metadata={"help": "steps from which one sequence's products read packed panels "
                  "(packing costs what the panels save in about 15 steps; `micro.py panels`)"},
    )  # fmt: skip
    split_macs: int = field(
        default=200_000,
        metadata={"help": "multiply-adds per stream step from which a layer's two products "
                  "are split between the cores (`make bench`, stream cases; a parallel region "
                  "costs about 1.5 us)"},
    )  # fmt: skip
    split_bytes: int = field(
        default=384 * 1024,
        metadata={"help": "bytes of a layer's weights from which its stream step is split, "
                  "each core keeping one matrix in its own L2 cache (LSTM 128 float32, 512 KiB: "
                  "1.16-1.18x; GRU 128, 384 KiB: 1.06x; LSTM 96, 288 KiB: 0.99x)"},
    )  # fmt: skip
    threads: int = field(
        default=0,
        metadata={"env": "RNNKIT_NUM_THREADS", "help": "jobs side by side at most: the batch "
                  "loop's chunks of rows, and the second core of single-pair and stream-split "
                  "(0: NUMBA_NUM_THREADS, else the cores this process may run on)"},
    )  # fmt: skip
    quant_small_batch: int = field(
        default=16,
        metadata={"help": "rows up to which a quantized product reads the compact weights "
                  "(`kernels.quant`); above, it widens them once per call and uses BLAS "
                  "(`make eval-quant`)"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise InputError(f"Tuning: threads must be >= 0 (0: all cores), got {self.threads}")
        if self.kernels not in ("fused", "reference"):
            raise InputError(
                f"RNNKIT_KERNELS: expected 'fused' (the default) or 'reference', got "
                f"{self.kernels!r}"
            )

    @classmethod
    def from_env(cls) -> Tuning:
        """The defaults, with the environment's switches applied."""
        kernels = os.environ.get("RNNKIT_KERNELS", "").strip().lower() or "fused"
        return cls(kernels=kernels, threads=_threads_from_env())


def _threads_from_env() -> int:
    """``RNNKIT_NUM_THREADS``, else ``NUMBA_NUM_THREADS``; 0 when neither is set."""
    for key in ("RNNKIT_NUM_THREADS", "NUMBA_NUM_THREADS"):
        value = os.environ.get(key, "").strip()
        if not value:
            continue
        if not value.isdigit() or int(value) < 1:
            raise InputError(f"{key}: expected a whole number of threads >= 1, got {value!r}")
        return int(value)
    return 0


_LOCK = threading.Lock()
_CURRENT: Tuning | None = None  # read from the environment on first use


def current() -> Tuning:
    """The tuning in force (read from the environment once, on first use: a bad value is
    reported where errors are, not as a traceback from ``import rnnkit``)."""
    global _CURRENT
    if _CURRENT is None:
        with _LOCK:
            if _CURRENT is None:
                _CURRENT = Tuning.from_env()
    return _CURRENT


@contextlib.contextmanager
def using(**changes: object) -> Iterator[Tuning]:
    """The tuning with ``changes`` in force inside the block (for tests and experiments)."""
    global _CURRENT
    before = current()
    new = dataclasses.replace(before, **changes)  # type: ignore[arg-type]
    _CURRENT = new
    try:
        yield new
    finally:
        _CURRENT = before


def table() -> list[tuple[str, object, str, str]]:
    """``(name, default, environment variable, why)`` for every knob: the docs' table."""
    return [
        (f.name, f.default, f.metadata.get("env", ""), f.metadata.get("help", ""))
        for f in dataclasses.fields(Tuning)
    ]
