"""ONNX export matches onnxruntime; import reads the weights back exactly."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import rnnkit

LAYERS = [
    lambda: rnnkit.RNN(4, 6, 2, nonlinearity="tanh", seed=0),
    lambda: rnnkit.RNN(4, 6, 1, nonlinearity="relu", bidirectional=True, bias=False, seed=0),
    lambda: rnnkit.LSTM(4, 6, 1, seed=0),
    lambda: rnnkit.LSTM(4, 6, 2, bidirectional=True, seed=0),
    lambda: rnnkit.GRU(4, 6, 3, seed=0),
    lambda: rnnkit.GRU(4, 6, 2, bidirectional=True, batch_first=True, seed=0),
]


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("make", LAYERS)
def test_export_matches_onnxruntime_and_imports_back(tmp_path, make):
    rng = np.random.default_rng(0)
    layer = make()
    path = rnnkit.export_onnx(layer, tmp_path / "m.onnx")
    session = _session(path)
    x = rng.standard_normal((7, 3, 4)).astype(np.float32)  # time-major, whatever batch_first
    state = layer.initial_state(3)
    parts = state if isinstance(state, tuple) else (state,)
    parts = tuple(p + rng.standard_normal(p.shape).astype(np.float32) for p in parts)
    feeds = dict(zip(["input", "h0", "c0"], (x, *parts), strict=False))
    got = session.run(None, feeds)
    y, final = layer.stream_forward(x, parts if len(parts) == 2 else parts[0])
    np.testing.assert_allclose(got[0], y, atol=1e-5)
    for a, b in zip(got[1:], final if isinstance(final, tuple) else (final,), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    back = rnnkit.import_onnx(path)
    assert type(back) is type(layer) and back.config == layer.config
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value)


def test_exported_model_streams_with_state_in_and_out(tmp_path):
    layer = rnnkit.LSTM(2, 5, 2, seed=3)
    session = _session(rnnkit.export_onnx(layer, tmp_path / "m.onnx"))
    xs = np.random.default_rng(1).standard_normal((6, 1, 2)).astype(np.float32)
    h, c = layer.initial_state(1)
    outs = []
    for t in range(6):  # one step at a time, the state passed back in
        y, h, c = session.run(None, {"input": xs[t : t + 1], "h0": h, "c0": c})
        outs.append(y[0])
    np.testing.assert_allclose(np.stack(outs), layer(xs)[0][:, 0:1].reshape(6, 1, 5), atol=1e-5)


def test_export_and_import_errors(tmp_path):
    with pytest.raises(rnnkit.InputError, match="expected an RNN, LSTM or GRU layer, got Linear"):
        rnnkit.export_onnx(rnnkit.Linear(2, 2), tmp_path / "x.onnx")
    with pytest.raises(rnnkit.CheckpointError, match="no such file"):
        rnnkit.import_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(rnnkit.CheckpointError, match="not an ONNX model|not written by rnnkit"):
        rnnkit.import_onnx(tmp_path / "junk.onnx")
