"""The stream step plans (one stream and a batch of them) against the general path."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.stream.steps import build_plan
from rnnkit.tuning import using

MAKERS = {
    "rnn_tanh": lambda **kw: rnnkit.RNN(4, 6, **kw),
    "rnn_relu": lambda **kw: rnnkit.RNN(4, 6, nonlinearity="relu", **kw),
    "lstm": lambda **kw: rnnkit.LSTM(4, 6, **kw),
    "gru": lambda **kw: rnnkit.GRU(4, 6, **kw),
}


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


def _perturbed(layer, rng, batch=1):
    s = layer.initial_state(batch)
    return tuple(a + rng.standard_normal(a.shape).astype(a.dtype) for a in _parts(s))


def _model(cell, dtype, weights, **kw):
    model = MAKERS[cell](dtype=dtype, **kw)
    return model if weights == "float" else rnnkit.quantize(model, weights)


# quantized weights compute in float32, so they come only with float32 models
KINDS = [("float64", "float"), ("float32", "float"), ("float32", "int8"), ("float32", "bfloat16")]


@pytest.mark.parametrize("cell", sorted(MAKERS))
@pytest.mark.parametrize(("dtype", "weights"), KINDS)
@pytest.mark.parametrize("split", [False, True])
def test_batch1_plan_equals_the_general_step(cell, dtype, weights, split):
    # split: the products shared between the cores, as for large layers
    rng = np.random.default_rng(0)
    model = _model(cell, dtype, weights, num_layers=3, seed=2)
    with using(split_macs=0 if split else 10**9):
        plan = build_plan(model)
    assert plan is not None
    assert all(plan.split) == (split and weights != "bfloat16")  # bfloat16 is never split
    start = _perturbed(model, rng)
    start = start if cell == "lstm" else start[0]
    xs = rng.standard_normal((15, 4)).astype(dtype)
    fast = rnnkit.Stream(model)
    fast._plan = plan
    fast.state = start
    got = np.stack([fast.step(x) for x in xs])  # (T, H) through the plan
    want, final = model.stream_forward(xs[:, None, :], start)  # the general path, batch 1
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(got, want[:, 0], rtol=tol, atol=tol)
    for a, b in zip(_parts(fast.state), _parts(final), strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_plan_splits_layers_whose_weights_fill_a_cores_cache():
    # float32 LSTM 128: 131k multiply-adds (under PARALLEL_MACS) but 512 KiB of weights; its int8
    # weights (128 KiB) fit one core's cache, and bfloat16 is never split
    float_plan = build_plan(rnnkit.LSTM(128, 128, seed=0))
    int8_plan = build_plan(rnnkit.quantize(rnnkit.LSTM(128, 128, seed=0), "int8"))
    bf16_plan = build_plan(rnnkit.quantize(rnnkit.LSTM(256, 256, seed=0), "bfloat16"))
    small_plan = build_plan(rnnkit.LSTM(64, 64, seed=0))
    assert float_plan is not None and float_plan.split == [True]
    assert int8_plan is not None and int8_plan.split == [False]
    assert bf16_plan is not None and bf16_plan.split == [False]
    assert small_plan is not None and small_plan.split == [False]


def test_a_paced_stream_keeps_every_layer_on_one_core_with_the_same_outputs():
    # live inputs (audio every 10 ms): a split step would wake a sleeping second core each step
    layer = rnnkit.GRU(128, 256, seed=0)
    fast, paced = rnnkit.Stream(layer), rnnkit.Stream(layer, paced=True)
    assert fast._plan is not None and fast._plan.split == [True]
    assert paced._plan is not None and paced._plan.split == [False]
    assert paced._plan.plan().path == "stream" and "paced" in " ".join(paced._plan.plan().why)
    xs = np.random.default_rng(0).standard_normal((20, 128)).astype(np.float32)
    got = np.stack([paced.step(x) for x in xs])
    want = np.stack([fast.step(x) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_paced_pool_steps_one_stream_on_one_core_and_the_server_paces_by_default():
    # `rnnkit serve` answers a request that finds it idle with `StreamPool.step_one`
    from rnnkit.serve.config import ServeConfig
    from rnnkit.serve.service import StreamService

    layer = rnnkit.GRU(128, 256, seed=0)
    fast, paced = rnnkit.StreamPool(layer), rnnkit.StreamPool(layer, paced=True)
    assert fast._stream._plan is not None and fast._stream._plan.split == [True]
    assert paced._stream._plan is not None and paced._stream._plan.split == [False]
    xs = np.random.default_rng(1).standard_normal((10, 128)).astype(np.float32)
    for pool in (fast, paced):
        pool.join("a")
    got = np.stack([paced.step_one("a", x) for x in xs])
    want = np.stack([fast.step_one("a", x) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert StreamService(layer).pool._stream._plan.split == [False]
    unpaced = StreamService(layer, config=ServeConfig(paced=False))
    assert unpaced.pool._stream._plan.split == [True]


def test_plan_leaves_bad_input_to_the_general_path():
    stream = rnnkit.Stream(rnnkit.LSTM(3, 5, seed=0))
    with pytest.raises(ValueError, match="NaN"):
        stream.step(np.array([0.0, np.nan, 1.0], np.float32))
    with pytest.raises(ValueError, match=r"\(B, 3\)|3"):
        stream.step(np.zeros(4, np.float32))


def test_language_model_plan_equals_the_general_step():
    from rnnkit.models import LanguageModel

    lm = LanguageModel(vocab_size=11, hidden_size=7, num_layers=2, embedding_size=5, seed=0)
    tokens = [3, 1, 4, 1, 5, 9, 2, 6]
    stream = rnnkit.Stream(lm)
    got = np.stack([stream.step(t) for t in tokens])  # (T, V)
    want, _ = lm.stream_forward(np.array(tokens)[:, None], None)
    np.testing.assert_allclose(got, want[:, 0], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("cell", sorted(MAKERS))
@pytest.mark.parametrize(("dtype", "weights"), KINDS)
def test_batched_plan_equals_the_general_step(cell, dtype, weights):
    rng = np.random.default_rng(1)
    model = _model(cell, dtype, weights, num_layers=2, seed=3)
    plan = build_plan(model)
    assert plan is not None
    B = 5
    start = _perturbed(model, rng, B)
    start = start if cell == "lstm" else start[0]
    xs = rng.standard_normal((6, B, 4)).astype(dtype)
    fast_state, got = start, []
    for x in xs:
        done = plan.step_many(x, fast_state)
        if weights != "float":  # quantized weights take the general path
            assert done is None
            return
        assert done is not None
        y, fast_state = done
        got.append(y)
    want, final = model.stream_forward(xs, start)
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(np.stack(got), want, rtol=tol, atol=tol)
    for a, b in zip(_parts(fast_state), _parts(final), strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    # what it cannot take goes back to the general path, which reports it
    assert plan.step_many(np.full((B, 4), np.nan, dtype), fast_state) is None
    assert plan.step_many(xs[0], None) is not None  # no state yet: zeros
    assert plan.step_many(xs[0, :3], fast_state) is None  # state of another batch size


def test_language_model_batched_plan_equals_the_general_step():
    from rnnkit.models import LanguageModel

    lm = LanguageModel(vocab_size=11, hidden_size=7, num_layers=2, embedding_size=5, seed=0)
    ids = np.random.default_rng(0).integers(0, 11, size=(8, 3))
    stream = rnnkit.Stream(lm)
    got = np.stack([stream.step(t) for t in ids])  # (T, B, V) through the batched plan
    want, _ = lm.stream_forward(ids, None)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    plan = build_plan(lm)
    assert plan is not None
    assert plan.step_many(np.array([1, 11]), None) is None  # out of the vocabulary
    with pytest.raises(ValueError, match="11"):
        stream.step(np.array([1, 11, 2]))


@pytest.mark.parametrize("weights", ["int8", "bfloat16"])
def test_plan_keeps_a_quantized_float64_model_in_float64(weights):
    model = rnnkit.quantize(rnnkit.LSTM(3, 5, num_layers=2, dtype="float64", seed=0), weights)
    fast, general = rnnkit.Stream(model), rnnkit.Stream(model)
    general._plan = None
    xs = np.random.default_rng(0).standard_normal((6, 3))
    got = np.stack([fast.step(x) for x in xs])
    want = np.stack([general.step(x) for x in xs])
    assert got.dtype == want.dtype == np.float64
    assert all(p.dtype == np.float64 for p in fast.state)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_plan_output_is_its_own_array_and_infinities_stay_infinite():
    model = rnnkit.RNN(3, 4, nonlinearity="relu", seed=0)
    plan = build_plan(model)
    h = np.zeros((1, 1, 4), np.float32)
    h[0, 0, 0] = np.inf  # W_hh h: +inf, -inf or nan per row, as NumPy has it
    x = np.ones(3, np.float32)
    y, state = plan.step(x, h)
    p = model.params
    with np.errstate(invalid="ignore"):
        pre = (
            p["weight_ih_l0"] @ x + p["bias_ih_l0"] + p["weight_hh_l0"] @ h[0, 0] + p["bias_hh_l0"]
        )
    np.testing.assert_array_equal(y, np.maximum(pre, 0))  # inf stays inf, -inf becomes 0
    before = state.copy()
    y[:] = 7.0  # a caller writing into an output does not touch the state
    np.testing.assert_array_equal(state, before)


def test_single_input_on_a_state_of_several_streams_is_refused():
    layer = rnnkit.LSTM(3, 4, seed=0)
    stream = rnnkit.Stream(layer)
    stream.state = layer.initial_state(3)
    with pytest.raises(ValueError, match="holds 3 streams"):
        stream.step(np.ones(3, np.float32))


def test_a_fresh_compilation_of_the_split_step_prints_no_numba_warning(tmp_path):
    """numba's pedantic IR warning about the inlined helpers is silenced, also when numba bolds
    its text with ANSI codes (colorama installed): a user's first `rnnkit stream` is quiet."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(rnnkit.__file__).resolve().parent.parent
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(src)}
    code = (
        "import numpy as np, rnnkit\n"
        "s = rnnkit.Stream(rnnkit.LSTM(40, 256, seed=0), False)\n"
        "for _ in range(3): y = s.step(np.ones(40, np.float32))\n"
        "print(y.shape)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(256,)"
    assert "NumbaIRAssumptionWarning" not in run.stderr, run.stderr[:500]
    assert any(tmp_path.rglob("*.nbi")), "the compilation did not go through the fresh cache"
