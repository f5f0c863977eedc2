"""The execution planner: each path is chosen where its rule says, `explain` reports what runs,
and every path computes what the NumPy reference computes (random shapes across every
threshold, by property tests)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit import tuning
from rnnkit.engine.plan import SEQUENCE_PATHS, STREAM_PATHS
from rnnkit.tuning import using

MAKERS = {
    "RNN_TANH": lambda *a, **kw: rnnkit.RNN(*a, **kw),
    "RNN_RELU": lambda *a, **kw: rnnkit.RNN(*a, nonlinearity="relu", **kw),
    "LSTM": lambda *a, **kw: rnnkit.LSTM(*a, **kw),
    "GRU": lambda *a, **kw: rnnkit.GRU(*a, **kw),
}
SRC = Path(rnnkit.__file__).parent


def _flat(out):
    y, state = out
    return [y, *(state if isinstance(state, tuple) else (state,))]


@pytest.fixture
def two_threads(tuned):
    tuned(threads=2)


# -- the choice -------------------------------------------------------------------------------
def test_each_sequence_path_is_chosen_where_its_rule_says(two_threads):
    x1 = np.zeros((40, 1, 3), np.float32)
    big = rnnkit.LSTM(3, 64, seed=0)  # 16,384 multiply-adds a step
    small = rnnkit.LSTM(3, 16, seed=0)  # 1,024
    assert rnnkit.explain(big, x1).path == "single-pair"
    assert rnnkit.explain(small, x1).path == "single"
    assert rnnkit.explain(big, x1, mode="train").path == "batch"
    assert rnnkit.explain(big, np.zeros((40, 8, 3), np.float32)).path == "batch"
    with using(pair_macs=10**9):
        assert rnnkit.explain(big, x1).path == "single"
    with using(single_sequence=False):
        assert rnnkit.explain(big, x1).path == "batch"
    with using(kernels="reference"):
        assert rnnkit.explain(big, x1).path == "reference"
    assert rnnkit.explain(rnnkit.quantize(big, "int8"), x1).path == "quantized"
    panels = rnnkit.explain(big, x1).plan.panels
    short = rnnkit.explain(big, np.zeros((8, 1, 3), np.float32)).plan.panels
    assert panels and not short  # 40 steps pay for packing, 8 do not
    text = str(rnnkit.explain(big, x1))
    assert "single-pair (2 cores)" in text and "pair_macs 8,000" in text


def test_each_stream_path_is_chosen_where_its_rule_says():
    small, large = rnnkit.GRU(4, 16, seed=0), rnnkit.LSTM(128, 128, seed=0)
    one, many = np.zeros(4, np.float32), np.zeros((3, 4), np.float32)
    assert rnnkit.explain(small, one, mode="stream").path == "stream"
    assert rnnkit.explain(small, many, mode="stream").path == "stream-batch"
    assert rnnkit.explain(large, np.zeros(128, np.float32), mode="stream").path == "stream-split"
    bidir = rnnkit.GRU(4, 16, bidirectional=True, seed=0)
    assert rnnkit.explain(bidir, one, mode="stream").path == "general"
    q = rnnkit.quantize(small, "int8")
    assert rnnkit.explain(q, many, mode="stream").path == "general"
    with using(split_macs=0):
        assert rnnkit.explain(small, one, mode="stream").path == "stream-split"


def test_every_path_is_named_and_the_tuning_has_one_table():
    names = {f[0] for f in tuning.table()}
    assert {"kernels", "pair_macs", "panel_steps", "split_macs", "split_bytes"} <= names
    assert all(why for _, _, _, why in tuning.table())  # each knob says why
    assert len(set(SEQUENCE_PATHS) | set(STREAM_PATHS)) == len(SEQUENCE_PATHS) + len(STREAM_PATHS)
    engine_md = (SRC.parents[1] / "docs" / "ENGINE.md").read_text()
    for name in (*names, *SEQUENCE_PATHS, *STREAM_PATHS):
        assert f"`{name}`" in engine_md, name


def test_a_bad_kernels_switch_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("RNNKIT_KERNELS", "fastest")
    monkeypatch.setattr(tuning, "_CURRENT", None)  # read once, on first use
    with pytest.raises(rnnkit.InputError, match="RNNKIT_KERNELS: expected 'fused'"):
        tuning.current()


def test_explain_reports_the_path_that_runs(two_threads, monkeypatch):
    from rnnkit.engine import fused

    calls: list[str] = []
    for name in ("forward", "forward_single"):
        real = getattr(fused, name)

        def record(*a, _name=name, _real=real, **kw):
            calls.append(_name)
            return _real(*a, **kw)

        monkeypatch.setattr(fused, name, record)
    layer = rnnkit.GRU(3, 32, seed=0)
    for shape, want in (((40, 1, 3), "forward_single"), ((40, 5, 3), "forward")):
        x = np.ones(shape, np.float32)
        calls.clear()
        layer(x)
        assert calls == [want], rnnkit.explain(layer, x)
    with using(kernels="reference"):
        calls.clear()
        layer(np.ones((40, 5, 3), np.float32))
        assert calls == []


# -- every path against the reference, on random shapes across the thresholds ----------------
@st.composite
def cases(draw):
    mode = draw(st.sampled_from(sorted(MAKERS)))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    H = draw(st.sampled_from([3, 8, 16, 17, 32, 48]))  # panels of 8/16, halves, odd sizes
    B = draw(st.sampled_from([1, 1, 2, 3, 4, 5, 9]))  # row by row, tiles, chunks
    T = draw(st.integers(1, 40))
    layers = draw(st.integers(1, 2))
    bidir = draw(st.booleans())
    lengths = draw(st.booleans())
    knobs = draw(
        st.fixed_dictionaries(
            {
                "pair_macs": st.sampled_from([0, 8_000, 10**9]),
                "panel_steps": st.sampled_from([0, 32, 10**9]),
                "single_sequence": st.booleans(),
            }
        )
    )
    seed = draw(st.integers(0, 2**16))
    return mode, dtype, H, B, T, layers, bidir, lengths, knobs, seed


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=cases())
def test_every_sequence_path_equals_the_reference(case, two_threads):
    mode, dtype, H, B, T, layers, bidir, lengths, knobs, seed = case
    rng = np.random.default_rng(seed)
    layer = MAKERS[mode](5, H, layers, bidirectional=bidir, seed=seed, dtype=dtype)
    x = rng.standard_normal((T, B, 5)).astype(dtype)
    lens = rng.integers(1, T + 1, size=B) if lengths else None
    D = 2 if bidir else 1
    dy = rng.standard_normal((T, B, D * H)).astype(dtype)
    tol = 1e-10 if dtype == "float64" else 3e-4
    with using(**knobs):
        path = rnnkit.explain(layer, x, lengths=lens).path
        got = _flat(layer(x, lengths=lens))
        layer.zero_grad()
        y, _, backward = layer.forward_train(x, lengths=lens)
        dx, _ = backward(dy)
        got_train = [y, dx, *(g.copy() for g in layer.grads.values())]
    with using(kernels="reference"):
        want = _flat(layer(x, lengths=lens))
        layer.zero_grad()
        y, _, backward = layer.forward_train(x, lengths=lens)
        dx, _ = backward(dy)
        want_train = [y, dx, *(g.copy() for g in layer.grads.values())]
    for a, b in zip(got + got_train, want + want_train, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=path)


@settings(max_examples=30, deadline=None)
@given(
    mode=st.sampled_from(sorted(MAKERS)),
    H=st.sampled_from([4, 16, 33]),
    layers=st.integers(1, 3),
    weights=st.sampled_from(["float", "int8", "bfloat16"]),
    split=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_stream_path_equals_the_whole_sequence(mode, H, layers, weights, split, seed):
    rng = np.random.default_rng(seed)
    model = MAKERS[mode](6, H, layers, seed=seed)
    if weights != "float":
        model = rnnkit.quantize(model, weights)
    xs = rng.standard_normal((7, 6)).astype(np.float32)
    with using(split_macs=0 if split else 10**9):
        stream = rnnkit.Stream(model)  # the plan is made here, with this tuning
        path = rnnkit.explain(model, xs[0], mode="stream").path
        got = np.stack([stream.step(x) for x in xs])
    want, _ = model(xs[:, None, :])
    np.testing.assert_allclose(got, want[:, 0], rtol=3e-4, atol=3e-4, err_msg=path)


# -- the cell is the unit of extension ---------------------------------------------------------
def test_no_cell_name_dispatch_outside_the_cells():
    # the engine, the stream runtime and the kernels run a cell through its declaration
    # (`CellSpec.kernels`), never by comparing its name
    names = {"LSTM", "GRU", "RNN_TANH", "RNN_RELU"}
    found = []
    for folder in ("engine", "stream", "kernels"):
        for path in sorted((SRC / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Compare):
                    consts = [
                        c.value
                        for c in ast.walk(node)
                        if isinstance(c, ast.Constant) and c.value in names
                    ]
                    if consts:
                        found.append(f"{path.name}:{node.lineno}")
                if isinstance(node, ast.Attribute) and node.attr == "name":
                    if isinstance(node.value, ast.Attribute) and node.value.attr == "cell":
                        found.append(f"{path.name}:{node.lineno} (cell.name)")
    for path in (SRC / "layers" / "recurrent.py",):
        if "cell.name ==" in path.read_text():
            found.append(path.name)
    assert found == []


@pytest.mark.parametrize(
    ("model", "x", "mode", "message"),
    [
        (lambda: rnnkit.LSTM(3, 4), np.zeros((5, 3), np.float32), "fast", "explain: mode must be"),
        (lambda: rnnkit.Linear(3, 4), np.zeros((5, 3)), "infer", "Linear has no recurrent"),
        (lambda: rnnkit.LSTM(3, 4), np.zeros((5, 2, 2)), "infer", r"\(T, B, 3\), got \(5, 2, 2\)"),
    ],
)
def test_explain_refuses_bad_input_in_one_line(model, x, mode, message):
    with pytest.raises(rnnkit.RnnkitError, match=message) as info:
        rnnkit.explain(model(), x, mode=mode)
    assert "\n" not in str(info.value)
