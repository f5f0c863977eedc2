"""Errors at the public boundary: a ValueError subclass naming the component, what it expected
and what it was given."""

from __future__ import annotations

import re

import numpy as np
import pytest

import rnnkit
from rnnkit import CheckpointError, InputError, RnnkitError, ShapeError


def esc(text: str) -> str:
    return re.escape(text)


def test_error_classes_are_value_errors() -> None:
    for cls in (ShapeError, InputError, CheckpointError):
        assert issubclass(cls, ValueError) and issubclass(cls, RnnkitError)


@pytest.fixture
def lstm() -> rnnkit.LSTM:
    return rnnkit.LSTM(32, 4, seed=0)


# -- input shape -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7,), (7, 3, 2, 32), ()])
def test_wrong_input_rank(lstm: rnnkit.LSTM, shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=esc("LSTM: expected input of shape (T, B, 32), got")):
        lstm(np.zeros(shape))


def test_wrong_feature_size(lstm: rnnkit.LSTM) -> None:
    msg = "LSTM: expected input of shape (T, B, 32), got (7, 3, 31)"
    with pytest.raises(ShapeError, match=esc(msg)):
        lstm(np.zeros((7, 3, 31)))
    with pytest.raises(ShapeError, match=esc(msg)):
        lstm.forward_train(np.zeros((7, 3, 31)))


def test_wrong_feature_size_batch_first() -> None:
    gru = rnnkit.GRU(32, 4, batch_first=True, seed=0)
    with pytest.raises(
        ShapeError, match=esc("GRU: expected input of shape (B, T, 32), got (3, 7, 31)")
    ):
        gru(np.zeros((3, 7, 31)))


def test_wrong_feature_size_unbatched_names_the_given_shape(lstm: rnnkit.LSTM) -> None:
    """The message must report the array the user passed, (7, 31), not an internal reshape."""
    with pytest.raises(ShapeError, match=r"LSTM: expected input of shape .*32\), got \(7, 31\)"):
        lstm(np.zeros((7, 31)))


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.GRU])
def test_wrong_feature_size_other_layers(cls) -> None:
    name = cls.__name__
    with pytest.raises(
        ShapeError, match=esc(f"{name}: expected input of shape (T, B, 5), got (2, 1, 4)")
    ):
        cls(5, 3)(np.zeros((2, 1, 4)))


def test_empty_input(lstm: rnnkit.LSTM) -> None:
    with pytest.raises(
        InputError, match=esc("LSTM: input has no steps or no sequences, shape (0, 3, 32)")
    ):
        lstm(np.zeros((0, 3, 32)))


def test_non_numeric_input(lstm: rnnkit.LSTM) -> None:
    with pytest.raises(InputError, match="LSTM: input must be numeric, got dtype"):
        lstm(np.full((2, 1, 32), "a"))


# -- state -----------------------------------------------------------------------------------
def test_state_wrong_shape() -> None:
    gru = rnnkit.GRU(3, 4, num_layers=2, seed=0)
    with pytest.raises(
        ShapeError, match=esc("GRU: expected h_0 of shape (2, 5, 4), got (1, 5, 4)")
    ):
        gru(np.zeros((6, 5, 3)), np.zeros((1, 5, 4)))


def test_lstm_state_wrong_shape_names_the_part() -> None:
    lstm = rnnkit.LSTM(3, 4, bidirectional=True, seed=0)
    x = np.zeros((6, 5, 3))
    good = np.zeros((2, 5, 4))
    with pytest.raises(
        ShapeError, match=esc("LSTM: expected h_0 of shape (2, 5, 4), got (2, 5, 3)")
    ):
        lstm(x, (np.zeros((2, 5, 3)), good))
    with pytest.raises(
        ShapeError, match=esc("LSTM: expected c_0 of shape (2, 5, 4), got (1, 5, 4)")
    ):
        lstm(x, (good, np.zeros((1, 5, 4))))


@pytest.mark.parametrize(
    "state", [np.zeros((1, 2, 4)), (np.zeros((1, 2, 4)),), [np.zeros((1, 2, 4))] * 3]
)
def test_lstm_state_not_a_pair(state) -> None:
    lstm = rnnkit.LSTM(3, 4, seed=0)
    with pytest.raises(InputError, match=esc("LSTM: expected state as a tuple (h_0, c_0), got")):
        lstm(np.zeros((5, 2, 3)), state)


def test_unbatched_state_wrong_shape_names_the_given_shape() -> None:
    """For an unbatched call the state is (L*D, H): the message must say so and echo it."""
    gru = rnnkit.GRU(3, 4, seed=0)
    with pytest.raises(ShapeError, match=r"GRU: expected h_0 of shape .*got \(1, 3\)"):
        gru(np.zeros((5, 3)), np.zeros((1, 3)))


def test_cell_state_errors() -> None:
    cell = rnnkit.LSTMCell(3, 2, seed=0)
    x = np.zeros((4, 3))
    with pytest.raises(
        InputError, match=esc("LSTMCell: expected state as a tuple (h, c), got ndarray")
    ):
        cell(x, np.zeros((4, 2)))
    with pytest.raises(ShapeError, match=esc("LSTMCell: expected c of shape (4, 2), got (4, 3)")):
        cell(x, (np.zeros((4, 2)), np.zeros((4, 3))))
    with pytest.raises(
        ShapeError, match=esc("GRUCell: expected input of shape (B, 3), got (4, 5)")
    ):
        rnnkit.GRUCell(3, 2)(np.zeros((4, 5)))


# -- the backward's arguments ----------------------------------------------------------------
def test_backward_wrong_dy_and_dstate() -> None:
    lstm = rnnkit.LSTM(3, 2, seed=0)
    y, _, backward = lstm.forward_train(np.zeros((4, 5, 3)))
    with pytest.raises(
        ShapeError, match=esc("LSTM: expected dy of shape (4, 5, 2), got (4, 5, 3)")
    ):
        backward(np.zeros((4, 5, 3)))
    with pytest.raises(InputError, match=esc("LSTM: expected dstate as a tuple (dh_n, dc_n), got")):
        backward(np.zeros(y.shape), np.zeros((1, 5, 2)))


def test_backward_wrong_dy_batch_first_names_the_user_layout() -> None:
    """y is (B, T, H) = (5, 4, 2): the message must speak of that layout, not time-major."""
    gru = rnnkit.GRU(3, 2, batch_first=True, seed=0)
    y, _, backward = gru.forward_train(np.zeros((5, 4, 3)))
    assert y.shape == (5, 4, 2)
    with pytest.raises(ShapeError, match=esc("GRU: expected dy of shape (5, 4, 2), got (5, 4, 3)")):
        backward(np.zeros((5, 4, 3)))


# -- lengths ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "lengths, low, high",
    [([0, 3, 2], 0, 3), ([7, 8, 1], 1, 8), ([-1, 2, 2], -1, 2)],
)
def test_lengths_out_of_range(lstm: rnnkit.LSTM, lengths, low: int, high: int) -> None:
    msg = f"LSTM: lengths must lie in [1, 7] (the number of steps), got values from {low} to {high}"
    with pytest.raises(InputError, match=esc(msg)):
        lstm(np.zeros((7, 3, 32)), lengths=lengths)


@pytest.mark.parametrize("lengths, shape", [([1, 2], "(2,)"), ([[1, 2, 3]], "(1, 3)"), (5, "()")])
def test_lengths_wrong_size(lstm: rnnkit.LSTM, lengths, shape: str) -> None:
    msg = f"LSTM: expected lengths of shape (3,), got {shape}"
    with pytest.raises(ShapeError, match=esc(msg)):
        lstm(np.zeros((7, 3, 32)), lengths=lengths)


@pytest.mark.parametrize(
    "lengths, dtype",
    [([1.5, 2, 2], "float64"), (np.array([True, True, True]), "bool"), (["a", "b", "c"], "<U1")],
)
def test_lengths_not_integers(lstm: rnnkit.LSTM, lengths, dtype: str) -> None:
    msg = f"LSTM: lengths must be integers, got dtype {dtype}"
    with pytest.raises(InputError, match=esc(msg)):
        lstm.forward_train(np.zeros((7, 3, 32)), lengths=lengths)


# -- non-finite input ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(lstm: rnnkit.LSTM, bad: float) -> None:
    x = np.zeros((7, 3, 32))
    x[2, 1, 5] = bad
    msg = "LSTM: input contains NaN or infinity (first at index (2, 1, 5)); expected finite values"
    with pytest.raises(InputError, match=esc(msg)):
        lstm.forward_train(x)
    with pytest.raises(InputError, match=esc(msg)):
        lstm(x)


@pytest.mark.parametrize(
    "batch_first, shape, index",
    [(True, (4, 5, 3), (1, 2, 0)), (False, (5, 3), (2, 1))],
    ids=["batch_first", "unbatched"],
)
def test_non_finite_input_index_is_in_the_users_layout(batch_first, shape, index) -> None:
    """The index must point into the array the user passed, not the internal time-major copy."""
    gru = rnnkit.GRU(3, 2, batch_first=batch_first, seed=0)
    x = np.zeros(shape)
    x[index] = np.nan
    with pytest.raises(
        InputError, match=esc(f"GRU: input contains NaN or infinity (first at index {index})")
    ):
        gru(x)


def test_non_finite_input_cells_and_linear() -> None:
    x = np.zeros((2, 3))
    x[1, 2] = np.nan
    with pytest.raises(
        InputError, match=esc("GRUCell: input contains NaN or infinity (first at index (1, 2))")
    ):
        rnnkit.GRUCell(3, 2).forward_train(x)
    with pytest.raises(
        InputError, match=esc("Linear: input contains NaN or infinity (first at index (1, 2))")
    ):
        rnnkit.Linear(3, 2).forward_train(x)


# -- constructor arguments -------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, msg",
    [
        (lambda: rnnkit.LSTM(3, 0), "LSTM: hidden_size must be a positive integer, got 0"),
        (lambda: rnnkit.GRU(0, 2), "GRU: input_size must be a positive integer, got 0"),
        (
            lambda: rnnkit.RNN(3, 2, num_layers=0),
            "RNN: num_layers must be a positive integer, got 0",
        ),
        (lambda: rnnkit.LSTM(3, 2.5), "LSTM: hidden_size must be a positive integer, got 2.5"),
        (lambda: rnnkit.LSTM(3, 2, dropout=1.0), "LSTM: dropout must lie in [0, 1), got 1.0"),
        (lambda: rnnkit.GRU(3, 2, dropout=-0.1), "GRU: dropout must lie in [0, 1), got -0.1"),
        (
            lambda: rnnkit.RNN(3, 2, nonlinearity="sigmoid"),
            "RNN: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'",
        ),
        (
            lambda: rnnkit.LSTM(3, 2, dtype="int8"),
            "LSTM: dtype must be 'float32' or 'float64', got 'int8'",
        ),
        (
            lambda: rnnkit.RNNCell(3, 2, nonlinearity="sigmoid"),
            "RNNCell: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'",
        ),
        (lambda: rnnkit.GRUCell(3, 0), "GRUCell: hidden_size must be a positive integer, got 0"),
        (
            lambda: rnnkit.LSTMCell(3, 2, dtype="int8"),
            "LSTMCell: dtype must be 'float32' or 'float64', got 'int8'",
        ),
        (lambda: rnnkit.Linear(0, 2), "Linear: in_features must be a positive integer, got 0"),
        (
            lambda: rnnkit.Linear(3, 2, dtype="float16"),
            "Linear: dtype must be 'float32' or 'float64', got 'float16'",
        ),
        (
            lambda: rnnkit.Embedding(0, 2),
            "Embedding: num_embeddings must be a positive integer, got 0",
        ),
    ],
)
def test_bad_constructor_arguments(make, msg: str) -> None:
    with pytest.raises(InputError, match=esc(msg)):
        make()


# -- dense layers ----------------------------------------------------------------------------
@pytest.mark.parametrize("ids, low, high", [([0, 5], 0, 5), ([[-1, 2]], -1, 2)])
def test_embedding_ids_out_of_range(ids, low: int, high: int) -> None:
    emb = rnnkit.Embedding(5, 2, seed=0)
    msg = f"Embedding: ids must lie in [0, 5), got values from {low} to {high}"
    with pytest.raises(InputError, match=esc(msg)):
        emb(np.array(ids))
    with pytest.raises(InputError, match=esc(msg)):
        emb.forward_train(np.array(ids))


def test_embedding_float_ids() -> None:
    with pytest.raises(
        RnnkitError, match=esc("Embedding: expected integer ids, got dtype float64")
    ) as info:
        rnnkit.Embedding(5, 2)(np.array([0.0, 1.0]))
    assert isinstance(info.value, ValueError)


def test_linear_wrong_feature_size() -> None:
    """A wrong feature size is a shape error, as for the recurrent layers."""
    lin = rnnkit.Linear(4, 2, seed=0)
    with pytest.raises(
        ShapeError, match=esc("Linear: expected input of shape (..., 4), got (3, 5)")
    ):
        lin(np.zeros((3, 5)))


def test_linear_wrong_feature_size_is_a_value_error() -> None:
    lin = rnnkit.Linear(4, 2, seed=0)
    with pytest.raises(
        ValueError, match=esc("Linear: expected input of shape (..., 4), got (3, 5)")
    ):
        lin.forward_train(np.zeros((3, 5)))


def test_linear_backward_wrong_dy() -> None:
    y, backward = rnnkit.Linear(4, 2, seed=0).forward_train(np.zeros((3, 4)))
    with pytest.raises(ShapeError, match=esc("Linear: expected dy of shape (3, 2), got (3, 3)")):
        backward(np.zeros((3, 3)))


# -- state dicts -----------------------------------------------------------------------------
def test_load_state_dict_missing_key() -> None:
    lstm = rnnkit.LSTM(3, 4, seed=0)
    state = lstm.state_dict()
    del state["bias_hh_l0"]
    with pytest.raises(
        CheckpointError, match=esc("LSTM: missing key 'bias_hh_l0' (expected shape (16,))")
    ):
        lstm.load_state_dict(state)


def test_load_state_dict_extra_key() -> None:
    gru = rnnkit.GRU(3, 4, seed=0)
    state = gru.state_dict()
    state["weight_ih_l1"] = np.zeros((12, 4))
    with pytest.raises(
        CheckpointError, match=esc("GRU: unexpected key 'weight_ih_l1' with shape (12, 4)")
    ):
        gru.load_state_dict(state)


def test_load_state_dict_wrong_shape_names_key_and_both_shapes() -> None:
    lstm = rnnkit.LSTM(3, 4, seed=0)
    before = lstm.state_dict()
    state = lstm.state_dict()
    state["weight_ih_l0"] = state["weight_ih_l0"] + 1.0  # would change a weight ...
    state["weight_hh_l0"] = np.zeros((16, 5))  # ... but another key is wrong
    with pytest.raises(
        CheckpointError, match=esc("LSTM: key 'weight_hh_l0' expected shape (16, 4), got (16, 5)")
    ):
        lstm.load_state_dict(state)
    for key, value in lstm.state_dict().items():  # nothing was half-loaded
        assert np.array_equal(value, before[key]), key


def test_load_state_dict_non_finite() -> None:
    lin = rnnkit.Linear(3, 2, seed=0)
    state = lin.state_dict()
    state["bias"][0] = np.nan
    with pytest.raises(CheckpointError, match=esc("Linear: key 'bias' contains NaN or infinity")):
        lin.load_state_dict(state)


def test_load_state_dict_nested_key() -> None:
    both = rnnkit.ModuleList([rnnkit.GRU(3, 2, seed=0), rnnkit.Linear(2, 1, seed=0)])
    state = both.state_dict()
    state["1.weight"] = np.zeros((2, 2))
    with pytest.raises(
        CheckpointError, match=esc("ModuleList: key '1.weight' expected shape (1, 2), got (2, 2)")
    ):
        both.load_state_dict(state)
