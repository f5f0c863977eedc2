"""Two cores on independent recurrences: directions side by side, and the wavefront.

A recurrence is sequential in time, so its steps cannot be shared between cores; but two
recurrences that do not feed each other can run at once, each on its own core (the fused
kernels and BLAS release the GIL):

* the two directions of a bidirectional layer (`in_parallel` over the directions);
* in a stack, layer k+1 on chunk c of the time axis while layer k runs chunk c+1: the
  *wavefront*. The time axis is cut into chunks; at tick ``s`` layer ``k`` runs chunk ``s - k``.
  The backward runs the same schedule mirrored: the top layer's last chunk first, then the
  layer below takes that chunk's input gradient while the top layer goes on to the chunk before.

Both are switches, off by default: `make bench-parallel` times each against the sequential
path, and on this project's 2-core machine neither paid reliably (see docs/DESIGN-NOTES.md).
The directions run with BLAS held to one thread each (two threads that each call a 2-thread
BLAS oversubscribe the cores); the wavefront leaves BLAS alone, which measured better for it.
``RNNKIT_PARALLEL_DIRECTIONS=1`` and ``RNNKIT_WAVEFRONT=8`` (chunks) switch them on for a
process; the module attributes ``PARALLEL_DIRECTIONS`` and ``WAVEFRONT_CHUNKS`` do it at run
time. The numbers are the same
either way: the same sequence loops run on the same data; the wavefront only hands each layer's
carry (and its gradient) from one chunk to the next.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..cells import CellSpec
from ..cells.sequence import Weights, sequence_backward, sequence_forward
from ..threads import in_parallel

_R = TypeVar("_R")
PARALLEL_DIRECTIONS = os.environ.get("RNNKIT_PARALLEL_DIRECTIONS", "0") == "1"
# chunks of the time axis in a wavefront; 0 runs stacks layer after layer
WAVEFRONT_CHUNKS = int(os.environ.get("RNNKIT_WAVEFRONT", "0"))


def each_direction(run: Callable[[int], _R], directions: int) -> list[_R]:
    """``[run(0), run(1)]`` for the two directions, side by side unless switched off."""
    if directions == 1 or not PARALLEL_DIRECTIONS:
        return [run(d) for d in range(directions)]
    return in_parallel(run, directions, blas_threads=1)


def wavefront_chunks(num_layers: int, directions: int, T: int) -> int:
    """How many chunks a stack's wavefront cuts ``T`` steps into; 0: no wavefront."""
    if WAVEFRONT_CHUNKS < 2 or num_layers < 2 or directions != 1:
        return 0
    return min(WAVEFRONT_CHUNKS, T // 4)  # chunks of at least 4 steps, else not worth a tick


def _ticks(n_chunks: int, layers: int, backward: bool) -> list[list[tuple[int, int]]]:
    """The (layer, chunk) pairs that run together at each tick."""
    ticks = []
    for s in range(n_chunks + layers - 1):
        jobs = [(k, s - k) for k in range(layers) if 0 <= s - k < n_chunks]
        if backward:
            jobs = [(layers - 1 - k, n_chunks - 1 - c) for k, c in jobs]
        ticks.append(jobs)
    return ticks


def _run_ticks(ticks: list[list[tuple[int, int]]], work: Callable[[int, int], None]) -> None:
    for jobs in ticks:

        def job(j: int, jobs: list[tuple[int, int]] = jobs) -> None:
            work(*jobs[j])

        in_parallel(job, len(jobs))


@dataclass
class WavefrontTape:
    """What the wavefront's backward needs: each layer's per-chunk caches and dropout mask."""

    bounds: list[tuple[int, int]]  # (start, end) of each chunk
    caches: list[list[Any]]  # [layer][chunk]
    drops: Sequence[np.ndarray | None]  # [layer]: the mask on its output (None: no dropout)


def wavefront_forward(
    cell: CellSpec,
    x: np.ndarray,
    carries: list,
    weights: list[Weights],
    mask: np.ndarray | None,
    drops: Sequence[np.ndarray | None],
    n_chunks: int,
    train: bool,
) -> tuple[np.ndarray, list, WavefrontTape]:
    """A unidirectional stack over ``x`` (T, B, F): top outputs, final carries, the tape."""
    T, B, _ = x.shape
    L, H = len(weights), weights[0].W_hh.shape[1]
    size = -(-T // n_chunks)
    bounds = [(s, min(s + size, T)) for s in range(0, T, size)]
    outs = [np.empty((T, B, H), x.dtype) for _ in range(L)]  # each after its dropout
    carry = list(carries)
    caches: list[list[Any]] = [[None] * len(bounds) for _ in range(L)]

    def work(k: int, c: int) -> None:
        s, e = bounds[c]
        inp = x[s:e] if k == 0 else outs[k - 1][s:e]
        m = None if mask is None else mask[s:e]
        y, carry[k], caches[k][c] = sequence_forward(cell, inp, carry[k], weights[k], m, train)
        outs[k][s:e] = y if drops[k] is None else y * drops[k][s:e]  # type: ignore[index]

    _run_ticks(_ticks(len(bounds), L, backward=False), work)
    return outs[-1], carry, WavefrontTape(bounds, caches, drops)


def wavefront_backward(
    cell: CellSpec,
    dy: np.ndarray,
    dcarries: list,
    tape: WavefrontTape,
    weights: list[Weights],
    grads: list[Weights],
) -> tuple[np.ndarray, list, np.ndarray]:
    """BPTT through the stack on the mirrored schedule: ``dx``, the initial carries'
    gradients, and the squared gradient norms per layer, step and sequence (L, T, B)."""
    T, B, _ = dy.shape
    L, H = len(weights), weights[0].W_hh.shape[1]
    F = weights[0].W_ih.shape[1]
    dys = [np.empty((T, B, H), dy.dtype) for _ in range(L - 1)] + [dy]  # dL/d(layer output)
    dx = np.empty((T, B, F), dy.dtype)
    dcarry = list(dcarries)
    sq = np.empty((L, T, B))

    def work(k: int, c: int) -> None:
        s, e = tape.bounds[c]
        cache = tape.caches[k][c]
        dxc, dcarry[k], sq[k, s:e] = sequence_backward(
            cell, dys[k][s:e], dcarry[k], cache, weights[k], grads[k]
        )
        if k == 0:
            dx[s:e] = dxc
        else:
            drop = tape.drops[k - 1]
            dys[k - 1][s:e] = dxc if drop is None else dxc * drop[s:e]  # through the dropout

    _run_ticks(_ticks(len(tape.bounds), L, backward=True), work)
    return dx, dcarry, sq
