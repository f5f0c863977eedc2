"""How much memory a training run needs and how much the machine has, checked before the model
is built: a run too large for the machine ends with one line naming the option to reduce, not
with a traceback from a failed allocation (or the kernel's OOM killer) minutes later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # gate blocks of H rows in each weight matrix


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes a language-model training step holds at its peak, by what they are for."""

    weights: int  # parameters, gradients, AdamW's two moments, the copies saving a checkpoint
    activations: int  # what the recurrent stack keeps from the forward for the backward
    logits: int  # the head's (T, B, V) outputs, their softmax and their gradient

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.logits


def lm_training_memory(
    vocab: int,
    cell: str,
    hidden: int,
    layers: int,
    embedding: int,
    batch: int,
    bptt: int,
    tie_weights: bool = False,
    itemsize: int = 4,
) -> TrainingMemory:
    """The memory of one training step of `rnnkit.models.LanguageModel`, in bytes::

        P = V*E + sum_l G*H*(in_l + H + 2) + H*V + V      parameters (no H*V when tied)
            G gates (LSTM 4, GRU 3, RNN 1), in_0 = E, in_l = H above the first layer
        weights     = 7 * P * s       value, gradient, Adam m and v, and 3 copies while saving
        activations = T*B*(L*(2G + 4)*H + 2*E) * s    gates, h, c, and their gradients
        logits      = 3 * T*B*V * s   logits, softmax, their gradient

    ``s`` is the item size (4 for float32), T = ``bptt``, B = ``batch``, L = ``layers``. It is
    an estimate of the peak (within a factor of two of a measured one, tests/test_reliability_
    train.py), not an allocator's account: good enough to refuse what cannot fit.
    """
    g = GATES[cell]
    recurrent = sum(
        g * hidden * ((embedding if i == 0 else hidden) + hidden + 2) for i in range(layers)
    )
    head = (0 if tie_weights else hidden * vocab) + vocab
    params = vocab * embedding + recurrent + head
    steps = bptt * batch
    return TrainingMemory(
        weights=7 * params * itemsize,
        activations=steps * (layers * (2 * g + 4) * hidden + 2 * embedding) * itemsize,
        logits=3 * steps * vocab * itemsize,
    )


def available_memory() -> int | None:
    """Bytes this process can still allocate: the kernel's ``MemAvailable`` (/proc/meminfo),
    else the free physical pages (``os.sysconf``), lowered to what a cgroup v2 limit leaves;
    None when the platform says nothing."""
    free = _meminfo_available()
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = None
    limit = _cgroup_room()
    if limit is not None:
        free = limit if free is None else min(free, limit)
    return free


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel says kB and means KiB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    try:
        limit = (root / "memory.max").read_text().strip()
        used = int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def gib(n: float) -> str:
    """``n`` bytes in words: ``298 GiB``, ``1.5 GiB``, ``310 MiB``, ``<1 MiB``."""
    if n < 1 << 20:
        return "<1 MiB"
    if n >= 10 << 30:
        return f"{n / (1 << 30):,.0f} GiB"
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{n / (1 << 20):,.0f} MiB"
