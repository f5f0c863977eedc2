"""Central finite differences in float64 against every analytic gradient.

For each cell and layer the scalar loss is ``L = sum(y * dy) + sum(h_n * dh) [+ sum(c_n * dc)]``
with random ``dy``, ``dh``, ``dc``; its gradient with respect to every parameter element, the
input and the initial state is computed by the backward and by central differences of the
inference path, and the two must agree to a normwise relative error below ``TOL``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import rnnkit
from numeric import numeric_grad as central_differences

EPS = 1e-6
TOL = 1e-6


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """``max|a - b| / max(max|b|, 1e-12)``: normwise, so near-zero entries do not inflate it."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))


def numeric_grad(loss: Callable[[], float], arr: np.ndarray) -> np.ndarray:
    """Central differences of ``loss()`` with respect to every element of ``arr`` (in place)."""
    return central_differences(loss, arr, EPS)


def assert_close(name: str, analytic: np.ndarray, numeric: np.ndarray) -> None:
    assert np.abs(numeric).max() > 1e-8, f"{name}: numeric gradient is zero, test is vacuous"
    err = rel_err(analytic, numeric)
    assert err < TOL, f"{name}: relative error {err:.2e}"


def parts(state) -> tuple[np.ndarray, ...]:
    return tuple(state) if isinstance(state, tuple) else (state,)


def pack(arrs: list[np.ndarray], is_lstm: bool):
    return tuple(arrs) if is_lstm else arrs[0]


# -- cells -----------------------------------------------------------------------------------
def make_cell(kind: str, bias: bool, seed: int = 0):
    F, H = 3, 3
    if kind == "rnn_tanh":
        return rnnkit.RNNCell(F, H, bias, "tanh", seed=seed, dtype="float64")
    if kind == "rnn_relu":
        return rnnkit.RNNCell(F, H, bias, "relu", seed=seed, dtype="float64")
    if kind == "lstm":
        return rnnkit.LSTMCell(F, H, bias, seed=seed, dtype="float64")
    return rnnkit.GRUCell(F, H, bias, seed=seed, dtype="float64")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_cell_gradients(kind: str, bias: bool) -> None:
    rng = np.random.default_rng(1)
    cell = make_cell(kind, bias)
    is_lstm = kind == "lstm"
    B, F, H = 2, 3, 3
    x = rng.standard_normal((B, F))
    state = [rng.standard_normal((B, H)) for _ in range(2 if is_lstm else 1)]
    dstate = [rng.standard_normal((B, H)) for _ in state]

    if kind == "rnn_relu":  # relu has a kink at 0: keep every pre-activation well away from it
        p = cell.params
        a = x @ p["weight_ih"].T + state[0] @ p["weight_hh"].T
        if bias:
            a = a + p["bias_ih"] + p["bias_hh"]
        assert np.abs(a).min() > 1e-3
        assert (a > 0).any() and (a < 0).any()  # both branches of relu are exercised

    def loss() -> float:
        new = parts(cell(x, pack(state, is_lstm)))
        return float(sum(np.sum(n * d) for n, d in zip(new, dstate, strict=True)))

    cell.zero_grad()
    _, backward = cell.forward_train(x, pack(state, is_lstm))
    dx, dprev = backward(pack(dstate, is_lstm))

    assert_close("dx", dx, numeric_grad(loss, x))
    for i, (d, s) in enumerate(zip(parts(dprev), state, strict=True)):
        assert_close(f"dstate{i}", d, numeric_grad(loss, s))
    expected_keys = {"weight_ih", "weight_hh"} | ({"bias_ih", "bias_hh"} if bias else set())
    assert set(cell.grads) == expected_keys
    for key in cell.grads:
        assert_close(key, cell.grads[key], numeric_grad(loss, cell.params[key]))


# -- recurrent layers ------------------------------------------------------------------------
def make_layer(mode: str, **kw) -> rnnkit.Recurrent:
    kw.setdefault("seed", 0)
    kw.setdefault("dtype", "float64")
    if mode == "rnn_tanh":
        return rnnkit.RNN(3, 2, nonlinearity="tanh", **kw)
    if mode == "rnn_relu":
        return rnnkit.RNN(3, 2, nonlinearity="relu", **kw)
    if mode == "lstm":
        return rnnkit.LSTM(3, 2, **kw)
    return rnnkit.GRU(3, 2, **kw)


def check_layer(layer: rnnkit.Recurrent, T: int, B: int, lengths, seed: int = 2) -> None:
    rng = np.random.default_rng(seed)
    is_lstm = layer.is_lstm
    LD = layer.num_layers * layer.num_directions
    H, D = layer.hidden_size, layer.num_directions
    xshape = (B, T, layer.input_size) if layer.batch_first else (T, B, layer.input_size)
    x = rng.standard_normal(xshape)
    state = [rng.standard_normal((LD, B, H)) for _ in range(2 if is_lstm else 1)]
    yshape = (B, T, D * H) if layer.batch_first else (T, B, D * H)
    dy = rng.standard_normal(yshape)
    dstate = [rng.standard_normal((LD, B, H)) for _ in state]

    def loss() -> float:
        y, new = layer(x, pack(state, is_lstm), lengths)
        total = np.sum(y * dy)
        for n, d in zip(parts(new), dstate, strict=True):
            total += np.sum(n * d)
        return float(total)

    layer.zero_grad()
    y, _, backward = layer.forward_train(x, pack(state, is_lstm), lengths)
    assert y.shape == yshape
    dx, dstate0 = backward(dy, pack(dstate, is_lstm))

    assert_close("dx", dx, numeric_grad(loss, x))
    for i, (d, s) in enumerate(zip(parts(dstate0), state, strict=True)):
        assert_close(f"dstate{i}", d, numeric_grad(loss, s))
    assert set(layer.grads) == set(layer.params)
    for key in layer.grads:
        assert_close(key, layer.grads[key], numeric_grad(loss, layer.params[key]))


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_layer_two_layer_bidirectional_lengths(mode: str) -> None:
    layer = make_layer(mode, num_layers=2, bidirectional=True)
    check_layer(layer, T=5, B=3, lengths=[4, 2, 5])


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_layer_batch_first_lengths(mode: str) -> None:
    layer = make_layer(mode, num_layers=2, bidirectional=True, batch_first=True)
    check_layer(layer, T=4, B=3, lengths=np.array([3, 4, 1]))


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_layer_no_bias_no_lengths(mode: str) -> None:
    layer = make_layer(mode, num_layers=2, bias=False)
    check_layer(layer, T=4, B=2, lengths=None)


def test_layer_relu_one_layer() -> None:
    """Single-layer relu RNN, with every pre-activation checked to lie away from the kink."""
    layer = make_layer("rnn_relu", bidirectional=True, seed=3)
    T, B, seed = 4, 2, 5
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, 3))
    h0 = rng.standard_normal((2, B, 2))
    p = layer.params
    for k, sfx in enumerate(["l0", "l0_reverse"]):
        h = h0[k]
        xs = x if k == 0 else x[::-1]
        for t in range(T):
            a = xs[t] @ p[f"weight_ih_{sfx}"].T + p[f"bias_ih_{sfx}"]
            a = a + h @ p[f"weight_hh_{sfx}"].T + p[f"bias_hh_{sfx}"]
            assert np.abs(a).min() > 1e-3, "pre-activation too close to the relu kink"
            h = np.maximum(a, 0.0)
    check_layer(layer, T=T, B=B, lengths=None, seed=seed)


def test_layer_gradients_through_dropout() -> None:
    """With dropout the mask is random: a fresh layer with the same seed draws the same one."""
    T, B = 4, 2
    ref = rnnkit.GRU(3, 2, num_layers=3, dropout=0.5, seed=7, dtype="float64")
    weights = ref.state_dict()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, 3))
    dy = rng.standard_normal((T, B, 2))
    dh = rng.standard_normal((3, B, 2))

    def fresh(w: dict[str, np.ndarray]) -> rnnkit.GRU:
        layer = rnnkit.GRU(3, 2, num_layers=3, dropout=0.5, seed=7, dtype="float64")
        layer.load_state_dict(w)
        return layer

    def loss() -> float:
        y, h, _ = fresh(weights).forward_train(x)
        return float(np.sum(y * dy) + np.sum(h * dh))

    layer = fresh(weights)
    y, _, backward = layer.forward_train(x)
    y_inf, _ = layer(x)
    assert not np.allclose(y, y_inf), "dropout had no effect: the test would be vacuous"
    dx, _ = backward(dy, dh)
    assert_close("dx", dx, numeric_grad(loss, x))
    for key in ("weight_ih_l0", "weight_hh_l1", "bias_hh_l0"):
        assert_close(key, layer.grads[key], numeric_grad(loss, weights[key]))


# -- dense layers ----------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(bias: bool) -> None:
    rng = np.random.default_rng(0)
    layer = rnnkit.Linear(3, 4, bias=bias, seed=0, dtype="float64")
    x = rng.standard_normal((2, 5, 3))  # any leading shape
    dy = rng.standard_normal((2, 5, 4))

    def loss() -> float:
        return float(np.sum(layer(x) * dy))

    layer.zero_grad()
    _, backward = layer.forward_train(x)
    dx = backward(dy)
    assert_close("dx", dx, numeric_grad(loss, x))
    assert set(layer.grads) == ({"weight", "bias"} if bias else {"weight"})
    for key in layer.grads:
        assert_close(key, layer.grads[key], numeric_grad(loss, layer.params[key]))


def test_embedding_gradients_repeated_ids() -> None:
    rng = np.random.default_rng(0)
    layer = rnnkit.Embedding(5, 3, seed=0, dtype="float64")
    ids = np.array([[1, 3, 1], [4, 1, 3]])  # 1 three times, 3 twice, 0 and 2 never
    dy = rng.standard_normal((2, 3, 3))

    def loss() -> float:
        return float(np.sum(layer(ids) * dy))

    layer.zero_grad()
    _, backward = layer.forward_train(ids)
    assert backward(dy) is None
    numeric = numeric_grad(loss, layer.params["weight"])
    assert_close("weight", layer.grads["weight"], numeric)
    assert np.all(layer.grads["weight"][[0, 2]] == 0.0)
