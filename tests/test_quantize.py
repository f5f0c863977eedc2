"""Quantized weights: stated tolerances, both product paths, storage size, refusals."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.models import LanguageModel
from rnnkit.quantize import QuantizedMatrix, weight_bytes
from rnnkit.tuning import current

SMALL_BATCH = current().quant_small_batch  # up to this many rows: the compact kernel

# Stated tolerances on the outputs of a stack (tanh-bounded, |y| <= 1): max absolute error.
TOL = {"int8": 1e-2, "bfloat16": 5e-3}


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
def test_matrix_products_from_compact_storage(kind):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((48, 33)).astype(np.float32)
    m = QuantizedMatrix(w, kind)
    deq = m.dequantize()
    if kind == "int8":  # each element within half a step of its row's scale
        assert np.all(np.abs(deq - w) <= m.scale[:, None] / 2 + 1e-7)
    else:  # bfloat16 keeps 8 bits of mantissa: relative error at most 2^-9
        assert np.all(np.abs(deq - w) <= np.abs(w) * 2.0**-8)
    for batch in (1, 3, SMALL_BATCH + 1):  # the compact kernel, and dequantize + BLAS
        x = rng.standard_normal((batch, 33)).astype(np.float32)
        got, want = x @ m.T, x.astype(np.float64) @ deq.T.astype(np.float64)
        bound = 1e-5 * (1 + np.abs(want))  # float32 round-off
        if kind == "int8":  # x on an int16 grid (both paths): within half its step
            step = np.abs(x).max(axis=1) / 32767
            bound = bound + step[:, None] / 2 * np.abs(deq).sum(axis=1)[None, :]
        assert np.all(np.abs(got - want) <= bound)
        assert not np.array_equal(got, want)  # it did compute from the compact form


def test_int8_products_run_in_integers_and_keep_nan_and_long_rows_in_float():
    rng = np.random.default_rng(3)
    for K in (5, 16, 33, 100, 4200):  # tails of K % 16, and rows too long for int16 inputs
        w = rng.standard_normal((9, K)).astype(np.float32)
        m = QuantizedMatrix(w, "int8")
        x = rng.standard_normal((2, K)).astype(np.float32)
        got = x @ m.T
        xq = np.rint(x / (np.abs(x).max(axis=1, keepdims=True) / 32767))
        exact = xq @ m.q.T.astype(np.float64)  # the integer sums, exactly
        scale = np.abs(x).max(axis=1)[:, None] / 32767 * m.scale[None, :]
        integer = np.allclose(got, exact * scale, rtol=1e-6, atol=1e-6)
        assert integer == (K <= 4129), K  # longer rows widen the weights instead
        if K > 4129:
            np.testing.assert_allclose(got, x @ m.dequantize().T, rtol=1e-4, atol=1e-3)
    x = np.ones((1, 33), np.float32)
    x[0, 4] = np.nan
    assert np.isnan(x @ QuantizedMatrix(rng.standard_normal((3, 33)), "int8").T).all()
    x[0, 4] = np.inf
    out = x @ QuantizedMatrix(np.ones((3, 33)), "int8").T
    assert np.all(out == np.inf)  # carried in float, as the float model would
    w = rng.standard_normal((5, 33))
    for batch in (1, SMALL_BATCH + 1):  # the kernel and the grid before BLAS
        tiny = np.full((batch, 33), 1e-306)  # finite, but 1 / (its int16 step) overflows
        got = tiny @ QuantizedMatrix(w, "int8").T
        np.testing.assert_allclose(got, tiny @ QuantizedMatrix(w, "int8").dequantize().T)
    fortran = np.asfortranarray(w.astype(np.float32))  # any memory order of the weights
    ones = np.ones((1, 33), np.float32)
    want = ones @ QuantizedMatrix(np.ascontiguousarray(fortran), "int8").T
    np.testing.assert_array_equal(ones @ QuantizedMatrix(fortran, "int8").T, want)


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN])
def test_quantized_stacks_stay_within_the_stated_tolerance(kind, cls):
    rng = np.random.default_rng(1)
    layer = cls(16, 32, 2, seed=0)
    small = rnnkit.quantize(layer, kind)
    x = rng.standard_normal((50, 2, 16)).astype(np.float32)
    y, _ = layer(x)
    yq, _ = small(x)
    err = np.abs(yq - y).max()
    assert 0 < err < TOL[kind]  # it did change, and not by much
    # int8 rounds each product's input to int16 (steps of max|x| / 32767): where float
    # round-off differs between two paths, a number can land on the next step of that grid
    atol = 1e-4 if kind == "int8" else 1e-6
    for b in range(2):  # one stream each: the fused step against the sequence
        stream = rnnkit.Stream(small)
        steps = np.stack([stream.step(x[t, b]) for t in range(50)])
        np.testing.assert_allclose(steps, yq[:, b], rtol=1e-5, atol=atol)
    assert np.array_equal(layer(x)[0], y)  # the float model is untouched


def test_quantized_language_model_and_storage():
    model = LanguageModel(30, "lstm", 64, 2, 16, dropout=0.0, seed=0)
    ids = np.random.default_rng(2).integers(0, 30, size=(40, 2))
    logits, _ = model(ids)
    for kind, ratio in (("int8", 0.3), ("bfloat16", 0.55)):
        small = rnnkit.quantize(model, kind)
        assert weight_bytes(small) < ratio * weight_bytes(model)
        lq, _ = small(ids)
        p, pq = rnnkit.softmax(logits), rnnkit.softmax(lq)
        assert np.abs(p - pq).max() < 0.02


def test_quantized_models_are_not_saved_and_kinds_are_checked(tmp_path):
    small = rnnkit.quantize(rnnkit.GRU(3, 4, seed=0), "int8")
    with pytest.raises(rnnkit.CheckpointError, match="is quantized; save the float model"):
        rnnkit.save(small, tmp_path / "q.safetensors")
    assert not (tmp_path / "q.safetensors").exists()
    with pytest.raises(rnnkit.InputError, match="kind must be one of"):
        rnnkit.quantize(rnnkit.GRU(3, 4), "int4")
