"""The classifier's network against the same network in PyTorch, float64, ragged lengths:
Embedding -> bidirectional LSTM -> mean over each sequence's valid steps -> Linear, the
cross-entropy loss and its gradient with respect to every weight."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.layers import LSTM, Embedding, Linear, Pool, Sequential
from rnnkit.losses import cross_entropy

torch = pytest.importorskip("torch")


def torch_loss(emb, lstm, linear, ids, lengths, y):
    """The same network in torch: pack_padded_sequence, a masked mean, cross-entropy."""
    nn = torch.nn
    x = emb(torch.from_numpy(ids))  # (T, B, E)
    packed = nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(lengths), enforce_sorted=False)
    h, _ = lstm(packed)
    h, _ = nn.utils.rnn.pad_packed_sequence(h, total_length=ids.shape[0])  # (T, B, 2H)
    mean = h.sum(0) / torch.from_numpy(lengths).to(h.dtype)[:, None]  # padding is zeros
    return nn.functional.cross_entropy(linear(mean), torch.from_numpy(y))


@pytest.mark.parametrize("seed", [0, 1])
def test_classifier_network_matches_torch(seed):
    rng = np.random.default_rng(seed)
    V, E, H, C, T, B = 11, 5, 6, 3, 9, 4
    net = Sequential(
        Embedding(V, E, seed=seed, dtype="float64"),
        LSTM(E, H, 1, bidirectional=True, seed=seed + 1, dtype="float64"),
        Pool("mean"),
        Linear(2 * H, C, seed=seed + 2, dtype="float64"),
    )
    lengths = rng.permutation(np.r_[T, rng.integers(1, T, size=B - 1)]).astype(np.int64)
    ids = rng.integers(0, V, size=(T, B)).astype(np.int64)
    ids[np.arange(T)[:, None] >= lengths[None]] = 0  # padding, as `pad` leaves it
    y = rng.integers(0, C, size=B).astype(np.int64)

    net.train()
    net.zero_grad()
    logits, backward = net.forward_train(ids, lengths)
    loss, dlogits = cross_entropy(logits, y)
    backward(dlogits)

    emb = torch.nn.Embedding(V, E).double()
    emb.weight.data = torch.from_numpy(net[0].params["weight"].copy())
    lstm = rnnkit.to_torch(net[1]).double()
    linear = torch.nn.Linear(2 * H, C).double()
    linear.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in net[3].params.items()})
    expected = torch_loss(emb, lstm, linear, ids, lengths, y)
    expected.backward()

    assert loss == pytest.approx(expected.item(), rel=1e-10)
    pairs = [(net[0], emb), (net[1], lstm), (net[3], linear)]
    checked = 0
    for ours, theirs in pairs:
        for name, param in theirs.named_parameters():
            got, want = ours.grads[name], param.grad.numpy()
            scale = max(float(np.abs(want).max()), 1e-12)
            assert np.abs(got - want).max() / scale < 1e-9, name
            checked += 1
    assert checked == 1 + 8 + 2
