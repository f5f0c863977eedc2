"""``pooling="meanmax"`` (``--pooling meanmax``): the mean and the maximum over the valid
steps side by side; the classifier trains, saves and loads with it, and the PyTorch side of
the speech evaluation (`benchmarks/speech_torch.py`) computes the same network (with each of
the four poolings, attention among them)."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from by_path import benchmark
from rnnkit.estimators.classifier import SequenceClassifier
from rnnkit.io.checkpoint import load

torch = pytest.importorskip("torch")


def frames(n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    y = rng.integers(0, 3, n)
    X = [rng.standard_normal((int(rng.integers(3, 12)), 4)) + k for k in y]
    return [x.astype(np.float32) for x in X], y.tolist()


@pytest.fixture(scope="module")
def fitted():
    X, y = frames(60, np.random.default_rng(0))
    clf = SequenceClassifier(
        cell="gru", hidden_size=6, pooling="meanmax", epochs=15, lr=0.02, patience=None, seed=0
    )
    return clf.fit(X, y), X, y


def test_meanmax_feeds_twice_the_width_to_the_output(fitted, tmp_path):
    clf, X, y = fitted
    assert clf.model_[-1].params["weight"].shape == (3, 2 * 2 * 6)  # 2 directions, mean and max
    assert clf.score(X, y) > 0.5
    rnnkit.save(clf, str(tmp_path / "m.safetensors"))
    back = load(str(tmp_path / "m.safetensors"))
    assert back.pooling == "meanmax"
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def _speech_torch():
    return benchmark("speech_torch")


@pytest.mark.parametrize("pooling", ["meanmax", "max", "mean", "attention"])
def test_the_pytorch_side_is_the_same_network(pooling):
    st = _speech_torch()
    X, y = frames(40, np.random.default_rng(1))
    clf = SequenceClassifier(
        cell="gru", hidden_size=5, pooling=pooling, attention_size=7, epochs=1, seed=2
    )
    clf.fit(X, y)
    p = {
        "cell": "gru",
        "hidden_size": 5,
        "num_layers": 1,
        "bidirectional": True,
        "pooling": pooling,
        "dropout": clf.dropout,
        "attention_size": 7,
    }
    net = st.Net(4, 3, p)
    net.rnn.load_state_dict(rnnkit.to_torch(clf.model_[0]).state_dict())
    linear = clf.model_[-1].params
    net.linear.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in linear.items()})
    if pooling == "attention":  # the scores' layer and vector
        (pool,) = [m for m in clf.model_ if type(m).__name__ == "AttentionPool"]
        net.score.weight.data = torch.from_numpy(pool.params["weight"].copy())
        net.score.bias.data = torch.from_numpy(pool.params["bias"].copy())
        net.v.data = torch.from_numpy(pool.params["v"].copy())
    got = st.sentiment_torch.predict_proba(net, X)
    np.testing.assert_allclose(got, clf.predict_proba(X), rtol=0, atol=1e-5)
