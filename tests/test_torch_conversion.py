"""to_torch / from_torch round trips for every layer, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit

LAYERS = [
    lambda dt: rnnkit.RNN(3, 4, 2, nonlinearity="relu", bidirectional=True, seed=0, dtype=dt),
    lambda dt: rnnkit.LSTM(3, 4, 3, bias=False, batch_first=True, dropout=0.25, seed=0, dtype=dt),
    lambda dt: rnnkit.GRU(3, 4, 1, bidirectional=True, seed=0, dtype=dt),
    lambda dt: rnnkit.RNNCell(3, 4, nonlinearity="tanh", seed=0, dtype=dt),
    lambda dt: rnnkit.LSTMCell(3, 4, bias=False, seed=0, dtype=dt),
    lambda dt: rnnkit.GRUCell(3, 4, seed=0, dtype=dt),
    lambda dt: rnnkit.Linear(3, 4, seed=0, dtype=dt),
    lambda dt: rnnkit.Linear(3, 4, bias=False, seed=0, dtype=dt),
    lambda dt: rnnkit.Embedding(10, 4, seed=0, dtype=dt),
]


@pytest.mark.parametrize("make", LAYERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_exact(make, dtype):
    layer = make(dtype)
    module = rnnkit.to_torch(layer)
    assert module.state_dict().keys() == layer.state_dict().keys()
    expected_dtype = torch.float64 if dtype == "float64" else torch.float32
    assert all(p.dtype == expected_dtype for p in module.parameters())
    back = rnnkit.from_torch(module)
    assert type(back) is type(layer)
    assert back.config == layer.config
    for key, value in layer.state_dict().items():
        assert np.array_equal(back.state_dict()[key], value), key


def test_from_torch_keeps_torch_outputs():
    torch.manual_seed(0)
    module = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True).double()
    layer = rnnkit.from_torch(module)
    x = np.random.default_rng(0).standard_normal((6, 3, 5))
    y, (h, c) = layer(x)
    yt, (ht, ct) = module(torch.tensor(x))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(c, ct.detach().numpy(), rtol=0, atol=1e-12)


def test_unsupported_modules_are_named():
    with pytest.raises(ValueError, match="from_torch: no rnnkit equivalent of Conv1d"):
        rnnkit.from_torch(torch.nn.Conv1d(2, 2, 3))
    with pytest.raises(ValueError, match="proj_size"):
        rnnkit.from_torch(torch.nn.LSTM(3, 4, proj_size=2))


@pytest.mark.parametrize("cell, tie", [("lstm", False), ("gru", True), ("rnn", False)])
def test_language_model_to_torch_gives_the_same_logits(cell, tie):
    from rnnkit.models import LanguageModel

    model = LanguageModel(
        13, cell, 16, 2, 16 if tie else 6, dropout=0.3, tie_weights=tie, seed=0, dtype="float64"
    )
    module = rnnkit.to_torch(model).eval()
    ids = np.random.default_rng(0).integers(0, 13, size=(9, 3))
    ours, state = model(ids)
    theirs, tstate = module(torch.from_numpy(ids))
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=1e-12)
    back = rnnkit.from_torch(module)
    assert back.config == model.config
    for key, value in model.state_dict().items():
        assert np.array_equal(back.state_dict()[key], value), key
    if tie:
        assert module.head.weight is module.embedding.weight
