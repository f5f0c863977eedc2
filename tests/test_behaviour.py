"""Behaviour: the step path equals the sequence path, state carries, lengths, dropout, seeds,
gradient norms, layouts, gradient bookkeeping and dtypes."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit

MODES = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def make_layer(mode: str, F: int = 3, H: int = 4, **kw) -> rnnkit.Recurrent:
    kw.setdefault("seed", 0)
    kw.setdefault("dtype", "float64")
    if mode.startswith("rnn"):
        return rnnkit.RNN(F, H, nonlinearity=mode[4:], **kw)
    return (rnnkit.LSTM if mode == "lstm" else rnnkit.GRU)(F, H, **kw)


def make_cell(mode: str, F: int, H: int, bias: bool = True):
    if mode.startswith("rnn"):
        return rnnkit.RNNCell(F, H, bias, mode[4:], seed=1, dtype="float64")
    cls = rnnkit.LSTMCell if mode == "lstm" else rnnkit.GRUCell
    return cls(F, H, bias, seed=1, dtype="float64")


def parts(state) -> tuple[np.ndarray, ...]:
    return tuple(state) if isinstance(state, tuple) else (state,)


def random_state(layer: rnnkit.Recurrent, B: int, rng: np.random.Generator):
    LD = layer.num_layers * layer.num_directions
    arrs = [rng.standard_normal((LD, B, layer.hidden_size)) for _ in range(layer.cell.carry_size)]
    return tuple(arrs) if layer.is_lstm else arrs[0]


# -- the step path equals the sequence path --------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_cell_steps_equal_layer_sequence(mode: str, bias: bool) -> None:
    T, B, F, H = 6, 3, 3, 4
    rng = np.random.default_rng(0)
    layer = make_layer(mode, F, H, bias=bias)
    cell = make_cell(mode, F, H, bias)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = rng.standard_normal((T, B, F))
    state = random_state(layer, B, rng)

    y, final = layer(x, state)
    carry = tuple(p[0] for p in parts(state))
    carry = carry if layer.is_lstm else carry[0]
    for t in range(T):
        carry = cell(x[t], carry)
        np.testing.assert_allclose(parts(carry)[0], y[t], rtol=1e-12, atol=1e-12)
    for a, b in zip(parts(carry), parts(final), strict=True):
        np.testing.assert_allclose(a, b[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_two_chunks_with_carried_state_equal_one_call(mode: str) -> None:
    T, B = 7, 2
    rng = np.random.default_rng(1)
    layer = make_layer(mode, num_layers=2)
    x = rng.standard_normal((T, B, 3))
    state = random_state(layer, B, rng)
    y, final = layer(x, state)
    y1, mid = layer(x[:3], state)
    y2, end = layer(x[3:], mid)
    np.testing.assert_allclose(np.concatenate([y1, y2]), y, rtol=1e-12, atol=1e-12)
    for a, b in zip(parts(end), parts(final), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # and a different carried state changes the second chunk: the carry is really used
    y2_fresh, _ = layer(x[3:])
    assert not np.allclose(y2_fresh, y2)


# -- dropout and seeds -----------------------------------------------------------------------
def test_inference_ignores_dropout() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 2, 3))
    with_dropout = make_layer("lstm", num_layers=3, dropout=0.5, seed=3)
    without = make_layer("lstm", num_layers=3, dropout=0.0, seed=4)
    without.load_state_dict(with_dropout.state_dict())
    y1, (h1, c1) = with_dropout(x)
    y2, (h2, c2) = with_dropout(x)
    y3, (h3, c3) = without(x)
    assert np.array_equal(y1, y2) and np.array_equal(h1, h2) and np.array_equal(c1, c2)
    assert np.array_equal(y1, y3) and np.array_equal(h1, h3) and np.array_equal(c1, c3)


def test_forward_train_without_dropout_equals_inference() -> None:
    rng = np.random.default_rng(3)
    layer = make_layer("gru", num_layers=2, bidirectional=True)
    x = rng.standard_normal((5, 2, 3))
    y, h = layer(x, lengths=[5, 3])
    y_t, h_t, _ = layer.forward_train(x, lengths=[5, 3])
    assert np.array_equal(y, y_t) and np.array_equal(h, h_t)


def test_forward_train_applies_dropout_between_layers() -> None:
    rng = np.random.default_rng(4)
    layer = make_layer("lstm", num_layers=3, dropout=0.5)
    x = rng.standard_normal((5, 2, 3))
    y, (h, _) = layer(x)
    y_t, (h_t, _), _ = layer.forward_train(x)
    assert not np.allclose(y_t, y)
    # the first layer sees no dropout: its final state is unchanged
    np.testing.assert_array_equal(h_t[0], h[0])
    assert not np.allclose(h_t[1:], h[1:])
    # each training call draws a new mask
    y_t2, _, _ = layer.forward_train(x)
    assert not np.array_equal(y_t, y_t2)


def _train_run(seed: int, weights: dict[str, np.ndarray] | None = None):
    layer = make_layer("gru", num_layers=3, dropout=0.3, bidirectional=True, seed=seed)
    if weights is not None:
        layer.load_state_dict(weights)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 3))
    y, h, backward = layer.forward_train(x)
    dx, dh = backward(rng.standard_normal(y.shape), rng.standard_normal(h.shape))
    return y, h, dx, dh, {k: g.copy() for k, g in layer.grads.items()}


def test_same_seed_is_bit_identical_in_training() -> None:
    a, b = _train_run(11), _train_run(11)
    for u, v in zip(a[:4], b[:4], strict=True):
        assert np.array_equal(u, v)
    assert a[4].keys() == b[4].keys()
    for key in a[4]:
        assert np.array_equal(a[4][key], b[4][key]), key


def test_different_seed_draws_different_dropout() -> None:
    weights = make_layer("gru", num_layers=3, bidirectional=True, seed=11).state_dict()
    a, b = _train_run(11, weights), _train_run(12, weights)  # same weights, other masks
    assert not np.allclose(a[0], b[0])
    assert not np.allclose(a[2], b[2])


@pytest.mark.parametrize("mode", MODES)
def test_seed_fixes_the_weights(mode: str) -> None:
    a = make_layer(mode, num_layers=2, bidirectional=True, seed=5).state_dict()
    b = make_layer(mode, num_layers=2, bidirectional=True, seed=5).state_dict()
    c = make_layer(mode, num_layers=2, bidirectional=True, seed=6).state_dict()
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
        assert not np.array_equal(a[key], c[key]), key


@pytest.mark.parametrize("mode", MODES)
def test_cell_seed_fixes_the_weights(mode: str) -> None:
    def weights(seed):
        if mode.startswith("rnn"):
            return rnnkit.RNNCell(3, 4, nonlinearity=mode[4:], seed=seed).state_dict()
        cls = rnnkit.LSTMCell if mode == "lstm" else rnnkit.GRUCell
        return cls(3, 4, seed=seed).state_dict()

    a, b, c = weights(5), weights(5), weights(6)
    for key in a:
        assert np.array_equal(a[key], b[key]) and not np.array_equal(a[key], c[key]), key


# -- gradient norms --------------------------------------------------------------------------
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True), (3, False)])
def test_grad_norms_shape(num_layers: int, bidirectional: bool) -> None:
    T, B = 5, 2
    layer = make_layer("lstm", num_layers=num_layers, bidirectional=bidirectional)
    rng = np.random.default_rng(0)
    y, _, backward = layer.forward_train(rng.standard_normal((T, B, 3)))
    backward(rng.standard_normal(y.shape))
    D = 2 if bidirectional else 1
    assert layer.grad_norms.shape == (num_layers * D, T)
    assert np.all(np.isfinite(layer.grad_norms)) and np.all(layer.grad_norms > 0)


@pytest.mark.parametrize("mode", MODES)
def test_grad_norm_of_last_step_is_norm_of_dy(mode: str) -> None:
    T, B = 5, 3
    layer = make_layer(mode)
    rng = np.random.default_rng(1)
    y, _, backward = layer.forward_train(rng.standard_normal((T, B, 3)))
    dy = rng.standard_normal(y.shape)
    backward(dy)  # dstate=None: nothing arrives at h_{T-1} but dy[T-1]
    np.testing.assert_allclose(layer.grad_norms[0, -1], np.linalg.norm(dy[-1]), rtol=1e-12)
    # the earlier steps also receive the gradient flowing back in time
    assert not np.isclose(layer.grad_norms[0, 0], np.linalg.norm(dy[0]))


def test_grad_norms_with_dstate_and_reverse_direction() -> None:
    T, B, H = 4, 2, 4
    layer = make_layer("gru", H=H, bidirectional=True)
    rng = np.random.default_rng(2)
    y, h, backward = layer.forward_train(rng.standard_normal((T, B, 3)))
    dh = rng.standard_normal(h.shape)
    dy = np.zeros_like(y)
    backward(dy, dh)
    # forward direction: only dh reaches its last step; reverse direction: its last step is t=0
    np.testing.assert_allclose(layer.grad_norms[0, -1], np.linalg.norm(dh[0]), rtol=1e-12)
    np.testing.assert_allclose(layer.grad_norms[1, 0], np.linalg.norm(dh[1]), rtol=1e-12)


def _norms_of_last_step_gradient(layer: rnnkit.Recurrent, T: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    B = 4
    y, _, backward = layer.forward_train(rng.standard_normal((T, B, layer.input_size)))
    dy = np.zeros_like(y)
    dy[-1] = rng.standard_normal(dy[-1].shape)  # a loss on the last output only
    backward(dy)
    return layer.grad_norms[0]


def test_vanishing_gradient_visible_in_rnn_not_in_lstm() -> None:
    T, H = 60, 8
    rnn = rnnkit.RNN(3, H, seed=0, dtype="float64")
    lstm = rnnkit.LSTM(3, H, seed=0, dtype="float64")
    for layer in (rnn, lstm):
        for key, value in layer.params.items():
            if key.startswith("weight"):
                value *= 0.3  # small weights: the tanh RNN's Jacobian norm is well below 1
    lstm.params["bias_ih_l0"][H : 2 * H] = 6.0  # forget gate close to 1

    rnn_norms = _norms_of_last_step_gradient(rnn, T)
    lstm_norms = _norms_of_last_step_gradient(lstm, T)
    # the plain RNN: strictly decaying going back in time, by many orders of magnitude
    assert np.all(np.diff(rnn_norms) > 0)
    assert rnn_norms[0] < 1e-20 * rnn_norms[-1]
    # the LSTM: the cell state carries it; still a sizeable fraction after 60 steps
    assert lstm_norms[0] > 1e-3 * lstm_norms[-1]
    assert lstm_norms[0] > 0.1 * lstm_norms[-2]


# -- variable lengths ------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_lengths_zero_padding_and_final_state(mode: str, batch_first: bool) -> None:
    T, B = 5, 3
    lengths = [4, 2, 5]
    rng = np.random.default_rng(3)
    layer = make_layer(mode, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3))
    state = random_state(layer, B, rng)
    y, final = layer(x, state, lengths)
    y_tm = y.transpose(1, 0, 2) if batch_first else y
    x_tm = x.transpose(1, 0, 2) if batch_first else x
    for b, n in enumerate(lengths):
        assert np.all(y_tm[n:, b] == 0.0)
        alone_state = tuple(p[:, b : b + 1] for p in parts(state))
        xb = x_tm[:n, b : b + 1]
        if batch_first:
            xb = xb.transpose(1, 0, 2)
        y_alone, f_alone = layer(xb, alone_state if layer.is_lstm else alone_state[0])
        y_alone = y_alone[0] if batch_first else y_alone[:, 0]
        np.testing.assert_allclose(y_tm[:n, b], y_alone, rtol=1e-12, atol=1e-12)
        for a, s in zip(parts(final), parts(f_alone), strict=True):  # all 4 rows: both dirs
            np.testing.assert_allclose(a[:, b], s[:, 0], rtol=1e-12, atol=1e-12)


def test_lengths_all_full_equal_no_lengths() -> None:
    rng = np.random.default_rng(0)
    layer = make_layer("lstm", num_layers=2, bidirectional=True)
    x = rng.standard_normal((4, 2, 3))
    y1, (h1, c1) = layer(x)
    y2, (h2, c2) = layer(x, lengths=np.array([4, 4]))
    assert np.array_equal(y1, y2) and np.array_equal(h1, h2) and np.array_equal(c1, c2)


def test_lengths_gradients_do_not_leak_into_padding() -> None:
    rng = np.random.default_rng(1)
    layer = make_layer("gru", num_layers=2, bidirectional=True)
    lengths = [2, 5, 3]
    x = rng.standard_normal((5, 3, 3))
    y, h, backward = layer.forward_train(x, lengths=lengths)
    dx, _ = backward(rng.standard_normal(y.shape), rng.standard_normal(h.shape))
    for b, n in enumerate(lengths):
        assert np.all(dx[n:, b] == 0.0)
        assert np.any(dx[:n, b] != 0.0)


# -- layouts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_unbatched_equals_batch_of_one(mode: str) -> None:
    T = 5
    rng = np.random.default_rng(5)
    layer = make_layer(mode, num_layers=2, bidirectional=True)
    x = rng.standard_normal((T, 3))
    state = random_state(layer, 1, rng)
    state_unb = tuple(p[:, 0] for p in parts(state))
    state_unb = state_unb if layer.is_lstm else state_unb[0]

    y, final = layer(x, state_unb)
    y1, final1 = layer(x[:, None], state)
    assert y.shape == (T, 2 * layer.hidden_size)
    np.testing.assert_array_equal(y, y1[:, 0])
    for a, b in zip(parts(final), parts(final1), strict=True):
        assert a.shape == (4, layer.hidden_size)
        np.testing.assert_array_equal(a, b[:, 0])

    # and the backward, in the same unbatched layout
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    _, _, backward = layer.forward_train(x, state_unb)
    dx, dstate = backward(dy)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    _, _, backward1 = layer.forward_train(x[:, None], state)
    dx1, dstate1 = backward1(dy[:, None])
    np.testing.assert_allclose(dx, dx1[:, 0], rtol=1e-12, atol=1e-14)
    for a, b in zip(parts(dstate), parts(dstate1), strict=True):
        np.testing.assert_allclose(a, b[:, 0], rtol=1e-12, atol=1e-14)
    for key, g in layer.grads.items():
        np.testing.assert_allclose(grads[key], g, rtol=1e-12, atol=1e-14)


def test_unbatched_ignores_batch_first() -> None:
    """As in PyTorch, an unbatched input is (T, F) whatever batch_first says."""
    rng = np.random.default_rng(6)
    tm = make_layer("gru")
    bf = make_layer("gru", batch_first=True)
    x = rng.standard_normal((5, 3))
    y_tm, h_tm = tm(x)
    y_bf, h_bf = bf(x)
    np.testing.assert_array_equal(y_tm, y_bf)
    np.testing.assert_array_equal(h_tm, h_bf)


@pytest.mark.parametrize("mode", MODES)
def test_batch_first_equals_transposed_time_major(mode: str) -> None:
    T, B = 5, 3
    lengths = [5, 1, 3]
    rng = np.random.default_rng(7)
    tm = make_layer(mode, num_layers=2, bidirectional=True)
    bf = make_layer(mode, num_layers=2, bidirectional=True, batch_first=True)
    assert all(np.array_equal(tm.params[k], bf.params[k]) for k in tm.params)
    x = rng.standard_normal((T, B, 3))
    state = random_state(tm, B, rng)  # state is (L*D, B, H) in both layouts, as in PyTorch

    y, final, backward = tm.forward_train(x, state, lengths)
    y_bf, final_bf, backward_bf = bf.forward_train(x.transpose(1, 0, 2), state, lengths)
    assert y_bf.shape == (B, T, 2 * tm.hidden_size)
    np.testing.assert_allclose(y_bf, y.transpose(1, 0, 2), rtol=1e-12, atol=1e-14)
    for a, b in zip(parts(final), parts(final_bf), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)

    dy = rng.standard_normal(y.shape)
    dx, dstate = backward(dy)
    dx_bf, dstate_bf = backward_bf(dy.transpose(1, 0, 2))
    np.testing.assert_allclose(dx_bf, dx.transpose(1, 0, 2), rtol=1e-12, atol=1e-14)
    for a, b in zip(parts(dstate), parts(dstate_bf), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bf.grad_norms, tm.grad_norms, rtol=1e-12)
    for key in tm.grads:
        np.testing.assert_allclose(bf.grads[key], tm.grads[key], rtol=1e-12, atol=1e-14)


# -- gradient bookkeeping --------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_zero_grad_and_accumulation(mode: str) -> None:
    rng = np.random.default_rng(8)
    layer = make_layer(mode, num_layers=2, bidirectional=True)
    x = rng.standard_normal((4, 2, 3))
    y, h, backward = layer.forward_train(x)
    dy, dh = rng.standard_normal(y.shape), tuple(rng.standard_normal(p.shape) for p in parts(h))
    dh = dh if layer.is_lstm else dh[0]

    layer.zero_grad()
    backward(dy, dh)
    once = {k: g.copy() for k, g in layer.grads.items()}
    assert all(np.any(g != 0) for g in once.values())
    backward(dy, dh)  # a second backward of the same forward adds the same again
    for key, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * once[key], rtol=1e-13, atol=0)

    refs = dict(layer.grads)
    layer.zero_grad()
    for key, g in layer.grads.items():
        assert g is refs[key], "zero_grad must clear in place (optimizers hold references)"
        assert np.all(g == 0), key


def test_zero_grad_for_cells_and_dense_layers() -> None:
    rng = np.random.default_rng(9)
    cell = rnnkit.LSTMCell(3, 2, seed=0, dtype="float64")
    state = (rng.standard_normal((2, 2)), rng.standard_normal((2, 2)))  # nonzero: dW_hh != 0
    (h, c), backward = cell.forward_train(rng.standard_normal((2, 3)), state)
    backward((np.ones_like(h), np.ones_like(c)))
    lin = rnnkit.Linear(3, 2, seed=0)
    y, lin_backward = lin.forward_train(rng.standard_normal((4, 3)))
    lin_backward(np.ones_like(y))
    emb = rnnkit.Embedding(4, 2, seed=0)
    e, emb_backward = emb.forward_train(np.array([0, 1, 1]))
    emb_backward(np.ones_like(e))
    for module in (cell, lin, emb):
        assert all(np.any(g != 0) for g in module.grads.values())
        module.zero_grad()
        assert all(np.all(g == 0) for g in module.grads.values())


def test_module_list_zero_grad_reaches_children() -> None:
    rng = np.random.default_rng(10)
    rnn, head = make_layer("gru"), rnnkit.Linear(4, 1, seed=0, dtype="float64")
    both = rnnkit.ModuleList([rnn, head])
    y, _, backward = rnn.forward_train(rng.standard_normal((3, 2, 3)))
    z, head_backward = head.forward_train(y)
    backward(head_backward(np.ones_like(z)))
    assert set(both.named_grads()) == {f"0.{k}" for k in rnn.grads} | {"1.weight", "1.bias"}
    assert all(np.any(g != 0) for g in both.named_grads().values())
    both.zero_grad()
    assert all(np.all(g == 0) for g in both.named_grads().values())


# -- dtypes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lengths", [None, [4, 2]], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
def test_dtypes(mode: str, dtype: str, lengths: list[int] | None) -> None:
    rng = np.random.default_rng(11)
    layer = make_layer(mode, num_layers=2, bidirectional=True, dtype=dtype)
    assert all(p.dtype == np.dtype(dtype) for p in layer.params.values())
    x = rng.standard_normal((4, 2, 3))  # float64 input: converted to the layer's dtype
    y, state = layer(x, lengths=lengths)
    assert y.dtype == np.dtype(dtype)
    assert all(p.dtype == np.dtype(dtype) for p in parts(state))
    y_t, state_t, backward = layer.forward_train(x.astype(np.float32), lengths=lengths)
    assert y_t.dtype == np.dtype(dtype)
    dx, dstate = backward(np.ones(y_t.shape, dtype=np.float64))
    assert dx.dtype == np.dtype(dtype)
    # the gradient of the initial state has the layer's dtype too (with lengths it came back
    # float64 from a float32 layer: `(1.0 - mask)` on a bool mask promotes to float64)
    assert [p.dtype for p in parts(dstate)] == [np.dtype(dtype)] * len(parts(dstate))
    assert all(g.dtype == np.dtype(dtype) for g in layer.grads.values())
    # float32 agrees with float64 to float32 precision
    ref = make_layer(mode, num_layers=2, bidirectional=True, dtype="float64")
    y64, _ = ref(x, lengths=lengths)
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes_cells_and_dense(dtype: str) -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3))
    h, c = rnnkit.LSTMCell(3, 2, seed=0, dtype=dtype)(x)
    assert h.dtype == c.dtype == np.dtype(dtype)
    assert rnnkit.GRUCell(3, 2, seed=0, dtype=dtype)(x).dtype == np.dtype(dtype)
    assert rnnkit.Linear(3, 2, seed=0, dtype=dtype)(x).dtype == np.dtype(dtype)
    assert rnnkit.Embedding(4, 2, seed=0, dtype=dtype)(np.array([1, 2])).dtype == np.dtype(dtype)
