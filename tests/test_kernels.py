"""The fused kernels against the NumPy reference loops they implement."""

import subprocess
import sys
import zlib

import numpy as np
import pytest

import rnnkit
from rnnkit.tuning import using


def reference_loops():
    """The planner's reference path for every sequence (the NumPy step loops)."""
    return using(kernels="reference")


CLASSES = {
    "LSTM": lambda **kw: rnnkit.LSTM(**kw),
    "GRU": lambda **kw: rnnkit.GRU(**kw),
    "RNN_TANH": lambda **kw: rnnkit.RNN(**kw),
    "RNN_RELU": lambda **kw: rnnkit.RNN(nonlinearity="relu", **kw),
}


def _run(layer, x, state, lengths, dy, dstate):
    layer.zero_grad()
    y, hn, backward = layer.forward_train(x, state, lengths=lengths)
    dx, dh0 = backward(dy, dstate)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    return y, hn, dx, dh0, grads, layer.grad_norms.copy()


def _flat(a):
    return list(a) if isinstance(a, tuple) else [a]


@pytest.mark.parametrize("mode", sorted(CLASSES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("H", [6, 20])
def test_fused_equals_reference(mode, dtype, lengths, threads, H, tuned):
    # threads: the batch's rows in one chunk, or in two chunks side by side (kernels.loops)
    from rnnkit import threads as rt

    tuned(threads=threads)
    assert len(rt.row_chunks(9)) == threads
    rng = np.random.default_rng(zlib.crc32(f"{mode} {dtype} {lengths} {H}".encode()))
    # B=9: rows [0, 4) and [4, 9) with two threads: one 4-row tile, or two overlapping ones;
    # H=20: whole panels of the product's tiles forward and backward and a remainder of columns
    # (`kernels.tile`: 16 float32 or 8 float64 per panel), H=6: backward only the remainder
    T, B, F, L = 7, 9, 5, 2
    layer = CLASSES[mode](
        input_size=F, hidden_size=H, num_layers=L, bidirectional=True, seed=1, dtype=dtype
    )
    x = rng.standard_normal((T, B, F)).astype(dtype)
    shape = (2 * L, B, H)
    h0 = rng.standard_normal(shape).astype(dtype)
    state = (h0, rng.standard_normal(shape).astype(dtype)) if mode == "LSTM" else h0
    dstate = (
        (rng.standard_normal(shape).astype(dtype),) * 2
        if mode == "LSTM"
        else rng.standard_normal(shape).astype(dtype)
    )
    lens = np.array([7, 3, 5, 1, 6, 2, 7, 4, 1]) if lengths else None
    dy = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    with using(single_sequence=False):  # the batch loop at B=1 too
        fast = _run(layer, x, state, lens, dy, dstate)
        fast_inference = layer(x, state, lengths=lens)
    with reference_loops():
        ref = _run(layer, x, state, lens, dy, dstate)
        ref_inference = layer(x, state, lengths=lens)
    tol = 1e-12 if dtype == "float64" else 2e-5
    for a, b in zip(fast_inference, ref_inference, strict=True):
        for pa, pb in zip(_flat(a), _flat(b), strict=True):
            np.testing.assert_allclose(pa, pb, rtol=tol, atol=tol)
    for a, b in zip(fast[:4], ref[:4], strict=True):
        for pa, pb in zip(_flat(a), _flat(b), strict=True):
            np.testing.assert_allclose(pa, pb, rtol=tol, atol=tol)
    for key in ref[4]:
        np.testing.assert_allclose(fast[4][key], ref[4][key], rtol=tol, atol=tol, err_msg=key)
    np.testing.assert_allclose(fast[5], ref[5], rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", sorted(CLASSES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("length", [None, 4])
@pytest.mark.parametrize("pair", [False, True])
@pytest.mark.parametrize("panels", [False, True])
def test_single_sequence_compiled_loop_equals_reference(
    mode, dtype, length, pair, panels, monkeypatch, tuned
):
    # one sequence, inference: the whole time loop runs compiled (kernels.step.sequence), or
    # on two threads each computing half the hidden units (pair: kernels.step.sequence_part;
    # an odd hidden size, so that the halves differ); the product reads the weight's rows, or
    # panels the kernels pack (a hidden size that whole panels cover, halves included), and
    # then the kernels compute the input projection too
    from rnnkit.engine import fused
    from rnnkit.kernels import step

    calls, parts, packed = [], [], []
    monkeypatch.setattr(fused, "forward_single", _counting(fused.forward_single, calls))
    monkeypatch.setattr(step, "sequence_pair", _counting(step.sequence_pair, parts))
    for name in ("sequence", "sequence_pair"):  # how many panels each call was given, for
        kernel = getattr(step, name)  # the recurrent product and for the input projection
        record = _counting(kernel, packed, lambda a: (a[3].shape[0], a[1][2].shape[0]))
        monkeypatch.setattr(step, name, record)
    tuned(threads=2)  # the pair needs two threads
    rng = np.random.default_rng(7)
    H = 32 if panels else 7 if pair else 6
    layer = CLASSES[mode](
        input_size=5, hidden_size=H, num_layers=2, bidirectional=True, seed=2, dtype=dtype
    )
    x = rng.standard_normal((9, 1, 5)).astype(dtype)
    h0 = rng.standard_normal((4, 1, H)).astype(dtype)
    state = (h0, rng.standard_normal((4, 1, H)).astype(dtype)) if mode == "LSTM" else h0
    lens = None if length is None else np.array([length])
    pair_macs, panel_steps = (0 if pair else 10**9), (0 if panels else 10**9)
    with using(pair_macs=pair_macs, panel_steps=panel_steps):
        got = layer(x, state, lengths=lens)
    assert len(calls) == 4  # two layers, two directions
    assert len(parts) == (4 if pair else 0)
    assert len(packed) == 4 and all((n > 0) == (m > 0) == panels for n, m in packed)
    with reference_loops():
        want = layer(x, state, lengths=lens)
    tol = 1e-12 if dtype == "float64" else 2e-5
    for a, b in zip(_flat(got[0]) + _flat(got[1]), _flat(want[0]) + _flat(want[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", sorted(CLASSES))
@pytest.mark.parametrize("pair", [False, True])
def test_single_sequence_without_biases_projects_in_the_kernels(mode, pair, tuned):
    # a layer without biases, its input projection computed by the kernels (packed panels):
    # the zero bias they add must not move anything (float64, against the reference)

    tuned(threads=2)
    rng = np.random.default_rng(11)
    layer = CLASSES[mode](input_size=5, hidden_size=16, bias=False, seed=3, dtype="float64")
    x = rng.standard_normal((6, 1, 5))
    with using(pair_macs=0 if pair else 10**9, panel_steps=0):
        got = layer(x)
    with reference_loops():
        want = layer(x)
    for a, b in zip(_flat(got[0]) + _flat(got[1]), _flat(want[0]) + _flat(want[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _counting(fn, calls, record=lambda args: 1):
    def wrapped(*args, **kwargs):
        calls.append(record(args))
        return fn(*args, **kwargs)

    return wrapped


def test_fused_float32_tanh_is_close_to_exact():
    from rnnkit.kernels.cells import rnn_forward

    a = np.linspace(-12, 12, 100_001, dtype=np.float32)[None, :]
    zero = np.zeros_like(a)
    out = np.empty_like(a)
    act = np.empty_like(a)
    rnn_forward(a, zero, zero[0], zero, np.ones(1, np.float32), out, act, act, False)
    err = np.abs(act - np.tanh(a.astype(np.float64)))
    assert err.max() < 5e-7


def test_gate_activations_are_applied_only_in_kernels_gates():
    # each cell's equations are written once (`kernels.gates`) and inlined into the batch,
    # single-sequence and stream kernels: no other kernel file applies an activation itself
    import ast
    from pathlib import Path

    from rnnkit import kernels

    activations = {"fast_tanh", "sigmoid", "tanh", "lstm_unit", "gru_unit", "rnn_unit"}
    applied = {}
    for path in sorted(Path(kernels.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in activations:
                    applied.setdefault(path.name, set()).add(name)
    assert set(applied) == {"gates.py", "cells.py", "step.py"}
    assert applied["cells.py"] == applied["step.py"] == {"lstm_unit", "gru_unit", "rnn_unit"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiled_product_equals_numpy(dtype):
    # `loops._dot`: 4-row tiles on packed panels (`kernels.tile`) plus the rows and columns left
    # over, on rows that are views into larger arrays as the time loops pass them
    from numba import njit

    from rnnkit.kernels import loops as KL
    from rnnkit.kernels import tile as KT

    dot = njit(lambda a, w, P, out: KL._dot(a, w, P, out))
    rng = np.random.default_rng(3)
    shapes = [
        (4, 16, 16),
        (9, 7, 37),
        (1, 5, 40),
        (13, 33, 64),
        (8, 3, 9),
        (3, 64, 130),
        (2, 9, 33),
    ]
    for B, K, N in shapes:
        big = rng.standard_normal((2, B + 3, K)).astype(dtype)
        a = big[1, 2 : 2 + B]  # rows contiguous, the array itself not
        w = rng.standard_normal((N, K)).astype(dtype)
        P = KT.pack(w)
        assert P.shape == (N // KT.panel_width(dtype), K, KT.panel_width(dtype))
        np.testing.assert_array_equal(P, KT.pack_columns(np.ascontiguousarray(w.T)))
        out = np.full((B + 2, N), np.nan, dtype)
        dot(a, w, P, out[1 : B + 1])
        tol = 1e-12 if dtype == "float64" else 1e-5
        np.testing.assert_allclose(out[1 : B + 1], a @ w.T, rtol=tol, atol=tol)
        assert np.isnan(out[0]).all() and np.isnan(out[B + 1]).all()  # nothing outside written


@pytest.mark.parametrize("mode", sorted(CLASSES))
@pytest.mark.parametrize("bias", [True, False])
def test_fused_equals_reference_small_batches(mode, bias):
    # the time loops' product for one, two or three rows (no tiles) and six (two overlapping
    # tiles), with and without biases (the LSTM and RNN fold b_ih into b_hh), float64
    for B in (1, 2, 3, 6):
        rng = np.random.default_rng(zlib.crc32(f"{mode} {bias} {B}".encode()))
        layer = CLASSES[mode](input_size=5, hidden_size=20, bias=bias, seed=2, dtype="float64")
        x = rng.standard_normal((6, B, 5))
        dy = rng.standard_normal((6, B, 20))
        with using(single_sequence=False):  # the batch loop at B=1 too
            fast = _run(layer, x, None, None, dy, None)
        with reference_loops():
            ref = _run(layer, x, None, None, dy, None)
        for a, b in zip(fast[:4], ref[:4], strict=True):
            for pa, pb in zip(_flat(a), _flat(b), strict=True):
                np.testing.assert_allclose(pa, pb, rtol=1e-12, atol=1e-12, err_msg=f"B={B}")
        for key in ref[4]:
            np.testing.assert_allclose(fast[4][key], ref[4][key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_fused_backward_takes_any_memory_order(mode):
    # sequence_backward called directly with a Fortran-ordered carry gradient: the fused loops
    # write the product's rows as contiguous, so it must be copied to C order first
    from rnnkit.cells import gru, lstm
    from rnnkit.engine.plan import plan_sequence
    from rnnkit.engine.sequence import Weights, sequence_backward, sequence_forward

    cell = {"LSTM": lstm.LSTM, "GRU": gru.GRU}[mode]
    rng = np.random.default_rng(5)
    T, B, F, H = 4, 8, 3, 20
    G = cell.gates

    def weights():
        return Weights(*(rng.standard_normal(s) for s in ((G * H, F), (G * H, H), G * H, G * H)))

    w = weights()
    x = rng.standard_normal((T, B, F))
    carry = tuple(np.zeros((B, H)) for _ in range(cell.carry_size))
    dy = rng.standard_normal((T, B, H))
    dcarry = tuple(np.asfortranarray(rng.standard_normal((B, H))) for _ in carry)
    results = []
    for order in ("F", "C"):
        plan = plan_sequence(cell, x, w.W_hh, train=True)
        assert plan.path == "batch"
        _, _, cache = sequence_forward(plan, cell, x, carry, w, keep_cache=True)
        grads = Weights(*(np.zeros_like(a) for a in (w.W_ih, w.W_hh, w.b_ih, w.b_hh)))
        d = dcarry if order == "F" else tuple(np.ascontiguousarray(a) for a in dcarry)
        dx, dh0, _ = sequence_backward(cell, dy, d, cache, w, grads)
        results.append((dx, *dh0, grads.W_hh))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_tile_refuses_arrays_without_contiguous_rows():
    from numba import njit
    from numba.core.errors import TypingError

    from rnnkit.kernels import tile as KT

    @njit
    def call(a, P, out):
        KT.tile4(a, 0, P, 0, out)

    w = np.ones((16, 8), np.float32)
    P, out = KT.pack(w), np.zeros((4, 16), np.float32)
    call(np.ones((4, 8), np.float32), P, out)
    np.testing.assert_array_equal(out, np.full((4, 16), 8.0, np.float32))
    with pytest.raises(TypingError):
        call(np.ones((4, 16), np.float32)[:, ::2], P, out)  # every other column
    with pytest.raises(TypingError):
        call(np.ones((4, 8), np.float32), P, np.zeros((16, 4), np.float32).T)  # columns


def test_int8_rows_are_exact_integer_sums():
    from numba import njit

    from rnnkit.kernels import int8

    @njit
    def run(q, s, x, out, n0, n1):
        xq = np.empty(x.shape[0], np.int16)
        xs = int8.quantize_input(x, xq)
        int8.rows(q, s, xq, xs, out, n0, n1)
        return xq, xs

    rng = np.random.default_rng(4)
    for N, K in ((1, 5), (3, 16), (4, 17), (9, 33), (13, 48), (8, 516), (8, 600)):
        q = rng.integers(-127, 128, (N, K)).astype(np.int8)
        q[0, :] = 127  # the largest sums
        s = rng.random(N).astype(np.float32)
        x = rng.standard_normal(K).astype(np.float32)
        x[:] = np.abs(x)  # all one sign: the sums as large as they get
        out = np.full(N, np.nan, np.float32)
        xq, xs = run(q, s, x, out, 0, N)
        qmax = min(32767, (2**31 - 1) // (127 * K))
        assert np.abs(xq).max() == qmax and xs == np.abs(x).max() / qmax
        np.testing.assert_array_equal(xq, np.rint(x.astype(np.float64) * (qmax / np.abs(x).max())))
        sums = q.astype(np.int64) @ xq.astype(np.int64)  # exact, and within int32
        assert np.abs(sums).max() <= 2**31 - 1
        np.testing.assert_allclose(out, sums * (s.astype(np.float64) * xs), rtol=1e-6)
        part = np.full(N, -5.0, np.float32)
        run(q, s, x, part, 1, N)  # rows [1, N): row 0 untouched
        assert part[0] == -5.0 and np.array_equal(part[1:], out[1:])
    for K in (515, 516, 600, 4129, 4130):  # the worst case: every product is 127 * qmax
        q = np.full((4, K), 127, np.int8)
        q[1] = -127
        out = np.empty(4, np.float32)
        xs = run(q, np.ones(4, np.float32), np.ones(K, np.float32), out, 0, 4)[1]
        qmax = min(32767, (2**31 - 1) // (127 * K))
        if K > 4129:  # too long for 12 bits of input: callers take the float path
            assert xs == -1
            continue
        if K > 516:  # the range is cut just enough: a sum within 1 % of the int32 limit
            assert 0.99 * (2**31 - 1) < 127 * qmax * K <= 2**31 - 1
        np.testing.assert_allclose(out, [127 * K, -127 * K, 127 * K, 127 * K], rtol=1e-6)
    zero = np.zeros(8, np.float32)
    out = np.full(4, np.nan, np.float32)
    assert run(np.ones((4, 8), np.int8), np.ones(4, np.float32), zero, out, 0, 4)[1] == 0
    np.testing.assert_array_equal(out, 0)


def test_int8_dot_refuses_other_types():
    from numba import njit
    from numba.core.errors import TypingError

    from rnnkit.kernels import int8

    @njit
    def call(q, xq):
        return int8.dot4(q, 0, xq, 1)

    q, xq = np.ones((4, 16), np.int8), np.ones(16, np.int16)
    assert call(q, xq) == (16, 16, 16, 16)
    with pytest.raises(TypingError):
        call(q, xq.astype(np.int32))
    with pytest.raises(TypingError):
        call(np.ones((4, 32), np.int8)[:, ::2], xq)  # rows not contiguous


def test_sync_flags_order_what_each_thread_wrote():
    # `kernels.sync`: each thread writes its number of a step, publishes, waits for the other
    # and reads the other's number: with the release/acquire pair it always sees this step's
    # (a slot is written again eight steps later, after the other has read it and published)
    import threading

    from numba import njit

    from rnnkit.kernels import sync

    @njit(nogil=True)
    def run(flags, me, buf, steps):
        other, wrong = 1 - me, 0
        for t in range(steps):
            buf[me, t % 8] = 2 * t + me
            sync.publish(flags, me, t + 1)
            sync.wait_for(flags, other, t + 1)
            wrong += buf[other, t % 8] != 2 * t + other
        return wrong

    flags, buf, steps = sync.flags(2), np.zeros((2, 8), np.int64), 20_000
    wrong = [-1, -1]
    worker = threading.Thread(target=lambda: wrong.__setitem__(1, run(flags, 1, buf, steps)))
    worker.start()
    wrong[0] = run(flags, 0, buf, steps)
    worker.join()
    assert wrong == [0, 0]


def test_single_sequence_on_one_numba_thread_does_not_wait_forever():
    # the two-core loop needs two threads; with numba limited to one it must not be chosen
    code = (
        "import numba, numpy as np, rnnkit\n"
        "from rnnkit.tuning import using\n"
        "numba.set_num_threads(1)\n"
        "layer = rnnkit.LSTM(3, 8, seed=0)\n"
        "x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 1, 3)\n"
        "with using(pair_macs=0):\n"
        "    assert rnnkit.explain(layer, x).path == 'single', rnnkit.explain(layer, x)\n"
        "    y, _ = layer(x)\n"
        "with using(single_sequence=False):\n"  # the batch loop, for comparison
        "    want, _ = layer(x)\n"
        "print(y.shape, float(np.abs(y - want).max()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    shape, diff = out.stdout.rsplit(")", 1)
    assert shape + ")" == "(5, 1, 8)" and float(diff) < 1e-6
