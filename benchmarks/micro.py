"""Micro-benchmarks behind the fast path's design notes, in one process each (one library).

    python benchmarks/micro.py calls        # what a streaming step costs outside the arithmetic
    python benchmarks/micro.py matvec       # the step's product: four rows at a time vs one
    python benchmarks/micro.py int8         # the int8 step's product: integers vs widening
    python benchmarks/micro.py tile         # the time loops' product: packed tiles vs row dots
    python benchmarks/micro.py products     # the time loop's pieces on one core: product, gates
    python benchmarks/micro.py train-parts  # where an LSTM training step goes (hidden 256, B=32)
    python benchmarks/micro.py single       # one sequence's loop (B=1): one core, both, batch loop
    python benchmarks/micro.py malloc       # page faults of training steps (RNNKIT_MALLOC=system
                                            # to see them without rnnkit's malloc settings)

Medians of timed blocks, 2 threads; absolute times move with the machine's load, so compare the
numbers printed side by side in one run. `make bench` is the suite against PyTorch and ONNX
Runtime; these explain its numbers.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(key, "2")
# OpenBLAS's idle threads sleep at once (rnnkit.tune_process): read when NumPy loads OpenBLAS,
# so set here, before the imports
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.kernels import cells as KC  # noqa: E402
from rnnkit.kernels import gates as KG  # noqa: E402
from rnnkit.kernels import loops as KL  # noqa: E402
from rnnkit.kernels import step as KS  # noqa: E402
from rnnkit.kernels import tile as KT  # noqa: E402

TUNING = rnnkit.tune_process()  # malloc's thresholds, as the rnnkit command sets them


def per_call(fn, calls: int = 2000, blocks: int = 15) -> float:
    """Median over blocks of the mean seconds per call."""
    for _ in range(calls // 10):
        fn()
    times = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times)


def calls() -> None:
    """A numba call by number of array arguments, a view and an allocation made in Python, and
    a whole `Stream.step`."""

    @njit(nogil=True)
    def one(a):
        return True

    @njit(nogil=True)
    def thirteen(a, b, c, d, e, f, g, h, i, j, k, m, n):
        return True

    @njit(nogil=True, parallel=True)
    def region(a):
        for i in prange(2):
            a[i] += 1.0
        return True

    a = np.zeros(8, np.float32)
    s = np.zeros((1, 1, 8), np.float32)
    rows: list[tuple[str, Callable[[], object]]] = [
        ("numba call, 1 array", lambda: one(a)),
        ("numba call, 13 arrays", lambda: thirteen(*(a,) * 13)),
        ("numba parallel region, 2 threads", lambda: region(a)),
        ("view s[0, 0]", lambda: s[0, 0]),
        ("np.empty_like", lambda: np.empty_like(s)),
    ]
    for H in (8, 64, 128):
        stream = rnnkit.Stream(rnnkit.LSTM(H, H, seed=0))
        x = np.random.default_rng(0).standard_normal(H).astype(np.float32)
        rows.append((f"Stream.step, LSTM hidden {H}", partial(stream.step, x)))
    for name, fn in rows:
        print(f"{name:32s} {per_call(fn) * 1e6:7.2f} us")


@njit(inline="always", fastmath=KS.FAST, error_model="numpy")
def _one_row(W, s, x, out):  # the product before: one row at a time (int8: widened, scaled)
    for n in range(W.shape[0]):
        acc = np.float32(0.0)
        for k in range(W.shape[1]):
            acc += KS.widen(W[n, k]) * x[k]
        out[n] = KS.scaled(W, acc, s, n)


@njit(fastmath=KS.FAST, error_model="numpy")
def _steps_one_row(W1, W2, s, x, b, out, T):
    for _ in range(T):
        _one_row(W1, s, x, out)
        _one_row(W2, s, x, out)
        x[0] = out[0] * np.float32(1e-3)  # each step depends on the last


@njit(fastmath=KS.FAST, error_model="numpy")
def _steps_four_rows(W1, W2, s, x, b, out, T):  # int8: widened, as before `kernels.int8`
    for _ in range(T):
        KS.matvec_rows(W1, s, x, b, out, 0, W1.shape[0])
        KS.matvec_rows(W2, s, x, b, out, 0, W2.shape[0])
        x[0] = out[0] * np.float32(1e-3)


@njit(fastmath=KS.FAST, error_model="numpy")
def _steps_integer(W1, W2, s, x, b, out, T):  # int8 in integers: `kernels.int8`
    for _ in range(T):
        KS.matvec(W1, s, x, b, out)
        KS.matvec(W2, s, x, b, out)
        x[0] = out[0] * np.float32(1e-3)


def int8() -> None:
    """Both products of an LSTM step from int8 weights (two (4H, H), one core): each weight
    widened to float32 (`kernels.step.matvec_rows`) against the integer product with the input
    in int16 (`kernels.int8`, what `Stream.step` runs), 5 alternating rounds; and the largest
    output difference from the exact product of the int8 weights, relative to its largest
    output."""
    rng = np.random.default_rng(0)
    for H in (64, 128, 256, 512):
        N, T = 4 * H, max(20, 400_000 // (4 * H * H))
        Q1, Q2 = (rng.integers(-127, 128, (N, H)).astype(np.int8) for _ in range(2))
        s = (rng.random(N) / 127).astype(np.float32)
        x = rng.standard_normal(H).astype(np.float32)
        b, out = np.zeros(N, np.float32), np.empty(N, np.float32)
        got: dict[str, list[float]] = {}
        for _ in range(5):
            for name, fn in (("widened", _steps_four_rows), ("integer", _steps_integer)):
                fn(Q1, Q2, s, x, b, out, 1)
                t0 = time.perf_counter()
                fn(Q1, Q2, s, x, b, out, T)
                got.setdefault(name, []).append((time.perf_counter() - t0) / T)
        exact = (Q1.astype(np.float64) * s[:, None]) @ x.astype(np.float64)
        errors = {}
        for name, once in (("widened", _widened_once), ("integer", _integer_once)):
            once(Q1, s, x, b, out)
            errors[name] = np.abs(out - exact).max() / np.abs(exact).max()
        med = {k: statistics.median(v) * 1e6 for k, v in got.items()}
        line = "  ".join(f"{k} {v:6.2f} us (error {errors[k]:.1e})" for k, v in med.items())
        print(f"hidden {H}: {line}   speed-up {med['widened'] / med['integer']:.2f}x")


@njit(fastmath=KS.FAST, error_model="numpy")
def _integer_once(W, s, x, b, out):
    KS.matvec(W, s, x, b, out)


@njit(fastmath=KS.FAST, error_model="numpy")
def _widened_once(W, s, x, b, out):
    KS.matvec_rows(W, s, x, b, out, 0, W.shape[0])


def matvec() -> None:
    """Both products of an LSTM step (two (4H, H) weights), one row at a time against
    `kernels.step.matvec` (four rows at a time), float32 and int8, 5 alternating rounds."""
    rng = np.random.default_rng(0)
    for H in (64, 128, 256, 512):
        N, T = 4 * H, max(20, 400_000 // (4 * H * H))
        W1, W2 = (rng.standard_normal((N, H)).astype(np.float32) for _ in range(2))
        Q1, Q2 = ((W * 30).astype(np.int8) for W in (W1, W2))
        x = rng.standard_normal(H).astype(np.float32)
        b, out, s = np.zeros(N, np.float32), np.empty(N, np.float32), np.ones(N, np.float32)
        got: dict[str, list[float]] = {}
        for _ in range(5):
            for kind, (P1, P2) in (("float32", (W1, W2)), ("int8", (Q1, Q2))):
                for name, fn in (("1 row", _steps_one_row), ("4 rows", _steps_four_rows)):
                    fn(P1, P2, s, x, b, out, 1)
                    t0 = time.perf_counter()
                    fn(P1, P2, s, x, b, out, T)
                    got.setdefault(f"{kind} {name}", []).append((time.perf_counter() - t0) / T)
        med = {k: statistics.median(v) * 1e6 for k, v in got.items()}
        line = "  ".join(f"{k} {v:6.2f} us" for k, v in med.items())
        f32 = med["float32 1 row"] / med["float32 4 rows"]
        i8 = med["int8 1 row"] / med["int8 4 rows"]
        print(f"hidden {H}: {line}   speed-up float32 {f32:.2f}x int8 {i8:.2f}x")


@njit(fastmath=KS.FAST, error_model="numpy")
def _rows_steps(W, P, x, b, out, T):
    for _ in range(T):
        KS.matvec_rows(W, None, x, b, out, 0, W.shape[0])


@njit(fastmath=KS.FAST, error_model="numpy")
def _panel_steps(W, P, x, b, out, T):
    for _ in range(T):
        KS.matvec_panels(P, x, b, out, 0, P.shape[0])


def panels() -> None:
    """One LSTM weight (4H, H) times a vector, one core: dot products along its rows four at a
    time (`kernels.step.matvec_rows`) against packed panels (`kernels.tile.panels1`), float32,
    5 alternating rounds."""
    rng = np.random.default_rng(0)
    for H in (64, 128, 256, 512):
        N, T = 4 * H, max(20, 400_000 // (4 * H * H))
        W = rng.standard_normal((N, H)).astype(np.float32)
        P = KT.pack(W)
        x = rng.standard_normal(H).astype(np.float32)
        b, out = np.zeros(N, np.float32), np.empty(N, np.float32)
        got: dict[str, list[float]] = {}
        for _ in range(5):
            for name, fn in (("rows", _rows_steps), ("panels", _panel_steps)):
                fn(W, P, x, b, out, 1)
                t0 = time.perf_counter()
                fn(W, P, x, b, out, T)
                got.setdefault(name, []).append((time.perf_counter() - t0) / T)
        med = {k: statistics.median(v) * 1e6 for k, v in got.items()}
        print(
            f"hidden {H}: rows {med['rows']:6.2f} us  panels {med['panels']:6.2f} us"
            f"   speed-up {med['rows'] / med['panels']:.2f}x"
        )


@njit(fastmath=KS.FAST, error_model="numpy")
def _gates_from_j0(xi, hh, c, h, T, j0, j1):  # the gate loop before: range(j0, j1) indexing
    H = c.shape[0]
    for _ in range(T):
        for j in range(j0, j1):
            _, _, _, _, c[j], _, h[j] = KG.lstm_unit(
                xi[j] + hh[j],
                xi[H + j] + hh[H + j],
                xi[2 * H + j] + hh[2 * H + j],
                xi[3 * H + j] + hh[3 * H + j],
                c[j],
            )


@njit(fastmath=KS.FAST, error_model="numpy")
def _gates_views(xi, hh, c, h, T, j0, j1):  # now: `kernels.step._lstm_gates`, on views
    c2 = np.empty_like(c)
    for _ in range(T):
        KS._lstm_gates(xi, hh, c, h, c2, j0, j1)


def gates() -> None:
    """The LSTM gates of the second half of the hidden units (as one core of the pair computes
    them), ns per step: the loop indexing ``xi[H + j]`` for ``j`` in ``range(j0, j1)`` that the
    pair had, against `kernels.step._lstm_gates`, which indexes views from 0; 7 rounds."""
    rng = np.random.default_rng(0)
    for H in (64, 128, 256):
        xi, hh = (rng.standard_normal(4 * H).astype(np.float32) for _ in range(2))
        c, h, T = np.zeros(H, np.float32), np.zeros(H, np.float32), 1000
        got: dict[str, list[float]] = {}
        for _ in range(7):
            for name, fn in (("range(j0, j1)", _gates_from_j0), ("views", _gates_views)):
                fn(xi, hh, c, h, 1, H // 2, H)
                t0 = time.perf_counter()
                fn(xi, hh, c, h, T, H // 2, H)
                got.setdefault(name, []).append((time.perf_counter() - t0) / T * 1e9)
        med = {k: statistics.median(v) for k, v in got.items()}
        line = "  ".join(f"{k} {v:6.0f} ns" for k, v in med.items())
        print(f"hidden {H}, units {H // 2}-{H - 1}: {line}")


@njit(fastmath=KL.FAST, error_model="numpy")
def _products(h, W, P, out, T):
    for _ in range(T):
        KL._dot(h, W, P, out)


@njit(fastmath=KL.FAST, error_model="numpy")
def _row_dots(h, W, out, T):  # the product before the tiles: 4 rows of h by 2 rows of W
    for _ in range(T):
        for i in range(0, h.shape[0], 4):
            KL._dot_block(h, W, out, i, 0, W.shape[0])


def tile() -> None:
    """The time loops' recurrent product on one core, 100 steps: packed 4-row tiles
    (`kernels.tile`, `loops._dot`) against four rows of ``h`` by two rows of the weight as
    stored (`loops._dot_block` over every column, the product before the tiles), forward
    (weight (4H, H)) and backward (its transpose (H, 4H)), 5 alternating rounds."""
    rng = np.random.default_rng(0)
    f = np.float32
    for H in (64, 128, 256, 512):
        for rows in (4, 16):
            line = []
            for kind, (N, K) in (("forward", (4 * H, H)), ("backward", (H, 4 * H))):
                W = (rng.standard_normal((N, K)) * 0.1).astype(f)
                P = KT.pack(W)
                h = rng.standard_normal((rows, K)).astype(f)
                out = np.empty((rows, N), f)
                got: dict[str, list[float]] = {}
                for _ in range(5):
                    for name, fn in (
                        ("row dots", partial(_row_dots, h, W, out)),
                        ("tiles", partial(_products, h, W, P, out)),
                    ):
                        fn(1)
                        t0 = time.perf_counter()
                        fn(100)
                        got.setdefault(name, []).append(time.perf_counter() - t0)
                flops = 2 * rows * N * K * 100
                rate = {k: flops / statistics.median(v) / 1e9 for k, v in got.items()}
                line.append(
                    f"{kind} {rate['row dots']:.0f} -> {rate['tiles']:.0f} GFLOP/s "
                    f"({rate['tiles'] / rate['row dots']:.2f}x)"
                )
            print(f"hidden {H}, {rows:2d} rows: " + ";  ".join(line))


@njit(error_model="numpy")
def _gates(xi, hh, b, h, c, m, h2, c2, y, acts, extra, T):
    for _ in range(T):
        KC.lstm_forward(xi, hh, b, h, c, m, h2, c2, y, acts, extra)


def products() -> None:
    """One core's share of an LSTM time loop at B=32 (16 rows), 100 steps: the recurrent
    product (`loops._dot`) and the gate kernel, alone."""
    for H in (64, 128, 256, 512):
        _products_at(H, rows=16, steps=100)


def _products_at(H: int, rows: int, steps: int) -> None:
    rng = np.random.default_rng(0)
    f = np.float32
    W = (rng.standard_normal((4 * H, H)) * 0.1).astype(f)
    h = rng.standard_normal((rows, H)).astype(f)
    hh, xi = np.empty((rows, 4 * H), f), rng.standard_normal((rows, 4 * H)).astype(f)
    b, m = np.zeros(4 * H, f), np.ones(rows, f)
    h2, c2, y, extra = (np.empty_like(h) for _ in range(4))
    acts = np.empty_like(hh)
    P = KT.pack(W)
    dot = per_call(lambda: _products(h, W, P, hh, steps), calls=3, blocks=11)
    gates = per_call(
        lambda: _gates(xi, hh, b, h, h, m, h2, c2, y, acts, extra, steps), calls=3, blocks=11
    )
    gflops = 2 * rows * H * 4 * H * steps / dot / 1e9
    unit = gates / (steps * rows * H) * 1e9
    print(
        f"hidden {H}: product {dot * 1e3:.2f} ms ({gflops:.0f} GFLOP/s), "
        f"gates {gates * 1e3:.2f} ms ({unit:.1f} ns per unit)"
    )


def train_parts() -> None:
    """An LSTM training step (hidden 256, B=32, T=100): the input projection, the compiled
    forward and backward loops, and the rest (weight and input gradients, sums), 30 steps."""
    from rnnkit.engine import fused

    H, B, T = 256, 32, 100
    layer = rnnkit.LSTM(H, H, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, H)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    spent: dict[str, list[float]] = {}

    def timed(module, name: str) -> None:
        inner = getattr(module, name)

        def wrapper(*args, **kw):
            t0 = time.perf_counter()
            out = inner(*args, **kw)
            spent.setdefault(name, []).append(time.perf_counter() - t0)
            return out

        setattr(module, name, wrapper)

    for module, name in (
        (fused, "_project"),
        (fused, "_forward_loops"),
        (fused, "_backward_loops"),
    ):
        timed(module, name)

    def step() -> None:
        layer.zero_grad()
        _, _, backward = layer.forward_train(x)
        backward(dy)

    for _ in range(3):
        step()
    spent.clear()
    total = []
    for _ in range(30):
        t0 = time.perf_counter()
        step()
        total.append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in spent.items()}
    whole = statistics.median(total) * 1e3
    parts = "; ".join(f"{k} {v:.1f}" for k, v in med.items())
    print(f"step {whole:.1f} ms: {parts}; the rest {whole - sum(med.values()):.1f} ms")
    TB = T * B
    dxi = rng.standard_normal((TB, 4 * H)).astype(np.float32)
    xs, W = x.reshape(TB, H), rng.standard_normal((4 * H, H)).astype(np.float32)
    flops = 2 * TB * 4 * H * H
    for name, fn in (("dW = dxi.T @ x", lambda: dxi.T @ xs), ("dx = dxi @ W", lambda: dxi @ W)):
        sec = per_call(fn, calls=3, blocks=11)
        print(f"  {name}: {sec * 1e3:.1f} ms, {flops / sec / 1e9:.0f} GFLOP/s")


def single() -> None:
    """The time loop of one sequence (B=1, T=100, inference) three ways, interleaved: on one core
    (`kernels.step.sequence`), on both (`sequence_pair`) and as the batch loop (`kernels.loops`);
    the input projection is done once before (`layer(x)` has the kernels do it)."""
    print("us per 100 steps: one core / both cores / batch loop")
    sizes = (("LSTM", 32), ("LSTM", 48), ("LSTM", 96), ("GRU", 128), ("LSTM", 128))
    for cell, H in (*sizes, ("LSTM", 256), ("LSTM", 512)):
        _single_at(cell, H, T=100)


def _single_at(cell: str, H: int, T: int) -> None:
    from rnnkit.engine import fused
    from rnnkit.kernels import sync

    layer = (rnnkit.LSTM if cell == "LSTM" else rnnkit.GRU)(H, H, seed=0)
    w = layer._weights("l0", layer.params)
    x = np.random.default_rng(0).standard_normal((T, 1, H)).astype(np.float32)
    xi, b_hh = fused._project(layer.cell, x, w)
    GH = xi.shape[2]
    xi1, W_hh, code = np.ascontiguousarray(xi[:, 0]), w.W_hh, layer.cell.kernels.code
    m, y = np.ones(T, np.float32), np.empty((T, H), np.float32)
    hb, cb = np.zeros((2, H), np.float32), np.zeros((2, H), np.float32)
    P = np.empty((GH // 16 if H % 32 == 0 else 0, H, 16), np.float32)  # panels: as fused does
    nothing = np.empty((0, H), np.float32)  # the projection is done before: not in the kernels
    proj, flags = (nothing, nothing, np.empty((0, H, 16), np.float32), b_hh), sync.flags
    hs, cs = np.zeros((2, 1, H), np.float32), np.zeros((2, 1, H), np.float32)
    acts, extra = np.empty((1, 1, GH), np.float32), np.empty((1, 1, H), np.float32)
    hh, y3, m2 = np.empty((1, GH), np.float32), np.empty((T, 1, H), np.float32), np.ones((T, 1))
    m2 = m2.astype(np.float32)
    ways = {
        "one": lambda: KS.sequence(xi1, proj, W_hh, P, b_hh, m, hb, cb, y, code),
        "both": lambda: KS.sequence_pair(xi1, proj, W_hh, P, b_hh, m, hb, cb, y, code, flags(2)),
        "batch": lambda: fused._forward_loops(
            layer.cell, xi, W_hh, b_hh, m2, hs, cs, y3, acts, extra, hh, False
        ),
    }
    got: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(5):
        for k, fn in ways.items():
            got[k].append(per_call(fn, calls=20, blocks=5))
    us = " / ".join(f"{statistics.median(v) * 1e6:.0f}" for v in got.values())
    print(f"  {cell} {H} ({GH * H:,} multiply-adds a step): {us}")


def malloc() -> None:
    """LSTM training steps (B=32, T=100) at hidden 64, then 256, in one process, as `make bench`
    runs them: ms per step, and the minor page faults and kernel time of each (`getrusage`)."""
    import resource

    print(f"rnnkit set malloc's thresholds: {TUNING.malloc_tuned} ({TUNING.malloc})")
    rng = np.random.default_rng(0)
    for H in (64, 256):
        layer = rnnkit.LSTM(H, H, seed=0)
        x = rng.standard_normal((100, 32, H)).astype(np.float32)
        dy = rng.standard_normal((100, 32, H)).astype(np.float32)

        def step(layer=layer, x=x, dy=dy) -> None:
            layer.zero_grad()
            _, _, backward = layer.forward_train(x)
            backward(dy)

        step()
        step()
        before, times = resource.getrusage(resource.RUSAGE_SELF), []
        for _ in range(15):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_SELF)
        faults = (after.ru_minflt - before.ru_minflt) / 15
        kernel = (after.ru_stime - before.ru_stime) / 15 * 1e3
        print(
            f"  hidden {H}: {statistics.median(times) * 1e3:.1f} ms a step, "
            f"{faults:.0f} page faults, {kernel:.1f} ms of kernel time"
        )


def main() -> int:
    jobs = {
        "calls": calls,
        "matvec": matvec,
        "int8": int8,
        "tile": tile,
        "panels": panels,
        "gates": gates,
        "products": products,
        "train-parts": train_parts,
        "single": single,
        "malloc": malloc,
    }
    if len(sys.argv) != 2 or sys.argv[1] not in jobs:
        print(f"usage: micro.py {{{'|'.join(jobs)}}}", file=sys.stderr)
        return 2
    jobs[sys.argv[1]]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
